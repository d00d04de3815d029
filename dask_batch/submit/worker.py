"""What an add-on job runs: ``python -m dask_batch.submit.worker --scheduler-file F --name N``.

The address and TLS credentials come from the 0600 scheduler file, never from the command
line (anyone on the node can read argv). ``--death-timeout`` makes a worker whose cluster is
gone exit instead of waiting until walltime; ``--lifetime`` (walltime minus a margin,
staggered) retires it before the batch system kills it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from typing import Any

from .. import report
from ..units import UnitError, parse_ports

logger = logging.getLogger("dask_batch.submit.worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dask_batch.submit.worker")
    p.add_argument("--scheduler-file", required=True)
    p.add_argument("--name", required=True, help="worker name, or its prefix with --job-id")
    p.add_argument("--job-id", help="the job (array) id: name becomes NAME-<id>-<index>")
    p.add_argument("--array-index", default="0")
    p.add_argument("--nthreads", type=int, default=1)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--memory-limit", default="auto")
    p.add_argument("--death-timeout", type=float, default=60)
    p.add_argument("--lifetime", default=None)
    p.add_argument("--lifetime-stagger", default="0s")
    p.add_argument("--nanny", dest="nanny", action="store_true", default=True)
    p.add_argument("--no-nanny", dest="nanny", action="store_false")
    p.add_argument("--local-directory")
    p.add_argument("--interface")
    p.add_argument("--protocol")
    p.add_argument("--resources", help='JSON, e.g. {"GPU": 1}')
    p.add_argument("--worker-options", help="JSON: more Worker/Nanny keyword arguments")
    p.add_argument("--exit-code-dir", help="write <name>.ec here at exit (no job script)")
    return p.parse_args(argv)


def worker_name(args: argparse.Namespace) -> str:
    if args.job_id is None:
        return args.name
    m = re.match(r"\d+", args.job_id)  # 123[].server -> 123
    job = m.group(0) if m else args.job_id
    return f"{args.name}-{job}-{args.array_index}"


async def serve(args: argparse.Namespace, name: str) -> int:
    from distributed import Nanny, Worker

    from ..rendezvous import read_scheduler_file
    from ..security import security_from

    contact = read_scheduler_file(args.scheduler_file)
    security = security_from(contact.creds)
    names = [name] if args.processes == 1 else [f"{name}-{i}" for i in range(args.processes)]
    kwargs: dict[str, Any] = {
        "nthreads": args.nthreads,
        "memory_limit": args.memory_limit,
        "security": security,
        "death_timeout": args.death_timeout,
        "local_directory": args.local_directory,
        "interface": args.interface,
        "resources": json.loads(args.resources) if args.resources else None,
    }
    if args.lifetime:
        kwargs.update(lifetime=args.lifetime, lifetime_stagger=args.lifetime_stagger,
                      lifetime_restart=False)
    if args.protocol:
        kwargs["protocol"] = args.protocol
    kwargs.update(json.loads(args.worker_options) if args.worker_options else {})
    cls = Nanny if args.nanny else Worker
    servers = [cls(contact.address, name=n, **kwargs, **ports)
               for n, ports in zip(names, _ports(kwargs, len(names), args.nanny), strict=True)]

    loop = asyncio.get_running_loop()
    stopping: list[int] = []

    def stop(signum: int) -> None:  # the batch system ends the job: leave the cluster cleanly
        stopping.append(signum)
        for s in servers:
            asyncio.ensure_future(s.close())

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        loop.add_signal_handler(sig, stop, int(sig))
    try:
        await asyncio.gather(*servers)
    except (OSError, TimeoutError) as e:
        report.say(f"cannot reach the scheduler {contact.address}: {e}")
        for s in servers:
            await s.close()
        return 1
    await asyncio.gather(*(s.finished() for s in servers))
    return 128 + stopping[0] if stopping else 0


def _ports(kwargs: dict[str, Any], n: int, nanny: bool) -> list[dict[str, Any]]:
    """dask-worker's ``--worker-port``/``--nanny-port`` (a port, or a range ``8000:8010`` that
    gives each of ``n`` worker processes its own) as each server's keywords: a nanny listens
    on the nanny port and starts its worker on the worker port; a worker alone listens on the
    worker port. Taken out of ``kwargs``."""
    worker, nanny_port = kwargs.pop("worker_port", None), kwargs.pop("nanny_port", None)
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for text, key in ((worker, "worker_port" if nanny else "port"),
                      (nanny_port if nanny else None, "port")):
        if text is None:
            continue
        ports = parse_ports(text)
        if len(ports) < n and ports != [0]:
            raise UnitError(f"port {text}: {n} worker processes need a range of {n} ports")
        for i in range(n):
            out[i][key] = ports[0] if ports == [0] else ports[i]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = worker_name(args)
    report.set_rank_prefix(name, "worker")
    logging.basicConfig(level=logging.WARNING, format=f"{name} %(levelname)s %(message)s")
    from ..errors import BatchError

    try:
        code = asyncio.run(serve(args, name))
    except BatchError as e:  # no or unsafe scheduler file, too few ports: one line
        report.error(e)
        code = 2
    if args.exit_code_dir:
        try:
            with open(os.path.join(args.exit_code_dir, f"{name}.ec"), "w") as f:
                f.write(f"{code}\n")
        except OSError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
