"""Which GPUs a node shows, and each worker rank's share: NVIDIA, AMD and Intel from one table.

The vendor comes from the devices present (``/dev/nvidiaN``; ``/dev/kfd`` plus render nodes of
PCI vendor 0x1002; render nodes of 0x8086), else from which visibility variable the launcher
set. A list the launcher already set is respected, never widened: the worker's share is taken
from it. ``DASK_BATCH_DEVICE_ROOT`` moves the root of ``/dev`` and ``/sys`` (tests use fake
trees); the vendor commands (``nvidia-smi`` ...) are asked only when the tree shows the driver
but no devices, and only if they are installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "DASK_BATCH_DEVICE_ROOT"
HIERARCHY = "ZE_FLAT_DEVICE_HIERARCHY"


@dataclass(frozen=True)
class Vendor:
    name: str
    nodes: str  # glob under the root: one entry per device
    visible: str  # the launcher's list of this vendor's devices; the worker gets its share here
    pci: str | None = None  # sys/class/drm/<node>/device/vendor must say this
    marker: str | None = None  # the compute driver's device file, which must exist
    driver: str | None = None  # present when the driver is loaded: then the probe may run
    numbered: bool = False  # ids are the numbers in the node names, else positions 0..n-1
    relative: str | None = None  # indexes into `visible`; the worker gets 0..k-1 here
    probe: tuple[str, ...] = ()  # command listing the devices, when the tree shows none
    pattern: str = ""  # one match per device in the probe's output (group 1: its id)
    tiles: bool = False  # devices split into tiles (Intel stacks), shared out as "card.tile"
    resource: str = "GPU"  # the Dask resource a worker advertises


# Order = precedence when a node shows several (an Intel iGPU beside a discrete GPU).
VENDORS: tuple[Vendor, ...] = (
    Vendor("nvidia", nodes="dev/nvidia[0-9]*", visible="CUDA_VISIBLE_DEVICES", numbered=True,
           driver="dev/nvidiactl",
           probe=("nvidia-smi", "-L"), pattern=r"^GPU (\d+):"),
    Vendor("amd", nodes="dev/dri/renderD*", pci="0x1002", marker="dev/kfd",
           driver="dev/kfd", visible="ROCR_VISIBLE_DEVICES", relative="HIP_VISIBLE_DEVICES",
           probe=("rocm-smi", "--showid"), pattern=r"^GPU\[(\d+)\]"),
    Vendor("intel", nodes="dev/dri/renderD*", pci="0x8086", driver="dev/dri",
           visible="ZE_AFFINITY_MASK",
           tiles=True, probe=("xpu-smi", "discovery"), pattern=r"^\|\s*(\d+)\s*\|\s*Device Name"),
)
BY_NAME = {v.name: v for v in VENDORS}
# Without devices, the variable decides. CUDA_VISIBLE_DEVICES last: Slurm sets it on AMD and
# Intel nodes too (unless gres.conf says otherwise) and HIP honours it, so it says least.
ENV_ORDER = ("amd", "intel", "nvidia")


@dataclass(frozen=True)
class Visible:
    """What this rank sees: the vendor, the units a worker can be given, where they came from."""

    vendor: str | None = None
    units: tuple[str, ...] = ()
    source: str = "none"


def device_root(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(ROOT_ENV) or "/")


def tokens(value: str) -> list[str]:
    """A visibility list: comma-separated ids; empty or ``-1`` hide every device."""
    return [t.strip() for t in value.split(",") if t.strip() and t.strip() != "-1"]


def _devices(v: Vendor, root: Path) -> list[Path]:
    """This vendor's device nodes in the tree, in enumeration order."""
    if v.marker and not (root / v.marker).exists():
        return []
    found = []
    for node in root.glob(v.nodes):
        if v.pci:
            try:
                pci = (root / "sys/class/drm" / node.name / "device/vendor").read_text()
            except OSError:
                continue
            if pci.strip().lower() != v.pci:
                continue
        found.append(node)
    return sorted(found, key=lambda p: int(re.sub(r"\D", "", p.name) or 0))


