"""What TLS costs: credentials, start-up, one connection, and 100 MB transfers, vs plain TCP.

    .venv/bin/python benchmarks/transfer.py --reps 5 --out benchmarks/results/transfer.csv

1. Credentials on rank 0: dask_batch's ECDSA P-256 key + certificate vs distributed's
   ``Security.temporary()`` (RSA-2048), in this process, after a warm-up (median of 20).
2. ``mpiexec -n 4`` jobs (scheduler, client, 2 workers) of ``jobs/transfer_job.py``,
   interleaved: ``tls`` (the default, EC), ``tls-rsa`` (RSA credentials) and ``tcp``
   (``--insecure``). Each reports the job's start-up (launch → every worker joined), one new
   connection to the scheduler (median of 30), a worker-to-worker transfer, a scatter and a
   gather of ``--size-mb`` random bytes (median of 3), and, under TLS, that the scheduler
   refuses a peer without the job's certificate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

JOB = str(h.JOBS / "transfer_job.py")
MODES = {
    "tls": {},
    "tls-rsa": {"BENCH_RSA": "1"},
    "tcp": {"DASK_BATCH__SECURE": "false"},
}
METRICS = ["startup_s", "connect_ms", "w2w_s", "scatter_s", "gather_s", "tiny_task_s"]


def credentials(n: int = 20) -> list[dict]:
    import distributed  # noqa: F401  (imported before timing, as on rank 0)

    from dask_batch.security import make_credentials

    def rsa() -> None:
        distributed.Security.temporary()

    rows = []
    for name, fn in (("ec-p256 (dask_batch)", make_credentials),
                     ("rsa-2048 (Security.temporary)", rsa)):
        fn()  # imports and warm-up
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        s = h.summary(times)
        rows.append({"credentials": name, "median_ms": round(s["median"], 2),
                     "min_ms": round(s["min"], 2), "max_ms": round(s["max"], 2), "n": n})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--max-foreign", type=float, default=None, metavar="SHARE",
                    help="wait until others use less than SHARE of the CPUs; re-run a run "
                    "they disturbed (see bootstrap.py)")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/transfer.csv")
    a = ap.parse_args()
    h.precompile()
    machine = h.machine()
    print(h.machine_line(machine), f"load {machine['load_at_start']}", flush=True)
    creds = credentials()
    print(h.table(creds, list(creds[0])), flush=True)
    rows = []
    h.stop_on_sigterm()
    for rep in range(a.reps):
        for mode in h.rotate(list(MODES), rep):
            for attempt in range(a.retries + 1):
                if a.max_foreign is not None:
                    h.wait_until_idle(a.max_foreign)
                with tempfile.TemporaryDirectory(prefix="bench-") as d:
                    argv = h.mpiexec(a.ranks, h.PY, JOB, str(a.size_mb), "3")
                    run = h.run_job(argv, h.clean_env(MODES[mode]), a.timeout, cwd=d)
                disturbed = a.max_foreign is not None and run.foreign_share > a.max_foreign
                if not disturbed or attempt == a.retries:
                    break
                print(f"rep {rep} {mode}: disturbed ({run.foreign_share:.0%}), again",
                      flush=True)
            if not run.ok or not run.report:
                print(f"FAILED {mode}: rc={run.rc}\n{run.stderr[-2000:]}", file=sys.stderr)
                continue
            r = dict(run.report)
            startup = r.pop("ready_at") - run.started
            row = {"mode": mode, "rep": rep, "startup_s": round(startup, 3),
                   "wall_s": round(run.wall, 3), "foreign_share": round(run.foreign_share, 4),
                   "disturbed": disturbed, "attempts": attempt + 1,
                   **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}}
            rows.append(row)
            print(f"rep {rep} {mode:8s} " + " ".join(
                f"{k}={row[k]}" for k in ("startup_s", "connect_ms", "w2w_s", "scatter_s",
                                          "gather_s") if k in row), flush=True)
    summary = []
    for mode in MODES:
        rs = [r for r in rows if r["mode"] == mode]
        if not rs:
            continue
        row = {"mode": mode, "runs": len(rs)}
        for k in METRICS:
            vals = [r[k] for r in rs if k in r]
            row[k] = round(statistics.median(vals), 4)
            row[k + "_min"] = round(min(vals), 4)
            row[k + "_max"] = round(max(vals), 4)
        mib = rs[0]["size_mib"]
        row["w2w_mib_s"] = round(mib / row["w2w_s"])
        row["gather_mib_s"] = round(mib / row["gather_s"])
        for k in ("key", "own_cert", "no_client_cert", "foreign_cert"):
            if k in rs[0]:
                row[k] = rs[0][k]
        summary.append(row)
    out = Path(a.out)
    h.write_csv(out, rows)
    h.write_csv(out.with_name(out.stem + "-summary.csv"), summary)
    h.write_csv(out.with_name(out.stem + "-credentials.csv"), creds)
    machine["load_at_end"] = round(h.load(), 2)
    h.write_machine(out.with_name(out.stem + "-machine.json"), machine)
    print()
    print(h.table(summary, ["mode", "runs", "startup_s", "connect_ms", "w2w_s", "w2w_mib_s",
                            "scatter_s", "gather_s", "gather_mib_s"]))
    for r in summary:
        if "key" in r:
            print(f"{r['mode']}: {r['key']}; own cert {r['own_cert']}; no client cert "
                  f"{r['no_client_cert']}; foreign cert {r['foreign_cert']}")


if __name__ == "__main__":
    main()
