"""``dask-batch lab``: a JupyterLab server on the client rank, its kernels on this job's cluster.

Rank 0 serves the scheduler, rank 1 runs JupyterLab as a child process, the other ranks are
workers. The kernels inherit the scheduler address and the job's TLS credentials through the
environment (``DASK_SCHEDULER_ADDRESS``, ``DASK_DISTRIBUTED__COMM__TLS__*``), so a plain
``Client()`` in a notebook connects; nothing secret goes on a command line: the token is in a
0600 config file inside a private (0700) runtime directory, removed at the end.

The job ends when the server does: File > Shut Down gives exit code 0. A walltime signal stops
the server (it shuts its kernels down), then the scheduler retires the workers. A dead kernel
is the server's business: the job goes on.

Jupyter is only ever imported in the child process. The ``dask-batch lab`` command is in
``dask_batch.cli.lab``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from .placement import LAUNCH_WIRING  # the kernels are not ranks: no MPI wiring for them
from .tunnel import dashboard_ready, local_url, tunnel_command

logger = logging.getLogger("dask_batch")

INSTALL_HINT = "pip install 'dask-batch[lab]'"
START_TIMEOUT = 180.0  # seconds; importing JupyterLab on a loaded login-class node is slow
# the server process: die with the client rank (PR_SET_PDEATHSIG) even if it is SIGKILLed;
# preexec_fn is not safe with the client's threads, so the child arms it itself
_CHILD = (
    "import ctypes, os, runpy, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))\n"
    "if os.getppid() != int(sys.argv.pop(1)):\n"
    "    sys.exit(1)\n"
    "sys.argv[0] = 'jupyter-lab'\n"
    "runpy.run_module('jupyterlab', run_name='__main__', alter_sys=True)\n"
)


class LabNotInstalled(ImportError):
    """JupyterLab is missing: the message names the extra to install."""

    every_rank = True  # every rank has the same environment: report it once per job


class LabError(RuntimeError):
    """The Jupyter server did not start; the message says why."""


def require_lab() -> None:
    if importlib.util.find_spec("jupyterlab") is None:
        raise LabNotInstalled(f"dask-batch lab needs JupyterLab: {INSTALL_HINT}")


# ---------------------------------------------------------------- what the user is told


def banner(lab_url: str, dashboard: str | None, node: str, workers: int,
           environ: Mapping[str, str] | None = None) -> str:
    """The short block printed once the server answers."""
    urls = [lab_url] + ([dashboard] if dashboard and dashboard_ready() else [])
    lines = [
        f"JupyterLab on {node} for {workers} workers; File > Shut Down ends the job",
        f"  JupyterLab  {lab_url}",
    ]
    if dashboard and dashboard_ready():
        lines.append(f"  dashboard   {dashboard}")
    elif dashboard:
        lines.append("  dashboard   needs bokeh: pip install 'dask-batch[dashboard]'")
    lines.append(f"  laptop      {tunnel_command(urls, node, environ)}")
    lines.append(f"              then open {local_url(lab_url)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the server process


class LabServer:
    """One ``jupyter lab`` child process in its own session, with a private runtime dir."""

    def __init__(self, ip: str, port: int | None = None, jupyter_args: Sequence[str] = (),
                 environ: Mapping[str, str] | None = None):
        self.ip, self.port, self.jupyter_args = ip, port or 0, list(jupyter_args)
        self.environ = dict(os.environ if environ is None else environ)
        self.token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self.stopped_by: int | None = None
        self.runtime_dir = tempfile.mkdtemp(prefix="dask-batch-lab-")  # mode 0700

    def argv(self, config: str) -> list[str]:
        argv = [
            sys.executable, "-c", _CHILD, str(os.getpid()),
            f"--config={config}",
            "--no-browser",
            f"--ServerApp.ip={self.ip}",
            f"--ServerApp.port={self.port}",  # 0: the kernel picks a free port, read back below
            "--ServerApp.port_retries=0",
            "--ServerApp.log_level=WARN",
            "--LabApp.log_level=WARN",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        return argv + self.jupyter_args

    def start(self) -> None:
        config = os.path.join(self.runtime_dir, "dask_batch_lab_config.json")
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({
                "IdentityProvider": {"token": self.token},
                # jupyter_server's 90 s pong timeout (in ms) trips a warning in tornado >= 6.5
                # on every websocket; equal to the 30 s ping interval, it is quiet
                "ServerApp": {"open_browser": False, "quit_button": True,
                              "tornado_settings": {"ws_ping_timeout": 30000}},
                # kernels on Unix sockets in the 0700 runtime dir, not on TCP ports that
                # every user of a shared node can reach
                "KernelManager": {"transport": "ipc"},
            }, f)
        env = {k: v for k, v in self.environ.items() if not k.startswith(LAUNCH_WIRING)}
        env["JUPYTER_RUNTIME_DIR"] = self.runtime_dir
        self.proc = subprocess.Popen(self.argv(config), env=env, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Wait until the server answers its REST API; return the lab URL with the token."""
        assert self.proc is not None
        path = os.path.join(self.runtime_dir, f"jpserver-{self.proc.pid}.json")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"the Jupyter server exited with code {self.proc.returncode} "
                               "before it was ready (see its messages above)")
            if not self.info and os.path.exists(path):
                try:
                    with open(path) as f:
                        self.info = json.load(f)
                except (OSError, ValueError):  # being written
                    self.info = {}
            if self.info and self._answers():
                self._tighten()
                base = self.info["url"].rstrip("/")
                return f"{base}/lab?token={self.info.get('token') or self.token}"
            time.sleep(0.2)
        raise LabError(f"the Jupyter server did not answer within {timeout:g} s")

    def _answers(self) -> bool:
        req = urllib.request.Request(self.info["url"].rstrip("/") + "/api/status",
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _tighten(self) -> None:
        """Jupyter writes its browser-open file (with the token) 0644: make every file 0600."""
        for name in os.listdir(self.runtime_dir):
            p = os.path.join(self.runtime_dir, name)
            if os.path.isfile(p):
                os.chmod(p, 0o600)

    def wait(self) -> int:
        assert self.proc is not None
        rc = self.proc.wait()
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return rc if rc >= 0 else 128 - rc

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the server to stop (it shuts its kernels down); callable from a signal handler."""
        if self.stopped_by is None:
            self.stopped_by = signum
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def close(self, grace: float = 10.0) -> None:
        """Stop the server if it still runs (SIGKILL after ``grace``), remove the runtime dir."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


# ---------------------------------------------------------------- the job


def lab_ip(runner: Any) -> str:
    """Where the server listens: the address of the interface the cluster uses."""
    from .transport import choose_interface, interfaces

    s, placement = runner.settings, runner.placement
    found = interfaces()
    name = choose_interface(s.interface, found, placement.local_size == placement.size)
    return found.get(name or "", "127.0.0.1")


def run_lab(*, port: int | None = None, ip: str | None = None,
            jupyter_args: Sequence[str] = (), **options: Any) -> int:
    """Every rank calls this; the client rank serves JupyterLab until it is shut down.

    ``options`` are those of ``BatchRunner``. Scheduler and worker ranks never return (unless
    ``exit=False``: then they return 0 when the job is over). The client rank returns the job's
    exit code after the cluster has stopped: 0 after File > Shut Down, 128 + signal after a
    walltime signal, the server's code if it failed.

    >>> from dask_batch.lab import run_lab   # doctest: +SKIP
    >>> raise SystemExit(run_lab(port=8888))  # doctest: +SKIP
    """
    from .runner import BatchRunner
    from .security import environ_for

    require_lab()
    server: list[LabServer] = []
    ending: list[int] = []

    def on_ending(signum: int) -> None:  # from the signal handler or the link thread
        ending.append(signum)
        if server:
            server[0].stop(signum)

    runner = BatchRunner(on_ending=on_ending, **options)
    if not runner.start():
        return 0
    contact = runner.contact
    assert contact is not None and runner.placement is not None
    code = 1
    try:
        # the kernels' plain Client(): scheduler address (set by the runner) and TLS credentials
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": contact.address,
               **environ_for(contact.creds)}
        srv = LabServer(ip or lab_ip(runner), port, jupyter_args, env)
        server.append(srv)
        if ending:
            code = 128 + ending[0]
        else:
            srv.start()
            if ending:  # a signal while the child was being forked
                srv.stop(ending[0])
            url = srv.wait_ready()
            logger.info("%s", banner(url, contact.dashboard, runner.placement.hostname,
                                     runner.n_workers))
            code = srv.wait()
    except LabError as e:
        logger.error("%s", e)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        if server:
            server[0].close()
        runner.finish(code)
    return code