def _probe(v: Vendor) -> list[str]:
    """Device ids from the vendor's command, if installed; [] on any failure."""
    if not v.probe or shutil.which(v.probe[0]) is None:
        return []
    try:
        out = subprocess.run(v.probe, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    ids = dict.fromkeys(m.group(1) for m in re.finditer(v.pattern, out, re.M))
    return [str(i) for i in range(len(ids))]


def _tiles(root: Path, node: Path) -> int:
    """Tiles of one Intel GPU: xe lists device/tileN, i915 lists card*/gt/gtN."""
    dev = root / "sys/class/drm" / node.name / "device"
    return max(len(list(dev.glob("tile[0-9]*"))), len(list(dev.glob("drm/card*/gt/gt[0-9]*"))),
               1)


def _found(environ: Mapping[str, str], root: Path) -> tuple[Vendor | None, list[str], dict]:
    for v in VENDORS:
        nodes = _devices(v, root)
        if nodes:
            if v.numbered:
                ids = sorted((re.sub(r"\D", "", n.name) for n in nodes), key=int)
            else:
                ids = [str(i) for i in range(len(nodes))]
            tiles = {i: _tiles(root, n) for i, n in enumerate(nodes)} if v.tiles else {}
            return v, ids, tiles
    for v in VENDORS:  # the driver is there but the tree lists no devices (no /sys, say)
        if v.driver and (root / v.driver).exists() and (ids := _probe(v)):
            return v, ids, {}
    for name in ENV_ORDER:
        v = BY_NAME[name]
        if v.visible in environ or (v.relative and v.relative in environ):
            return v, [], {}
    return None, [], {}


def visible(environ: Mapping[str, str], root: Path | None = None) -> Visible:
    """The GPUs this rank sees: the launcher's list where it set one, else the node's devices."""
    v, ids, tiles = _found(environ, root or device_root(environ))
    if v is None:
        return Visible()
    units, source = ids, "devices"
    # Slurm's gres without device files (gres.conf with no File=) sets "NoDevFiles": it
    # granted GPUs but cannot say which, so the node's devices are the list
    if v.visible in environ and environ[v.visible].strip() != "NoDevFiles":
        units, source = tokens(environ[v.visible]), v.visible
    if v.relative and v.relative in environ:  # HIP indices count within ROCr's list
        units = [t if not t.isdigit() else units[int(t)]
                 for t in tokens(environ[v.relative]) if not t.isdigit() or int(t) < len(units)]
        source = v.relative if source == "devices" else f"{source} + {v.relative}"
    if v.tiles:
        units = _tile_units(units, tiles, environ, listed=source != "devices")
    return Visible(v.name, tuple(units), source if units else "none")


def _tile_units(units: list[str], tiles: dict[int, int], environ: Mapping[str, str],
                listed: bool) -> list[str]:
    """Intel: one unit per tile. COMPOSITE (or unset): "card.tile"; FLAT/COMBINED: flat ids."""
    if environ.get(HIERARCHY, "").upper() in ("FLAT", "COMBINED"):
        if listed or not tiles:  # the launcher's mask already counts flat devices
            return units
        return [str(i) for i in range(sum(tiles.values()))]  # each tile is its own device
    out = []
    for u in units:
        n = tiles.get(int(u), 1) if u.isdigit() else 1
        out.extend([f"{u}.{t}" for t in range(n)] if n > 1 else [u])
    return out


def bound_per_task(environ: Mapping[str, str], size: int) -> bool:
    """srun already gave each task its own GPUs (--gpus-per-task, --gpu-bind): take them all.

    Only when every rank is an srun task: mpiexec inside a Slurm job runs its ranks under one
    srun task per node, whose GPUs the node's ranks share.
    """
    if environ.get("SLURM_STEP_NUM_TASKS") != str(size) or size <= 0:
        return False
    bind = [b for b in environ.get("SLURM_GPU_BIND", "").split(",") if b and b != "verbose"]
    if bind[:1] == ["none"]:
        return False
    return bool(bind or environ.get("SLURM_GPUS_PER_TASK"))


def assign_gpus(gpus: list[str], local_worker_index: int, per_worker: int) -> tuple[str, ...]:
    """The GPUs of one worker: a contiguous block chosen by its index among the node's workers."""
    if per_worker <= 0 or not gpus:
        return ()
    start = (local_worker_index * per_worker) % len(gpus)
    return tuple(gpus[(start + i) % len(gpus)] for i in range(min(per_worker, len(gpus))))


def share(units: tuple[str, ...], index: int, per: int | None, bound: bool) -> tuple[str, ...]:
    """One worker's units: ``per`` None means one each (auto), or all of them when bound."""
    if bound:
        return units if per is None else units[:per]
    return assign_gpus(list(units), index, 1 if per is None else per)


def worker_env(vendor: str | None, got: tuple[str, ...],
               environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a worker sets so that its libraries see its share only."""
    if vendor is None or not got:
        return {}
    v = BY_NAME[vendor]
    env = {v.visible: ",".join(got)}
    if v.relative:  # HIP counts within ROCr's list: a stale launcher value would hide them
        env[v.relative] = ",".join(str(i) for i in range(len(got)))
    if v.tiles and any("." in g for g in got) and not environ.get(HIERARCHY):
        env[HIERARCHY] = "COMPOSITE"  # "card.tile" means that only in COMPOSITE mode
    return env


def resource_name(vendor: str | None) -> str:
    return BY_NAME[vendor].resource if vendor else "GPU"
