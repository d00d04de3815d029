"""Fake device trees (``/dev`` and ``/sys`` under a temporary root) for the three GPU vendors."""

from __future__ import annotations

from pathlib import Path

PCI = {"amd": "0x1002", "intel": "0x8086", "aspeed": "0x1a03"}


def fake_tree(root: Path, vendor: str, n: int, tiles: int = 1, bmc: bool = True) -> Path:
    """n GPUs of one vendor; ``bmc`` adds the display-only render node many servers have."""
    dev = root / "dev"
    (dev / "dri").mkdir(parents=True, exist_ok=True)
    if vendor == "nvidia":
        (dev / "nvidiactl").touch()
        for i in range(n):
            (dev / f"nvidia{i}").touch()
        return root
    if vendor == "amd":
        (dev / "kfd").touch()
    nodes = [("aspeed", 1)] if bmc else []
    nodes += [(vendor, tiles)] * n
    for i, (who, t) in enumerate(nodes):
        name = f"renderD{128 + i}"
        (dev / "dri" / name).touch()
        pci = root / "sys/class/drm" / name / "device"
        pci.mkdir(parents=True)
        (pci / "vendor").write_text(PCI[who] + "\n")
        for k in range(t if t > 1 else 0):
            (pci / f"tile{k}").mkdir()
    return root
