"""A dask.dataframe job: every rank runs this file; rank 1 runs the body of the `with`.

    mpiexec -n 6 python examples/dataframe.py           # or: srun -n 6 python examples/dataframe.py
    sbatch launchers/slurm.sbatch examples/dataframe.py --rows 10000000   # `run` style, below

Needs pandas and pyarrow next to dask (pip install "dask[dataframe]"). The same file also works
as the client script of `dask-batch run` (then a plain Client() connects to the job's cluster).
"""

import argparse
import os

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.distributed import Client

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=200_000)
parser.add_argument("--partitions", type=int, default=16)
args = parser.parse_args()


def analysis(client: Client, n_workers: int) -> None:
    client.wait_for_workers(n_workers, timeout=120)
    rng = np.random.default_rng(42)
    pdf = pd.DataFrame({
        "station": rng.integers(0, 50, args.rows),
        "temperature": rng.normal(15, 8, args.rows).round(2),
        "rain": rng.exponential(2.0, args.rows).round(1),
    })
    # the partitions go to the workers; the group-by runs there
    df = dd.from_pandas(pdf, npartitions=args.partitions).persist()
    how = {"temperature": "mean", "rain": ["sum", "max"]}
    stats = df.groupby("station").agg(how, split_out=1).compute().sort_index()  # no shuffle
    wet = int((stats["rain"]["max"] > 20).sum())

    # the same on one core with pandas: the cluster must agree
    expected = pdf.groupby("station").agg(how)
    pd.testing.assert_frame_equal(stats, expected, check_exact=False)
    where = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
    print(f"{args.rows} rows in {df.npartitions} partitions on {len(where)} workers: "
          f"{len(stats)} stations, warmest {stats['temperature']['mean'].idxmax()} "
          f"({stats['temperature']['mean'].max():.2f} C), {wet} with a day over 20 mm")


if "DASK_BATCH_N_WORKERS" in os.environ:  # the client of `dask-batch run examples/dataframe.py`
    with Client() as client:
        analysis(client, int(os.environ["DASK_BATCH_N_WORKERS"]))
else:
    from dask_batch import BatchRunner

    with BatchRunner() as runner, Client(runner) as client:
        analysis(client, runner.n_workers)
