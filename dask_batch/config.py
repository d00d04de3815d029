"""Defaults for the ``batch`` namespace of dask config, loaded once (as distributed does)."""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

fn = os.path.join(os.path.dirname(__file__), "batch.yaml")

with open(fn) as f:
    defaults = yaml.safe_load(f)

dask.config.update_defaults(defaults)


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"batch.{key}: expected true or false, got {value!r}")


def choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise ValueError(f"batch.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    return text
