"""The lifecycle and fault table, measured: every scenario under mpiexec and under srun.

    python benchmarks/faults.py [--reps 5] [--ranks 6] [--launchers mpiexec srun] [--csv F]

Each run is mpi_tests/lifecycle_job.py (rank 0 scheduler, rank 1 client, the rest workers).
Per scenario it reports the exit code(s) seen, the time from the event (the client's return,
the kill, the signal) to the launcher's exit, the time until no process of the job is left
(found by an environment tag: hydra puts every rank in its own session), and leftovers
(processes still alive 10 s after the launcher exited, then killed). srun needs the
single-node Slurm of ci/clusters. The tests assert the behaviour; this reports the numbers.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOB = str(ROOT / "mpi_tests" / "lifecycle_job.py")
TAG = "DASK_BATCH_TEST_TAG"


def tagged(tag: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(TAG) == tag:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


@dataclass
class Run:
    argv: list[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    def value(self, key: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in list(self.lines):
                if ln.startswith(key + " "):
                    return ln.split(" ", 1)[1]
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.01)
        raise RuntimeError(f"no {key} line: {self.lines}")


def _signal_ranks(tag: str, sig: int) -> None:
    for p in tagged(tag):
        try:
            if p.name().startswith("python"):
                p.send_signal(sig)
        except psutil.Error:
            pass


# scenario: (job arguments, extra env, the event: what the harness does, returns its time)
def _after_line(key: str):
    def event(run: Run, tag: str) -> float:
        value = run.value(key)
        return time.monotonic() - (time.time() - float(value)) if key == "RETURNING" \
            else time.monotonic()
    return event


def _kill_pid_of(key: str, index: int = 0):
    def event(run: Run, tag: str) -> float:
        pid = int(run.value(key).split()[index])
        os.kill(pid, signal.SIGKILL)
        return time.monotonic()
    return event


def _signal_all(sig: int):
    def event(run: Run, tag: str) -> float:
        run.value("SCHEDULER_PID")
        time.sleep(0.5)
        _signal_ranks(tag, sig)
        return time.monotonic()
    return event


def _ctrl_c(run: Run, tag: str) -> float:
    run.value("READY")
    os.killpg(run.proc.pid, signal.SIGINT)
    at = time.monotonic()
    if run.argv[0] == "srun":  # srun's first Ctrl-C only reports; a second within 1 s ends it
        time.sleep(0.3)
        os.killpg(run.proc.pid, signal.SIGINT)
    return at


def _from_start(run: Run, tag: str) -> float:
    return run.t0


SCENARIOS = {
    "client returns": (("return",), {}, _after_line("RETURNING")),
    "client raises": (("raise",), {}, _after_line("READY")),
    "client sys.exit(3)": (("sys-exit", "3"), {}, _after_line("READY")),
    "client os._exit(5)": (("os-exit", "5"), {}, _after_line("READY")),
    "client SIGKILLed": (("sleep", "120"), {}, _kill_pid_of("READY")),
    "worker process SIGKILLed (nanny)": (("kill-worker-process",),
                                         {"DASK_BATCH__WORKER__NANNY": "true"},
                                         _after_line("KILLED")),
    "worker rank SIGKILLed": (("kill-worker-rank",), {}, _after_line("KILLED")),
    "scheduler SIGKILLed": (("sleep", "120"), {}, _kill_pid_of("SCHEDULER_PID")),
    "client never connects": (("crash-before-client",),
                              {"DASK_BATCH__LIFECYCLE__CLIENT_TIMEOUT": "5",
                               "DASK_BATCH__RENDEZVOUS_TIMEOUT": "5"}, _from_start),
    "SIGTERM, client saves state": (("walltime",),
                                    {"DASK_BATCH__LIFECYCLE__SIGNAL_GRACE": "20"},
                                    _signal_all(signal.SIGTERM)),
    "Ctrl-C on the launcher": (("sleep", "120"), {}, _ctrl_c),
}


def argv_for(launcher: str, n: int, tag: str, args: tuple[str, ...]) -> list[str]:
    py = [sys.executable, JOB, *args]
    if launcher == "mpiexec":
        return [str(BIN / "mpiexec"), "-n", str(n), *py]
    return ["srun", "-n", str(n), "-J", f"dbf-{tag[:8]}", *py]


def env_for(launcher: str, tag: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "DASK_BATCH"))}
    env.update({TAG: tag, "PYTHONPATH": str(ROOT), "DASK_BATCH__DASHBOARD_ADDRESS": ":0",
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    if launcher == "srun":
        env["DASK_BATCH__MPI"] = "false"  # Slurm lets the other tasks live: environment mode
    env.update(extra)
    return env


def one(launcher: str, scenario: str, n: int) -> dict:
    args, extra, event = SCENARIOS[scenario]
    tag = uuid.uuid4().hex
    run = Run(argv_for(launcher, n, tag, args), env_for(launcher, tag, extra))
    run.start()
    row = {"launcher": launcher, "scenario": scenario, "ranks": n}
    try:
        at = event(run, tag)
        rc = run.proc.wait(60)
        exited = time.monotonic()
        while tagged(tag) and time.monotonic() - exited < 10:
            time.sleep(0.01)
        gone = time.monotonic()
        left = tagged(tag)
        row.update(rc=rc, exit_s=round(exited - at, 3), gone_s=round(gone - at, 3),
                   leftovers=len(left))
    except (subprocess.TimeoutExpired, RuntimeError) as e:
        row.update(rc="hang" if isinstance(e, subprocess.TimeoutExpired) else "error",
                   exit_s="", gone_s="", leftovers=len(tagged(tag)))
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        if launcher == "srun":
            subprocess.run(["scancel", "-n", f"dbf-{tag[:8]}"], capture_output=True, timeout=15)
        for p in tagged(tag):
            p.kill()
    return row


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["launcher"], r["scenario"]) for r in rows},
                  key=lambda k: (k[0], list(SCENARIOS).index(k[1])))
    for launcher, scenario in keys:
        rs = [r for r in rows if (r["launcher"], r["scenario"]) == (launcher, scenario)]
        gone = [r["gone_s"] for r in rs if r["gone_s"] != ""]
        out.append({
            "launcher": launcher, "scenario": scenario, "runs": len(rs),
            "rc": ",".join(sorted({str(r["rc"]) for r in rs})),
            "gone median s": f"{statistics.median(gone):.2f}" if gone else "-",
            "gone max s": f"{max(gone):.2f}" if gone else "-",
            "leftovers": sum(r["leftovers"] for r in rs),
        })
    return out


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt.format(*cols), sep, *(fmt.format(*x) for x in cells)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ranks", type=int, default=6)
    ap.add_argument("--launchers", nargs="+", default=["mpiexec", "srun"])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    rows = []
    for rep in range(a.reps):  # interleaved: load drifts hit every scenario alike
        for launcher in a.launchers:
            for scenario in a.scenarios:
                row = one(launcher, scenario, a.ranks)
                row["rep"] = rep
                rows.append(row)
                print(f"  {launcher:8} {scenario:34} rc={row['rc']!s:5} "
                      f"gone={row['gone_s']!s:6} left={row['leftovers']}", file=sys.stderr)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
          f"{a.ranks} ranks, {a.reps} runs each; times from the event to the last process gone")
    print(table(summarize(rows)))


if __name__ == "__main__":
    main()
