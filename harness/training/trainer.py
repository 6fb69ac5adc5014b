"""The contract between the training loop and a method's trainer.

The loop calls ``setup`` once, then ``train_step(step)`` for each step, saving ``state_dict()`` periodically and
``export()`` (the method checkpoint) at the end. Randomness must come from ``step_seed``/``step_generator`` (the loop
also seeds torch with ``step_seed`` before every step), so a run resumed from a checkpoint takes exactly the steps
an uninterrupted run takes, and ends with the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.checkpoints import Checkpoint
from harness.jsonio import stable_hash


def step_seed(seed: int, step: int, stream: str = "") -> int:
    """A seed for one step's randomness, independent of how many steps ran in this process."""
    return int(stable_hash({"seed": seed, "step": step, "stream": stream}, 8), 16)


def step_generator(seed: int, step: int, stream: str = "") -> np.random.Generator:
    return np.random.default_rng(step_seed(seed, step, stream))


@dataclass
class TrainingContext:
    """What a trainer is given: its config, where the data is, the device, the seed, the total step count."""

    config: Mapping[str, Any]
    data: Path
    device: str
    seed: int
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Trainer(Protocol):
    def setup(self, context: TrainingContext) -> None:
        """Build networks and optimisers and open the data (no training yet)."""

    def train_step(self, step: int) -> Mapping[str, float]:
        """One optimisation step (``step`` counts from 0); returns the named losses, ``loss`` the total."""

    def state_dict(self) -> dict[str, Any]:
        """Everything resuming needs (networks, optimisers, schedules): tensors and plain data only."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def export(self) -> Checkpoint:
        """The method checkpoint the trained networks are used from (``harness.checkpoints``)."""
