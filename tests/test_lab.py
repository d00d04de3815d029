"""``dask-batch lab`` with real parts: mpiexec, JupyterLab, a kernel over Jupyter's websocket
protocol, the scheduler's dashboard, and a headless Chromium driven by selenium.

Each job runs on 127.0.0.1 with random ports (the lab on port 0, the dashboard on ``:0``).
Set DASK_BATCH_SCREENSHOTS=docs/img to refresh the documentation's screenshots.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import MPIEXEC, kill_tagged, mpiexec, require, tagged

from dask_batch import lab, tunnel

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
START = 150  # s: four ranks plus JupyterLab on two shared cores
SCREENSHOTS = os.environ.get("DASK_BATCH_SCREENSHOTS")


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def need_lab() -> None:
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC} (pip install 'dask-batch[mpich]')")
    for module in ("jupyterlab", "bokeh", "jupyter_client", "websocket"):
        require(_have(module), f"{module} missing: pip install 'dask-batch[lab,test]'")


# ---------------------------------------------------------------- a running lab job


class Lab:
    """What the banner says (URL, token, dashboard) and Jupyter's REST API behind it."""

    url = token = base = dashboard = ""

    def parse(self, text: str) -> bool:
        m = re.search(r"^  JupyterLab  (http://\S+/lab\?token=(\w+))$", text, re.M)
        if not m:
            return False
        self.url, self.token = m.group(1), m.group(2)
        self.base = self.url.split("/lab?")[0]
        d = re.search(r"^  dashboard   (http://\S+)$", text, re.M)
        self.dashboard = d.group(1) if d else ""
        return True

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.base + path, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            data=None if body is None else json.dumps(body).encode(),
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None


class LabJob(Lab):
    """``mpiexec -n N dask-batch lab`` in the background, its banner parsed from stderr."""

    def __init__(self, cwd: Path, n: int = 4, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None):
        self.tag = uuid.uuid4().hex
        settings = cwd.parent / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)  # no "Jupyter news?" pop-up on screenshots
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        extra, env = env or {}, dict(os.environ)
        for k in list(env):
            if k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "DASK_BATCH")):
                del env[k]
        env.update({
            "DASK_BATCH_TEST_TAG": self.tag,
            "DASK_BATCH__DASHBOARD_ADDRESS": ":0",
            "PATH": f"{MPIEXEC.parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "JUPYTER_CONFIG_DIR": str(cwd / ".jupyter"),  # none of the runner's own settings
            "JUPYTERLAB_SETTINGS_DIR": str(cwd.parent / "lab-settings"),
            **extra,
        })
        self.stdout, self.stderr = cwd / "job.out", cwd / "job.err"
        self.t0 = time.monotonic()
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                mpiexec(n, str(MPIEXEC.parent / "dask-batch"), "lab", *args),
                cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

    def log(self) -> str:
        return self.stderr.read_text() + self.stdout.read_text()

    def wait_banner(self, timeout: float = START) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.parse(self.stderr.read_text()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"job ended (rc {self.proc.returncode}):\n{self.log()}")
            time.sleep(0.2)
        raise AssertionError(f"no banner after {timeout} s:\n{self.log()}")

    def ranks(self) -> list[psutil.Process]:
        """The four dask-batch processes that hydra started (not Jupyter, not kernels)."""
        out = []
        for p in tagged(self.tag):
            try:
                if p.parent() and p.parent().name().startswith("hydra_pmi_proxy"):
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def end(self, timeout: float = 60, linger: float = 5) -> int:
        """Wait for the job; require that no process it started is left."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"job still running after {timeout} s:\n{self.log()}") from None
        deadline = time.monotonic() + linger
        while tagged(self.tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [(p.pid, " ".join(p.cmdline())[:80]) for p in tagged(self.tag)]
        assert not left, f"processes left behind: {left}\n{self.log()}"
        self.seconds = time.monotonic() - self.t0
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        kill_tagged(self.tag)


@pytest.fixture
def lab_job(tmp_path: Path):
    need_lab()
    jobs: list[LabJob] = []

    def start(**kw: Any) -> LabJob:
        cwd = tmp_path / f"job{len(jobs)}"
        cwd.mkdir()
        job = LabJob(cwd, **kw)
        jobs.append(job)
        job.wait_banner()
        return job

    yield start
    for job in jobs:
        job.kill()


# ---------------------------------------------------------------- a kernel, as Jupyter speaks


class Kernel:
    """A kernel started through the REST API, driven over its websocket channel."""

    def __init__(self, job: Lab):
        import websocket
        from jupyter_client.session import Session

        self.job, self.session = job, Session()
        self.id = job.api("POST", "/api/kernels", {"name": "python3"})["id"]
        ws_url = (job.base.replace("http://", "ws://") + f"/api/kernels/{self.id}/channels"
                  f"?session_id={self.session.session}")
        self.ws = websocket.create_connection(
            ws_url, header=[f"Authorization: token {job.token}"], timeout=90)

    def run(self, code: str, timeout: float = 90) -> str:
        """Execute ``code``; return its stdout; fail with the traceback on an error."""
        from jupyter_client.jsonutil import json_default

        msg = self.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        msg["channel"] = "shell"
        self.ws.send(json.dumps(msg, default=json_default))
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = reply["msg_type"], reply["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "execute_reply":
                assert content["status"] == "ok", content
                return "".join(out)
        raise AssertionError(f"no reply after {timeout} s")

    def close(self) -> None:
        self.ws.close()


CLIENT_CODE = """
import os
from dask.distributed import Client
client = Client()
total = client.submit(sum, range(101)).result()
print(total, len(client.scheduler_info()["workers"]), client.scheduler.address, os.getpid(),
      client.direct_to_workers)
