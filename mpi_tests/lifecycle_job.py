"""One program for the lifecycle scenarios; the first argument picks the scenario.

    mpiexec -n N python mpi_tests/lifecycle_job.py SCENARIO [ARG]

The client writes what the test needs (pids, results) as ``KEY VALUE`` lines on stdout.
"""

import os
import signal
import sys
import time

from dask.distributed import Client

from dask_batch import AllocationEnding, BatchRunner

scenario = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else None


def say(key, value):
    print(key, value, flush=True)


RANK = os.environ.get("PMI_RANK", os.environ.get("SLURM_PROCID"))
if scenario == "crash-before-client" and RANK == "1":
    sys.exit(3)  # the client rank dies before it ever connects

with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=60)
        say("READY", os.getpid())
        if scenario == "return":  # the normal end: time it from here
            say("RETURNING", time.time())
        elif scenario == "os-exit":
            os._exit(int(arg))
        elif scenario == "sys-exit":
            sys.exit(int(arg))
        elif scenario == "raise":
            raise RuntimeError("the client failed on purpose")
        elif scenario == "sleep":  # the test kills or signals something
            say("SCHEDULER_PID", client.run_on_scheduler(os.getpid))
            say("WORKER_PIDS", " ".join(str(p) for p in client.run(os.getpid).values()))
            say("WORKER_RANK_PIDS", " ".join(str(p) for p in client.run(
                lambda dask_worker: os.getppid() if dask_worker.nanny else os.getpid()).values()))
            time.sleep(float(arg or 60))
            say("WOKE", 1)
        elif scenario == "kill-worker-process":  # what the OOM killer does, under a nanny
            pids = client.run(os.getpid)
            victim = sorted(pids)[0]
            os.kill(pids[victim], signal.SIGKILL)
            say("KILLED", pids[victim])
            time.sleep(1)
            client.wait_for_workers(runner.n_workers, timeout=60)
            say("RESULT", client.submit(sum, client.map(abs, range(-50, 50))).result())
            say("RESTARTED", len(client.scheduler_info()["workers"]))
        elif scenario == "kill-worker-rank":  # the rank: the nanny, or the worker without one
            pids = client.run(lambda dask_worker: os.getppid() if dask_worker.nanny
                              else os.getpid())
            victim = sorted(pids)[-1]
            os.kill(pids[victim], signal.SIGKILL)
            say("KILLED", pids[victim])
            deadline = time.time() + 30
            while len(client.scheduler_info()["workers"]) >= runner.n_workers:
                assert time.time() < deadline
                time.sleep(0.1)
            say("RESULT", client.submit(sum, client.map(abs, range(-50, 50))).result())
        elif scenario == "walltime":
            say("SCHEDULER_PID", client.run_on_scheduler(os.getpid))
            try:
                for _ in range(600):
                    client.submit(time.sleep, 0.05, pure=False).result()
            except AllocationEnding as e:
                say("ENDING", e.signum)
                # workers are still there to save state
                say("SAVED", client.submit(lambda: "state").result())
                if arg == "reraise":
                    raise
        else:
            raise SystemExit(f"unknown scenario {scenario}")
