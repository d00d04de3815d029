"""Data-heavy workloads, run by the client of a job (``workload_batch.py``, ``_dask_mpi.py``).

Each takes the client and a scale (1 = the sizes below) and returns its timed phases in seconds
and a check value, so that a run that computed something else is seen. The work time is the sum
of the phases: the client's imports and the futures job's input arrays are made before.

* ``array``: a 512 MiB dask.array (8192², 64 chunks of 8 MiB) made and persisted, then
  ``(x + x.T).mean()`` (half the transposed blocks cross between the two workers) and a rechunk
  from square blocks to column strips (all-to-all) reduced to one number.
* ``shuffle``: a dask.dataframe of 10 M rows (3 columns, 240 MiB) made and persisted, then
  ``set_index`` on a random key (quantiles, then a shuffle of every row: distributed's p2p
  shuffle by default) and the rows per partition counted.
* ``futures``: 32 arrays of 8 MiB scattered, 800 tasks each on two of them (so half the inputs
  cross between workers) returning 1 MiB, gathered by the client.
"""

from __future__ import annotations

import importlib
import time

import numpy as np


def _timed(phases: dict[str, float], name: str, fn):
    t = time.perf_counter()
    out = fn()
    phases[name] = time.perf_counter() - t
    return out


def _persisted(collection):
    """``collection`` computed and held on the workers."""
    from distributed import wait

    collection = collection.persist()
    wait(collection)
    return collection


def array_job(client, scale: float) -> tuple[dict[str, float], float]:
    import dask.array as da

    n = int(8192 * scale ** 0.5) // 8 * 8
    phases: dict[str, float] = {}
    x = da.random.default_rng(0).random((n, n), chunks=(n // 8, n // 8))
    x = _timed(phases, "make_s", lambda: _persisted(x))
    mean = _timed(phases, "transpose_s", lambda: float((x + x.T).mean().compute()))
    strips = x.rechunk((n, n // 32))
    col = _timed(phases, "rechunk_s", lambda: float(strips.max(axis=0).sum().compute()))
    return phases, round(mean, 3) + round(col / n, 3)


def _part(i: int, rows: int):
    import pandas as pd

    rng = np.random.default_rng(i)
    return pd.DataFrame({"key": rng.integers(0, 2 ** 40, rows), "x": rng.random(rows),
                         "y": rng.random(rows)})


def shuffle_job(client, scale: float) -> tuple[dict[str, float], float]:
    import dask.dataframe as dd

    parts, rows = 20, int(500_000 * scale)
    phases: dict[str, float] = {}
    df = dd.from_map(_part, range(parts), rows=rows)
    df = _timed(phases, "make_s", lambda: _persisted(df))
    lengths = _timed(phases, "set_index_s",
                     lambda: df.set_index("key").map_partitions(len).compute())
    assert int(lengths.sum()) == parts * rows, (int(lengths.sum()), parts * rows)
    return phases, float(parts * rows)


def _combine(a: np.ndarray, b: np.ndarray, i: int) -> np.ndarray:
    k = a.size // 8
    return a[:k] + b[-k:] * i


def futures_job(client, scale: float) -> tuple[dict[str, float], float]:
    n_arrays, n_tasks = 32, int(800 * scale)
    phases: dict[str, float] = {}
    arrays = [np.random.default_rng(i).random(2 ** 20) for i in range(n_arrays)]  # untimed
    futs = _timed(phases, "scatter_s", lambda: client.scatter(arrays, hash=False))
    tasks = [client.submit(_combine, futs[i % n_arrays], futs[(i * 7 + 3) % n_arrays], i,
                           pure=False) for i in range(n_tasks)]
    out = _timed(phases, "compute_gather_s", lambda: client.gather(tasks))
    check = float(sum(o[0] for o in out))
    return phases, round(check, 3)


WORKLOADS = {"array": array_job, "shuffle": shuffle_job, "futures": futures_job}
IMPORTS = {"array": ["dask.array"], "shuffle": ["dask.dataframe", "pandas", "pyarrow"],
           "futures": []}


def run(client, name: str, scale: float) -> dict:
    """Run workload ``name``; the report line's fields."""
    import cloudpickle
    import work

    cloudpickle.register_pickle_by_value(work)  # workers need not import this module
    for module in IMPORTS[name]:  # the client's imports are not the workload's time
        importlib.import_module(module)
    phases, check = WORKLOADS[name](client, scale)
    return {"workload": name, "scale": scale, "work_s": round(sum(phases.values()), 4),
            "check": check, **{k: round(v, 4) for k, v in phases.items()}}
