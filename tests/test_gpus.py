"""GPUs of NVIDIA, AMD and Intel from fake device trees and launcher environments: the vendor,
what a rank sees, each worker's share by local rank, and the variables its worker sets."""

from __future__ import annotations

import os
import stat

import pytest
from gpu_trees import fake_tree

from dask_batch import gpus
from dask_batch.placement import Placement
from dask_batch.resources import ResourceError, resolve

pytestmark = pytest.mark.timeout(30)
GiB = 2**30


def place(rank: int, size: int, local_rank: int, local_size: int) -> Placement:
    return Placement(rank=rank, size=size, local_rank=local_rank, local_size=local_size)


def worker(tmp_path, tree, env, rank, size, gpus_setting="auto", local=None):
    """Resources of one rank on one node (ranks 0 and 1 are the scheduler and client)."""
    root = fake_tree(tmp_path, *tree) if tree else tmp_path
    environ = {gpus.ROOT_ENV: str(root), **env}
    p = place(rank, size, rank if local is None else local, size if local is None else size)
    return resolve(p, environ, gpus=gpus_setting, physical_memory=GiB, cgroup=None, affinity=4)


# (tree, launcher env) -> (vendor, what the rank sees, where it came from)
SEEN = [
    (("nvidia", 4), {}, "nvidia", ("0", "1", "2", "3"), "devices"),
    (("nvidia", 4), {"CUDA_VISIBLE_DEVICES": "1,3"}, "nvidia", ("1", "3"), "CUDA_VISIBLE_DEVICES"),
    (("amd", 4), {}, "amd", ("0", "1", "2", "3"), "devices"),
    (("amd", 8), {"ROCR_VISIBLE_DEVICES": "2,3"}, "amd", ("2", "3"), "ROCR_VISIBLE_DEVICES"),
    # Slurm without AutoDetect sets every vendor's variable: AMD's own one counts on AMD
    (("amd", 8), {"ROCR_VISIBLE_DEVICES": "4,5", "CUDA_VISIBLE_DEVICES": "4,5"}, "amd",
     ("4", "5"), "ROCR_VISIBLE_DEVICES"),
    # HIP indices count within ROCr's list
    (("amd", 8), {"ROCR_VISIBLE_DEVICES": "4,5,6", "HIP_VISIBLE_DEVICES": "0,2"}, "amd",
     ("4", "6"), "ROCR_VISIBLE_DEVICES + HIP_VISIBLE_DEVICES"),
    (("amd", 4), {"HIP_VISIBLE_DEVICES": "1,3"}, "amd", ("1", "3"), "HIP_VISIBLE_DEVICES"),
    (("intel", 2), {}, "intel", ("0", "1"), "devices"),
    (("intel", 2, 2), {}, "intel", ("0.0", "0.1", "1.0", "1.1"), "devices"),
    (("intel", 2, 2), {"ZE_AFFINITY_MASK": "1"}, "intel", ("1.0", "1.1"), "ZE_AFFINITY_MASK"),
    (("intel", 2, 2), {"ZE_AFFINITY_MASK": "0.0,0.1,1.0"}, "intel", ("0.0", "0.1", "1.0"),
     "ZE_AFFINITY_MASK"),
    (("intel", 2, 2), {"ZE_FLAT_DEVICE_HIERARCHY": "FLAT"}, "intel", ("0", "1", "2", "3"),
     "devices"),
    (("intel", 6, 2), {"ZE_FLAT_DEVICE_HIERARCHY": "FLAT", "ZE_AFFINITY_MASK": "4,5"}, "intel",
     ("4", "5"), "ZE_AFFINITY_MASK"),
    # no devices in the tree: the variable the launcher set says which vendor
    (None, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, "nvidia", ("4", "5", "6", "7"),
     "CUDA_VISIBLE_DEVICES"),
    (None, {"ROCR_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "1"}, "amd", ("1",),
     "ROCR_VISIBLE_DEVICES"),
    (None, {"ZE_AFFINITY_MASK": "0.1"}, "intel", ("0.1",), "ZE_AFFINITY_MASK"),
    (("nvidia", 2), {"CUDA_VISIBLE_DEVICES": ""}, "nvidia", (), "none"),
    (None, {}, None, (), "none"),
    (("amd", 0), {}, None, (), "none"),  # only the BMC's display: no GPU
]


@pytest.mark.parametrize(("tree", "env", "vendor", "units", "source"), SEEN)
def test_what_a_rank_sees(tmp_path, tree, env, vendor, units, source):
    root = fake_tree(tmp_path, *tree) if tree else tmp_path
    seen = gpus.visible(env, root=root)
    assert (seen.vendor, seen.units, seen.source) == (vendor, units, source)


def test_amd_needs_the_compute_driver(tmp_path):
    """Render nodes of vendor 0x1002 without /dev/kfd: a display, not a ROCm device."""
    root = fake_tree(tmp_path, "amd", 2)
    (root / "dev" / "kfd").unlink()
    assert gpus.visible({}, root=root).vendor is None


def test_intel_i915_tiles_from_gt_directories(tmp_path):
    root = fake_tree(tmp_path, "intel", 1)
    for k in range(2):
        (root / "sys/class/drm/renderD129/device/drm/card1/gt" / f"gt{k}").mkdir(parents=True)
    assert gpus.visible({}, root=root).units == ("0.0", "0.1")


# (tree, launcher env, rank, ranks on the node) -> (share, variables the worker sets)
SHARES = [
    (("nvidia", 4), {}, 3, 6, ("1",), {"CUDA_VISIBLE_DEVICES": "1"}),
    (("amd", 8), {}, 4, 6, ("2",), {"ROCR_VISIBLE_DEVICES": "2", "HIP_VISIBLE_DEVICES": "0"}),
    # the launcher narrowed the node to 2,3; two workers (ranks 2 and 3): one each
    (("amd", 8), {"ROCR_VISIBLE_DEVICES": "2,3"}, 2, 4, ("2",),
     {"ROCR_VISIBLE_DEVICES": "2", "HIP_VISIBLE_DEVICES": "0"}),
    (("amd", 8), {"ROCR_VISIBLE_DEVICES": "2,3"}, 3, 4, ("3",),
     {"ROCR_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "0"}),
    (("intel", 2, 2), {}, 4, 6, ("1.0",),
     {"ZE_AFFINITY_MASK": "1.0", "ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE"}),
    (("intel", 2, 2), {"ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE"}, 3, 6, ("0.1",),
     {"ZE_AFFINITY_MASK": "0.1"}),
    (("intel", 2, 2), {"ZE_FLAT_DEVICE_HIERARCHY": "FLAT"}, 5, 6, ("3",),
     {"ZE_AFFINITY_MASK": "3"}),
    (("intel", 3), {}, 2, 6, ("0",), {"ZE_AFFINITY_MASK": "0"}),
    (None, {}, 2, 4, (), {}),
]


@pytest.mark.parametrize(("tree", "env", "rank", "size", "share", "worker_env"), SHARES)
def test_each_worker_gets_its_share(tmp_path, tree, env, rank, size, share, worker_env):
    r = worker(tmp_path, tree, env, rank, size)
    assert (r.gpus, r.gpu_env) == (share, worker_env)


def test_no_gpus_setting_sets_nothing(tmp_path):
    r = worker(tmp_path, ("amd", 4), {}, 2, 4, gpus_setting=None)
    assert (r.gpus, r.gpu_env, r.gpu_vendor) == ((), {}, None)


def test_two_per_worker_and_too_many(tmp_path):
    r = worker(tmp_path, ("amd", 4), {}, 3, 4, gpus_setting="2")
    assert r.gpus == ("2", "3")
    assert r.gpu_env == {"ROCR_VISIBLE_DEVICES": "2,3", "HIP_VISIBLE_DEVICES": "0,1"}
    with pytest.raises(ResourceError, match="asked for 2 GPUs per worker, this node shows 1"):
        worker(tmp_path / "b", ("amd", 8), {"ROCR_VISIBLE_DEVICES": "5"}, 2, 4, "2")


SRUN_BOUND = {"SLURM_STEP_NUM_TASKS": "6", "SLURM_GPUS_PER_TASK": "2"}


@pytest.mark.parametrize(("env", "bound"), [
    (SRUN_BOUND, True),
    ({"SLURM_STEP_NUM_TASKS": "6", "SLURM_GPU_BIND": "verbose,closest"}, True),
    ({**SRUN_BOUND, "SLURM_GPU_BIND": "none"}, False),
    ({**SRUN_BOUND, "SLURM_STEP_NUM_TASKS": "2"}, False),  # mpiexec: one srun task per node
    ({"SLURM_STEP_NUM_TASKS": "6"}, False),
])
def test_bound_per_task(env, bound):
    assert gpus.bound_per_task(env, 6) is bound


def test_srun_bound_task_keeps_what_it_was_given(tmp_path):
    """srun --gpus-per-task=2 gave this task 6,7: the worker takes both, not one by its index."""
    env = {**SRUN_BOUND, "ROCR_VISIBLE_DEVICES": "6,7"}
    r = worker(tmp_path, ("amd", 8), env, 5, 6)
    assert (r.gpus, r.gpu_env["ROCR_VISIBLE_DEVICES"]) == (("6", "7"), "6,7")
    assert r.sources["gpus"] == "ROCR_VISIBLE_DEVICES (bound per task)"
    with pytest.raises(ResourceError, match="this task was given 2"):
        worker(tmp_path / "b", ("amd", 8), env, 5, 6, gpus_setting="3")


def test_srun_binding_without_its_list_still_shares_by_index(tmp_path):
    """--gpus-per-task but no visibility variable (no gres env): the node's devices are not
    this task's own, so the worker takes one by its index rather than all of them."""
    r = worker(tmp_path, ("nvidia", 4), SRUN_BOUND, 3, 6)
    assert r.gpus == ("1",)


def test_probe_counts_when_the_tree_lists_no_devices(tmp_path, monkeypatch):
    """/dev/kfd but no /sys (a container): rocm-smi, if installed, counts the GPUs."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kfd").touch()
    assert gpus.visible({}, root=tmp_path).vendor is None  # no rocm-smi on PATH
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "rocm-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = --showid ] || exit 2\n"
                   "for i in 0 1 2; do echo \"GPU[$i]\t\t: Device ID: 0x74a1\"; "
                   "echo \"GPU[$i]\t\t: Device Rev: 0x00\"; done\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    seen = gpus.visible({}, root=tmp_path)
    assert (seen.vendor, seen.units) == ("amd", ("0", "1", "2"))


# what each vendor's tool prints (abridged from real output), for the probe
PROBE_OUTPUT = {
    "nvidia": ("nvidia-smi", "-L", "\n".join(
        f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}a5e1c3b-77f0-2d1e-9b1c-3f5e2d4c1a{i}0)"
        for i in range(3))),
    "intel": ("xpu-smi", "discovery", "\n".join(
        ["+-----------+------------------------------------------------+",
         "| Device ID | Device Information                             |",
         "+-----------+------------------------------------------------+"]
        + [line for i in range(3) for line in (
            f"| {i}         | Device Name: Intel(R) Data Center GPU Max 1550 |",
            "|           | Vendor Name: Intel(R) Corporation              |",
            "+-----------+------------------------------------------------+")])),
}


@pytest.mark.parametrize("vendor", list(PROBE_OUTPUT))
def test_nvidia_and_intel_probes_count_when_the_tree_lists_no_devices(tmp_path, monkeypatch,
                                                                       vendor):
    """The driver is there but no device node is (a container): nvidia-smi -L / xpu-smi
    discovery, if installed, count the GPUs; a tool that fails counts none."""
    driver = tmp_path / gpus.BY_NAME[vendor].driver
    driver.parent.mkdir(parents=True, exist_ok=True)
    driver.mkdir() if vendor == "intel" else driver.touch()
    assert gpus.visible({}, root=tmp_path).vendor is None  # the tool is not on PATH
    tool, arg, output = PROBE_OUTPUT[vendor]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "out.txt").write_text(output + "\n")
    smi = bindir / tool
    smi.write_text(f'#!/bin/sh\n[ "$1" = {arg} ] || exit 2\ncat "{bindir}/out.txt"\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    seen = gpus.visible({}, root=tmp_path)
    assert (seen.vendor, seen.units) == (vendor, ("0", "1", "2"))
    smi.write_text("#!/bin/sh\necho 'no devices found' >&2\nexit 6\n")
    assert gpus.visible({}, root=tmp_path).vendor is None


def test_slurm_no_dev_files_means_the_nodes_devices(tmp_path):
    """Slurm's gres without device files sets CUDA_VISIBLE_DEVICES=NoDevFiles: no list, so the
    node's devices are what the ranks share (not one GPU named "NoDevFiles")."""
    root = fake_tree(tmp_path, "nvidia", 4)
    seen = gpus.visible({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, root=root)
    assert (seen.vendor, seen.units, seen.source) == ("nvidia", ("0", "1", "2", "3"), "devices")
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": "2,3"}, root=root).units == ("2", "3")