"""


# ---------------------------------------------------------------- the tests


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_kernel_client_computes_and_shutdown_ends_the_job(lab_job) -> None:
    job = lab_job(n=4)
    # the banner: token URL, dashboard, tunnel with both ports; <= 10 lines in all
    lines = [ln for ln in job.stderr.read_text().splitlines() if ln.strip()]
    assert len(lines) <= 10, lines
    assert "Traceback" not in job.log()
    assert job.url.startswith("http://127.0.0.1:") and len(job.token) >= 32
    assert job.dashboard.startswith("http://127.0.0.1:") and job.dashboard.endswith("/status")
    lab_port, dash_port = job.base.rsplit(":", 1)[1], job.dashboard.split(":")[2].split("/")[0]
    assert f"ssh -N -L {lab_port}:127.0.0.1:{lab_port} -L {dash_port}:127.0.0.1:{dash_port}" \
        in job.log()
    assert {lab_port, dash_port}.isdisjoint({"8786", "8787", "8888"})
    # the token is not on any command line; the server's files are private
    server = [p for p in tagged(job.tag) if "jupyterlab" in " ".join(p.cmdline())]
    assert len(server) == 1
    assert not any(job.token in " ".join(p.cmdline()) for p in tagged(job.tag))
    runtime = Path(server[0].environ()["JUPYTER_RUNTIME_DIR"])
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    files = [f for f in runtime.iterdir() if f.is_file()]
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), files

    # a plain Client() in a kernel reaches this job's scheduler, over TLS, with 2 workers
    kernel = Kernel(job)
    total, workers, address, kernel_pid, direct = kernel.run(CLIENT_CODE).split()
    assert (total, workers, direct) == ("5050", "2", "True")
    assert address.startswith("tls://127.0.0.1:")
    kernel.close()

    # the dashboard serves its status page
    with urllib.request.urlopen(job.dashboard, timeout=30) as r:
        page = r.read().decode()
    assert r.status == 200 and "bokeh" in page.lower()

    # a dead kernel does not end the job: the server stays, a new kernel works
    os.kill(int(kernel_pid), signal.SIGKILL)
    time.sleep(2)
    assert job.proc.poll() is None
    assert job.api("GET", "/api/status")["kernels"] >= 0
    again = Kernel(job)
    assert again.run(CLIENT_CODE).split()[:2] == ["5050", "2"]
    again.close()

    # shutting Jupyter down ends the job with 0, and every rank, server and kernel is gone
    job.api("POST", "/api/shutdown")
    assert job.end() == 0, job.log()
    assert not runtime.exists()
    log = job.log()
    assert "Traceback" not in log
    # the whole session stays within the short default output: no Jupyter chatter
    assert len([ln for ln in log.splitlines() if ln.strip()]) <= 10, log


@pytest.mark.mpi
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig, env", [
    (signal.SIGTERM, {}),  # the time limit itself
    (signal.SIGUSR2, {}),  # sbatch --signal=USR2@120
    # USR1 is not a default (hydra sends it when a rank dies), but a site can choose it
    (signal.SIGUSR1, {"DASK_BATCH__LIFECYCLE__SIGNALS": '["SIGTERM", "SIGUSR1"]'}),
], ids=["TERM", "USR2", "USR1-configured"])
def test_walltime_signal_stops_the_server_and_retires_the_workers(lab_job, sig, env) -> None:
    job = lab_job(n=4, env=env)
    kernel = Kernel(job)
    assert kernel.run(CLIENT_CODE).split()[:2] == ["5050", "2"]
    kernel.close()
    ranks = job.ranks()
    assert len(ranks) == 4, ranks
    t0 = time.monotonic()
    for p in ranks:  # what Slurm does at --signal=USR1@120, or at the time limit with TERM
        p.send_signal(sig)
    rc = job.end(timeout=60)
    assert rc == 128 + sig, job.log()
    assert time.monotonic() - t0 < 30, "the job took the whole grace time to end"
    assert "Traceback" not in job.log()


@pytest.mark.mpi
@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL-client"])
def test_interrupt_or_dead_client_leaves_nothing(lab_job, how) -> None:
    """Ctrl-C on an interactive mpiexec (SIGINT to every rank) ends the job with 130; a client
    rank killed outright takes its server (parent-death signal) and kernels with it."""
    job = lab_job(n=4)
    kernel = Kernel(job)
    assert kernel.run(CLIENT_CODE).split()[:2] == ["5050", "2"]
    kernel.close()
    if how == "SIGINT":
        for p in job.ranks():
            p.send_signal(signal.SIGINT)
        assert job.end(timeout=60) == 130, job.log()
        assert "Traceback" not in job.log()
    else:
        server = [p for p in tagged(job.tag) if "jupyterlab" in " ".join(p.cmdline())][0]
        server.parent().kill()
        assert job.end(timeout=60) != 0, job.log()


@pytest.mark.timeout(120)
def test_browser_renders_the_lab_and_file_shut_down_ends_the_job(lab_job, tmp_path) -> None:
    need_lab()
    require(_have("selenium"), "selenium missing: pip install 'dask-batch[test]'")
    require(os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER),
            "chromium and chromedriver missing: bash ci/install-browser.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    job = lab_job(n=4)
    # a notebook whose outputs come from a real run on this job's cluster
    kernel = Kernel(job)
    output = kernel.run(CLIENT_CODE)
    kernel.close()
    job.api("PUT", "/api/contents/cluster.ipynb",
            {"type": "notebook", "content": _notebook(output)})

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(job.url.replace("/lab?", "/lab/tree/cluster.ipynb?"))
        wait = WebDriverWait(driver, 60)
        wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output")))
        time.sleep(1)  # let the fonts and the kernel indicator settle for the screenshot
        assert driver.title.endswith("JupyterLab"), driver.title
        menus = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")]
        assert {"File", "Kernel"} <= set(menus), menus
        outputs = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        assert any(output.split()[0] in o.text for o in outputs)
        _screenshot(driver, tmp_path, "lab.png")

        busy = Kernel(job)  # something for the dashboard to show
        busy.run(CLIENT_CODE + "import time\n"
                 "work = client.map(time.sleep, [0.1] * 400, pure=False)")
        driver.get(job.dashboard)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".bk-root, .bk-Column, "
                                                                    "[data-root-id]")))
        time.sleep(4)
        assert "Dask" in driver.title, driver.title
        _screenshot(driver, tmp_path, "dashboard.png")
        busy.close()

        # File > Shut Down, then confirm, as a user would
        driver.get(job.url)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-LabShell")))
        file_menu = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")
                     if e.text == "File"][0]
        file_menu.click()
        wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, '.lm-Menu-item[data-command="filemenu:shutdown"]'))).click()
        wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept"))).click()
        assert job.end() == 0, job.log()
    finally:
        driver.quit()


def _notebook(output: str) -> dict:
    total, workers, address, _, direct = output.split()
    cell = {
        "cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
        "source": CLIENT_CODE.strip().replace(", os.getpid()", "").replace("import os\n", ""),
        "outputs": [{"output_type": "stream", "name": "stdout",
                     "text": f"{total} {workers} {address} {direct}\n"}],
    }
    return {"cells": [cell], "metadata": {"kernelspec": {"name": "python3",
                                                          "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _screenshot(driver: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    if SCREENSHOTS:
        shutil.copy(path, Path(SCREENSHOTS) / name)


@pytest.mark.mpi
@pytest.mark.timeout(120)
def test_run_prints_the_dashboard_tunnel(tmp_path: Path) -> None:
    from conftest import run_job

    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    require(_have("bokeh"), "bokeh missing: pip install 'dask-batch[dashboard]'")
    script = tmp_path / "hello.py"
    script.write_text("from dask.distributed import Client\nClient().submit(abs, -1).result()\n")
    job = run_job(mpiexec(3, str(MPIEXEC.parent / "dask-batch"), "run", str(script)))
    assert job.returncode == 0, job
    lines = [ln for ln in job.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 10, lines
    m = re.search(r"dashboard (http://127\.0\.0\.1:(\d+)/status)", job.stderr)
    assert m, job.stderr
    assert f"dashboard from a laptop: ssh -N -L {m.group(2)}:127.0.0.1:{m.group(2)} " in job.stderr


@pytest.mark.mpi
@pytest.mark.timeout(120)
def test_missing_extra_is_one_line(tmp_path: Path) -> None:
    from conftest import run_job

    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    # a Python where JupyterLab is not importable (find_spec sees sys.modules[...] = None)
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['jupyterlab'] = None\n")
    from conftest import job_env

    tag = uuid.uuid4().hex
    env = job_env(tag)
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    job = run_job(mpiexec(3, str(MPIEXEC.parent / "dask-batch"), "lab"), env=env)
    assert job.returncode == 2, job
    lines = [ln for ln in (job.stderr + job.stdout).splitlines() if ln.strip()]
    assert lines == ["dask-batch: error: dask-batch lab needs JupyterLab: "
                     "pip install 'dask-batch[lab]'"], job


@pytest.mark.slurm
@pytest.mark.timeout(240)
@pytest.mark.parametrize("end", ["shutdown", "USR2"])
def test_sbatch_lab_template(tmp_path: Path, end: str) -> None:
    """sbatch launchers/slurm-lab.sbatch on the real Slurm: banner in a 0600 output file, a
    kernel computes on the job's workers; File > Shut Down (the API) ends it with 0, the
    template's --signal=USR2 (sent now with scancel) stops it cleanly."""
    from clusters import PYTHON, Slurm, no_leftovers, slurm_env, slurm_up

    need_lab()
    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")
    tag = uuid.uuid4().hex
    jobs = Slurm(slurm_env(tag, PYTHON=PYTHON))
    out = tmp_path / "out.txt"
    try:
        template = Path(lab.__file__).parents[1] / "launchers" / "slurm-lab.sbatch"
        job_id = jobs.sbatch("-n", "4", "-o", str(out), str(template), cwd=tmp_path)
        session, deadline = Lab(), time.monotonic() + START
        while not (out.exists() and session.parse(out.read_text())):
            assert time.monotonic() < deadline, f"no banner:\n{out.read_text()}"
            assert jobs.show(job_id).get("JobState") in ("PENDING", "RUNNING"), out.read_text()
            time.sleep(0.5)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert "ssh -N -L" in out.read_text()
        kernel = Kernel(session)
        assert kernel.run(CLIENT_CODE).split()[:2] == ["5050", "2"]
        kernel.close()
        if end == "shutdown":
            session.api("POST", "/api/shutdown")
        else:
            subprocess.run(["scancel", "--signal=USR2", job_id], env=jobs.env, check=True,
                           timeout=15)
        state, code, _ = jobs.wait(job_id, timeout=90)
    finally:
        jobs.cancel_all()
    text = out.read_text()
    if end == "shutdown":
        assert (state, code) == ("COMPLETED", 0), text
    else:
        assert code == 128 + signal.SIGUSR2, f"{state} {code}\n{text}"
    assert "Traceback" not in text, text
    no_leftovers(tag)


