"""A GPU job: one worker per GPU, GPU tasks routed with resources={"GPU": 1}.

    srun -N 1 -n 6 --gpus=4 python examples/gpu.py        # 4 workers, one GPU each
    mpiexec -n 6 python examples/gpu.py                    # any node: GPUs found or not

Every rank runs this file; rank 1 runs the body of the `with`. ``gpus="auto"`` gives each
worker rank one GPU of its node, chosen by its local rank (CUDA_VISIBLE_DEVICES is set in the
worker before any CUDA library loads), and advertises it as the Dask resource ``GPU``. The
arrays live on the GPU with CuPy (pip install cupy-cuda12x). Without GPUs, or without CuPy,
the same computation runs on the CPU with NumPy, and the job says so in one line:

    GPU: none on the 4 workers: running on the CPU with NumPy
"""

from dask.distributed import Client

from dask_batch import BatchRunner


def describe() -> dict:
    """On a worker: its GPU (from CUDA_VISIBLE_DEVICES) and whether CuPy can use it."""
    import os

    info = {"gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "cupy": None}
    if info["gpus"]:
        try:
            import cupy

            info["cupy"] = cupy.cuda.runtime.getDeviceCount() > 0
        except Exception as e:  # no CuPy, no driver, or no device: fall back to NumPy
            info["cupy"] = False
            info["why"] = f"{type(e).__name__}: {e}"
    return info


def trace_of_square(n: int, seed: int, use_gpu: bool) -> tuple[str, float]:
    """trace(A @ A) for a random n x n matrix A: on the GPU with CuPy, else with NumPy."""
    import numpy as np

    a = np.random.default_rng(seed).standard_normal((n, n))
    if use_gpu:
        import cupy

        g = cupy.asarray(a)
        return "cupy", float(cupy.trace(g @ g).get())
    return "numpy", float(np.trace(a @ a))


with BatchRunner(gpus="auto") as runner, Client(runner) as client:
    client.wait_for_workers(runner.n_workers)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    with_gpu = [a for a, w in workers.items() if w.get("resources", {}).get("GPU")]
    info = client.run(describe)
    usable = bool(with_gpu) and all(info[a]["cupy"] for a in with_gpu)
    devices = ", ".join(sorted(info[a]["gpus"] for a in with_gpu))
    if usable:
        print(f"GPU: {len(with_gpu)} of {len(workers)} workers have one "
              f"(CUDA_VISIBLE_DEVICES {devices}): running on the GPUs with CuPy")
    elif with_gpu:
        reasons = "; ".join(sorted({info[a].get("why", "no device") for a in with_gpu}))
        print(f"GPU: {len(with_gpu)} workers were given one (CUDA_VISIBLE_DEVICES {devices}) "
              f"but CuPy cannot use it ({reasons}): running on the CPU with NumPy")
    else:
        print(f"GPU: none on the {len(workers)} workers: running on the CPU with NumPy")

    # GPU tasks only where a GPU is (resources=); without GPUs, anywhere
    restrict = {"resources": {"GPU": 1}} if usable else {}
    futures = [client.submit(trace_of_square, 300, seed, usable, pure=False, **restrict)
               for seed in range(8)]
    results = client.gather(futures)
    backends = {backend for backend, _ in results}
    expected = [trace_of_square(300, seed, False)[1] for seed in range(8)]
    assert all(abs(got - want) < 1e-6 * abs(want) + 1e-6
               for (_, got), want in zip(results, expected, strict=True))
    print(f"{len(results)} matrix products with {', '.join(sorted(backends))}: "
          f"sum of traces {sum(r for _, r in results):.3f} (checked against NumPy)")
