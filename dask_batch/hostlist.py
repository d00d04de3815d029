"""Slurm's compressed host lists (``gpu[01-04,07],login1``), expanded without calling
``scontrol show hostnames`` (a rank may run where no Slurm command is installed)."""

from __future__ import annotations

import re

# one name of a list: text with bracketed ranges, up to a comma outside brackets
_ITEM = re.compile(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*|\[[^\]]*\][^,\[]*")


def expand(text: str) -> list[str]:
    """Every host name of a Slurm host list, in order.

    >>> expand("gpu[01-02,07],login1")
    ['gpu01', 'gpu02', 'gpu07', 'login1']
    >>> expand("rack[1-2]n[1-2]")
    ['rack1n1', 'rack1n2', 'rack2n1', 'rack2n2']
    """
    names: list[str] = []
    for item in _ITEM.findall(text):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if not m:
            names.append(item)
            continue
        head, ranges, tail = m.groups()
        tails = expand(tail) if tail else [""]
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or not (hi or lo).isdigit():
                raise ValueError(f"cannot parse host list {text!r}")
            names += [f"{head}{str(i).zfill(len(lo))}{t}"
                      for i in range(int(lo), int(hi or lo) + 1) for t in tails]
    return names