# ---------------------------------------------------------------- pure parts


def test_tunnel_command() -> None:
    env = {"SLURM_SUBMIT_HOST": "login1", "USER": "ada"}
    assert tunnel.tunnel_command(["http://10.1.0.7:41000/lab"], "n7", env) == \
        "ssh -N -L 41000:10.1.0.7:41000 ada@login1"
    # loopback is only reachable from the node itself: jump through the login host
    assert tunnel.tunnel_command(["http://127.0.0.1:41000/lab", "http://127.0.0.1:42000/status"],
                              "n7", env) == \
        "ssh -N -L 41000:127.0.0.1:41000 -L 42000:127.0.0.1:42000 -J ada@login1 ada@n7"
    # PBS; the job runs on the submit host itself; no batch system at all
    assert tunnel.tunnel_command(["http://10.0.0.2:1/"], "c2", {"PBS_O_HOST": "fe.x.org"}) == \
        "ssh -N -L 1:10.0.0.2:1 fe.x.org"
    assert tunnel.tunnel_command(["http://127.0.0.1:5/"], "n7", {"SLURM_SUBMIT_HOST": "n7.x"}) == \
        "ssh -N -L 5:127.0.0.1:5 n7"
    assert tunnel.tunnel_command(["http://127.0.0.1:5/"], "ws", {}) == "ssh -N -L 5:127.0.0.1:5 ws"
    # a submit host named over loopback (Grid Engine: SGE_O_HOST=localhost) is no login host
    assert tunnel.tunnel_command(["http://198.19.0.1:8787/status"], "node1",
                              {"SGE_O_HOST": "localhost", "USER": "ada"}) == \
        "ssh -N -L 8787:198.19.0.1:8787 ada@node1"


