"""Threads, memory and GPUs per worker rank: the node's share, divided among its workers."""

from __future__ import annotations

import pytest

from dask_batch.placement import Placement
from dask_batch.resources import (
    ResourceError,
    assign_gpus,
    local_worker_count,
    resolve,
)
from dask_batch.units import UnitError, parse_memory

GiB = 2**30


def place(rank, size, local_rank, local_size):
    return Placement(rank=rank, size=size, local_rank=local_rank, local_size=local_size)


def test_workers_on_the_scheduler_node_exclude_scheduler_and_client():
    assert local_worker_count(place(2, 12, 2, 6), (0, 1)) == 4
    assert local_worker_count(place(7, 12, 1, 6), (0, 1)) == 6


def test_memory_is_divided_among_the_nodes_workers():
    r = resolve(place(2, 6, 2, 6), {}, physical_memory=40 * GiB, cgroup=None, affinity=8)
    assert r.local_workers == 4
    assert r.memory_limit == 10 * GiB
    assert r.nthreads == 2 or r.sources["nthreads"] == "CPU affinity"


def test_slurm_mem_per_node_wins_over_physical():
    env = {"SLURM_MEM_PER_NODE": "4096"}
    r = resolve(place(3, 6, 1, 2), env, physical_memory=64 * GiB, cgroup=None, affinity=2)
    assert r.node_memory == 4 * GiB and r.memory_limit == 2 * GiB
    assert "SLURM_MEM_PER_NODE" in r.sources["memory_limit"]


def test_slurm_mem_per_cpu_times_cpus_on_node():
    env = {"SLURM_MEM_PER_CPU": "1024", "SLURM_CPUS_ON_NODE": "4"}
    r = resolve(place(2, 4, 0, 2), env, physical_memory=64 * GiB, cgroup=None, affinity=2)
    assert r.node_memory == 4 * GiB and r.memory_limit == 2 * GiB


def test_cgroup_limit_wins_over_physical():
    r = resolve(place(2, 3, 2, 3), {}, physical_memory=64 * GiB, cgroup=8 * GiB, affinity=2)
    assert r.memory_limit == 8 * GiB


def test_threads_from_slurm_cpus_per_task():
    r = resolve(place(2, 3, 2, 3), {"SLURM_CPUS_PER_TASK": "5"}, physical_memory=GiB,
                cgroup=None, affinity=2)
    assert r.nthreads == 5


def test_explicit_values_win():
    r = resolve(place(2, 3, 2, 3), {}, nthreads=3, memory_limit="1GiB", physical_memory=GiB,
                cgroup=None, affinity=2)
    assert (r.nthreads, r.memory_limit) == (3, GiB)


@pytest.mark.parametrize("bad", ["lots", "-1GB", "", "12 parsecs"])
def test_bad_memory_string_is_one_clear_error(bad):
    with pytest.raises(UnitError, match="bad memory size"):
        parse_memory(bad)


def test_gpus_by_local_worker_index():
    gpus = ["0", "1", "2", "3"]
    assert [assign_gpus(gpus, i, 1) for i in range(5)] == [("0",), ("1",), ("2",), ("3",),
                                                          ("0",)]
    assert assign_gpus(gpus, 1, 2) == ("2", "3")
    assert assign_gpus([], 0, 1) == ()


def test_gpu_auto_uses_cuda_visible_devices():
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    # local ranks 0,1 are scheduler and client: local rank 3 is the node's second worker
    r = resolve(place(3, 6, 3, 6), env, gpus="auto", physical_memory=GiB, cgroup=None,
                affinity=2)
    assert r.gpus == ("5",)


def test_too_few_gpus_is_an_error():
    with pytest.raises(ResourceError, match="GPUs"):
        resolve(place(2, 3, 2, 3), {"CUDA_VISIBLE_DEVICES": "0"}, gpus=2, physical_memory=GiB,
                cgroup=None, affinity=2)
