"""The member link: each client and worker rank's connection to the scheduler.

Every client and worker rank holds one extra connection to the scheduler, the *member link*
(op ``batch_member``). It carries the client's exit code and the walltime notice, and it is how
ranks notice deaths fast: the kernel closes a dead process's sockets at once, and TCP keepalive
(set on the link, answered by the kernel even when an event loop is busy) catches a lost node
within ``lifecycle.scheduler-timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import report
from ..errors import EXIT_CLIENT_LOST, EXIT_NO_CLIENT
from . import exit as exit_

logger = logging.getLogger("dask_batch")


def lost_grace(timeout: float) -> float:
    """How long a rank that lost the scheduler may take to end: the keepalive spends ~2/3 of
    ``scheduler-timeout`` noticing, the rest is for leaving, so the whole stays within it."""
    return max(1.0, round(timeout / 3, 1))


def set_keepalive(comm: Any, timeout: float) -> None:
    """Kernel keepalive on a TCP/TLS comm: a dead peer node is noticed within ``timeout``."""
    sock = getattr(comm, "socket", None) or getattr(getattr(comm, "stream", None), "socket", None)
    if sock is None or not hasattr(socket, "TCP_KEEPIDLE"):
        return
    # probes are answered by the peer's kernel, not its (maybe busy) process: a silent peer is
    # taken for gone after idle + count seconds, ~2/3 of the timeout, leaving time to exit
    idle = max(1, int(timeout) // 3)
    count = max(1, int(timeout) // 3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # it overrides the probe count when set: same bound
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, (idle + count) * 1000)


# ---------------------------------------------------------------- scheduler side


@dataclass
class Member:
    rank: int
    role: str
    host: str
    pid: int
    comm: Any = None
    done: bool = False
    quiet: bool = False  # acknowledged the release: nothing of it will log the teardown


@dataclass
class JobWatch:
    """Runs on the scheduler: tracks members, decides when and how the job ends."""

    client_expected: bool
    client_timeout: float
    link_timeout: float
    signal_grace: float
    # by (role, rank); ranks of other launches that joined (--no-scheduler) by "guest:host:pid"
    members: dict[Any, Member] = field(default_factory=dict)
    client_code: int | None = None
    client_lost: bool = False
    client_absent: bool = False
    outcome: asyncio.Future | None = None
    ending_signal: int | None = None
    # called with the rank of a worker whose link broke (the scheduler drops its worker now,
    # not when distributed's worker-ttl of minutes runs out on a partitioned node)
    on_worker_lost: Any = None

    def start(self) -> None:
        self.outcome = asyncio.get_running_loop().create_future()
        if self.client_expected and self.client_timeout > 0:
            asyncio.get_running_loop().call_later(self.client_timeout, self._client_never_came)

    def _finish(self, code: int, why: str | None = None) -> None:
        assert self.outcome is not None
        if not self.outcome.done():
            if why:
                logger.error("%s", why)
            self.outcome.set_result(code)

    def _client_never_came(self) -> None:
        if not any(m.role == "client" for m in self.members.values()):
            self.client_absent = True  # nobody to wait for at the release
            self._finish(
                EXIT_NO_CLIENT,
                f"the client did not connect within {self.client_timeout:g} s "
                "(did the client rank crash before Client()? see its output); stopping",
            )

    async def member(
        self, comm: Any, rank: int, role: str, host: str, pid: int, guest: bool = False
    ) -> Any:
        """Handler of ``batch_member``: hold the link until the member ends or dies."""
        from distributed.core import Status

        set_keepalive(comm, self.link_timeout)
        # (role, rank): with inclusive workers the client's rank has a worker's link too
        key = f"guest:{host}:{pid}" if guest else (role, rank)
        m = self.members[key] = Member(rank, role, host, pid, comm)
        if self.outcome is not None and self.outcome.done():
            await self._tell(m, {"op": "release"})  # a latecomer: the job is over already
        elif self.ending_signal is not None:
            await self._tell(m, {"op": "ending", "signum": self.ending_signal})
        try:
            while True:
                msg = await comm.read()
                if msg.get("op") == "done":
                    m.done = True
                    if role == "client":
                        self.client_code = int(msg.get("code", 0))
                        self._finish(self.client_code)
                elif msg.get("op") == "signal" and not guest:  # a guest's own allocation
                    self.on_signal(int(msg["signum"]))
                elif msg.get("op") == "released":
                    m.quiet = True
        except Exception:
            pass
        if guest:  # another launch's rank: its own job decides what its loss means
            self.members.pop(key, None)
        elif not m.done and not (self.outcome and self.outcome.done()):
            if role == "client":
                self.client_lost = True
                self._finish(
                    EXIT_CLIENT_LOST,
                    f"the client (rank {rank} on {host}, pid {pid}) died without finishing; "
                    "stopping the cluster",
                )
            else:
                logger.error(
                    "worker rank %d on %s (pid %d) died; continuing with the others",
                    rank,
                    host,
                    pid,
                )
                if self.on_worker_lost is not None:
                    await self.on_worker_lost(rank)
        return Status.dont_reply

    async def _tell(self, m: Member, msg: dict) -> None:
        try:
            await m.comm.write(msg)
        except Exception:
            pass

    def on_signal(self, signum: int) -> None:
        """The allocation is ending: tell the client once, bound the rest by the grace time."""
        if self.ending_signal is not None:
            return
        self.ending_signal = signum
        name = signal.Signals(signum).name
        if not self.client_expected:  # dask-mpi style: nobody's work to save, end now
            logger.warning("%s: no client to tell; retiring the workers", name)
            self._finish(128 + signum, None)
            return
        logger.warning("%s: telling the client; the job ends within %g s", name,
                       self.signal_grace)
        clients = [m for m in self.members.values() if m.role == "client"]
        for m in clients:
            asyncio.ensure_future(self._tell(m, {"op": "ending", "signum": signum}))
        if not clients:
            self._finish(128 + signum, None)
        asyncio.get_running_loop().call_later(
            max(0.0, self.signal_grace - 1.0), self._finish, 128 + signum, None
        )

    async def release_members(self, expected: int, timeout: float) -> None:
        """Tell every member the job is over.

        Ranks still starting (the client may end before every worker joined) are waited for,
        within ``timeout``, and released as they come: MPI_Finalize waits for them anyway, and a
        worker that finds no scheduler would report a failure the job did not have.
        """
        members = list(self.members.values())
        await asyncio.gather(*(self._tell(m, {"op": "release"}) for m in members))
        deadline = time.monotonic() + timeout
        expected -= int(self.client_absent)
        while (sum(isinstance(k, tuple) for k in self.members) < expected
               and time.monotonic() < deadline):
            await asyncio.sleep(0.01)
        # then the workers' acknowledgements (a round trip): a worker closing its own
        # processes first does not see the scheduler close and log the futures it cancels
        deadline = time.monotonic() + min(timeout, 2.0)
        while time.monotonic() < deadline and any(
            m.role == "worker" and not m.quiet and m.comm is not None and not m.comm.closed()
            for m in self.members.values()
        ):
            await asyncio.sleep(0.002)


# ---------------------------------------------------------------- member side


class MemberLink:
    """A client or worker rank's link to the scheduler, served on its own loop or thread."""

    def __init__(
        self,
        address: str,
        security: Any,
        rank: int,
        role: str,
        timeout: float,
        on_lost: Any,
        on_ending: Any = None,
        guest: bool = False,
        on_released: Any = None,
    ):
        self.address, self.security, self.rank, self.role = address, security, rank, role
        self.guest = guest  # a rank of another launch joining this scheduler
        self.timeout, self.on_lost, self.on_ending = timeout, on_lost, on_ending
        self.on_released = on_released
        self.comm: Any = None
        self.released = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def connect(self) -> None:
        from distributed.comm import connect

        self.loop = asyncio.get_running_loop()
        self.comm = await connect(
            self.address,
            timeout=self.timeout,
            **self.security.get_connection_args("client" if self.role == "client" else "worker"),
        )
        set_keepalive(self.comm, self.timeout)
        await self.comm.write(
            {
                "op": "batch_member",
                "rank": self.rank,
                "role": self.role,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "guest": self.guest,
                "reply": False,
            }
        )

    async def serve(self) -> None:
        """Read until released or lost; ``on_lost`` decides what losing the scheduler means."""
        try:
            while True:
                msg = await self.comm.read()
                op = msg.get("op") if isinstance(msg, dict) else None
                if op == "release":
                    self.released = True
                    report.quiet()  # the scheduler closes next: failing heartbeats are not news
                    if self.on_released is not None:
                        self.on_released()
                    await self.comm.write({"op": "released"})
                elif op == "ending" and self.on_ending is not None:
                    self.on_ending(int(msg["signum"]))
        except Exception:
            pass
        if not self.released:
            exit_.scheduler_lost = True
            self.on_lost()

    async def send(self, msg: dict) -> None:
        if self.comm is not None and not self.comm.closed():
            await self.comm.write(msg)

    def send_threadsafe(self, msg: dict, timeout: float = 5.0) -> bool:
        """From another thread: send ``msg`` and wait for it to be written."""
        if self.loop is None or self.loop.is_closed():
            return False
        fut = asyncio.run_coroutine_threadsafe(self.send(msg), self.loop)
        try:
            fut.result(timeout)
            return True
        except Exception:
            return False

    def start_thread(self) -> None:
        """Connect and serve on a daemon thread (the client rank's main thread runs user code)."""
        ready = threading.Event()
        error: list[BaseException] = []

        async def main() -> None:
            try:
                await self.connect()
            except BaseException as e:
                error.append(e)
                ready.set()
                return
            ready.set()
            await self.serve()

        thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="dask-batch-link", daemon=True
        )
        thread.start()
        ready.wait(self.timeout + 5)
        if error:
            raise error[0]
