"""Errors of the learned-method machinery, in a module of their own so the CLI catches them without importing
torch or numpy."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and what does not match."""


class CorpusError(RuntimeError):
    """A corpus folder that cannot be written or read; the message names the file."""


class TrainingError(RuntimeError):
    """A training run that cannot start or resume; the message names the file."""
