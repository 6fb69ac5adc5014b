"""The method contract every method plugin implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.api.types import Target, View

Avatar = Any
"""Whatever a method builds from its sources; opaque to the harness."""


@runtime_checkable
class Method(Protocol):
    """A method is constructed without arguments, then ``load`` ed once per run.

    ``render`` returns one float32 array per target, shape (H, W, 4) RGBA or (H, W, 3) RGB, values in [0, 1], at the
    target camera's resolution. A method whose weights are missing raises ``MissingWeightsError`` from ``load``.
    A learned method sets ``checkpoint`` (a ``harness.checkpoints.Checkpoint``) in ``load``: the runner records
    its sha256, provenance and whether it is a synthetic-demo stand-in in every unit's ``info.json``.
    """

    def load(self, device: str, config: Mapping[str, Any]) -> None: ...

    def reconstruct(self, sources: Sequence[View]) -> Avatar: ...

    def render(self, avatar: Avatar, targets: Sequence[Target]) -> list[np.ndarray]: ...

    def save(self, avatar: Avatar, path: Path) -> None: ...


class MissingWeightsError(RuntimeError):
    """A weight file a method or metric needs is not present."""

    def __init__(self, what: str, path: Path | str, how_to_get: str) -> None:
        super().__init__(f"{what}: missing weight file {path}. {how_to_get}")
        self.path = Path(path)
        self.how_to_get = how_to_get


class MetricsUnavailableError(RuntimeError):
    """In strict scoring: metrics that cannot run (their weights are missing), each with the reason and the fix."""