def test_banner_is_short_and_complete(monkeypatch) -> None:
    monkeypatch.setattr(lab, "dashboard_ready", lambda: True)
    text = lab.banner("http://10.0.0.9:4100/lab?token=abc", "http://10.0.0.8:4200/status",
                      "n9", 10, {"SLURM_SUBMIT_HOST": "login", "USER": "u"})
    lines = text.splitlines()
    assert len(lines) == 5
    assert "http://10.0.0.9:4100/lab?token=abc" in lines[1]
    assert "http://10.0.0.8:4200/status" in lines[2]
    assert lines[3].endswith("ssh -N -L 4100:10.0.0.9:4100 -L 4200:10.0.0.8:4200 u@login")
    assert lines[4].endswith("http://localhost:4100/lab?token=abc")
    monkeypatch.setattr(lab, "dashboard_ready", lambda: False)
    text = lab.banner("http://h:1/lab?token=t", "http://h:2/status", "n", 1, {})
    assert "dask-batch[dashboard]" in text and "-L 2:" not in text


def test_server_argv_has_no_secret() -> None:
    server = lab.LabServer("127.0.0.1", None, ["--ServerApp.root_dir=/tmp"])
    try:
        argv = server.argv("/x/config.json")
        assert server.token not in " ".join(argv)
        assert "--no-browser" in argv and "--ServerApp.port=0" in argv
        assert argv[-1] == "--ServerApp.root_dir=/tmp"
        assert stat.S_IMODE(os.stat(server.runtime_dir).st_mode) == 0o700
    finally:
        server.close()
    assert not os.path.exists(server.runtime_dir)


def test_doctests() -> None:
    import doctest

    assert doctest.testmod(lab).failed == 0
    assert doctest.testmod(tunnel).attempted > 0 and doctest.testmod(tunnel).failed == 0
