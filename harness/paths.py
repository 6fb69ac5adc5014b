"""Where the harness keeps its cache, runs and shipped protocol files."""

from __future__ import annotations

import os
from pathlib import Path


def harness_home() -> Path:
    """The cache for weights and generated data: ``$HARNESS_HOME``, default ``~/.cache/harness``."""
    return Path(os.environ.get("HARNESS_HOME") or Path.home() / ".cache" / "harness").expanduser()


def default_runs_dir() -> Path:
    return Path(os.environ.get("HARNESS_RUNS") or "runs")


def protocols_dir() -> Path:
    """The top-level ``datasets/`` folder of protocol files (``$HARNESS_PROTOCOLS`` overrides it)."""
    override = os.environ.get("HARNESS_PROTOCOLS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "datasets"
