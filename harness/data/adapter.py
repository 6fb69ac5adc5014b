"""The dataset contracts.

A **layout reader** reads one distributed on-disk layout and converts at its edge into the harness convention
(OpenCV world->camera, K for the delivered resolution, metres, RGB/alpha floats in [0, 1]); nothing downstream
knows a dataset's quirks. The harness wraps every reader in a ``PreparedDataset`` (``harness.data.prepared``)
that applies the protocol's preprocessing and caches decoded frames; runner, scorer and reports talk to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.api.types import Camera, View, ViewRef
from harness.data.errors import DatasetError


@dataclass
class Inventory:
    """What ``harness datasets check`` found in a folder, and every problem at once."""

    root: Path
    layout: str
    found: dict[str, Any] = field(default_factory=dict)  # e.g. subjects, sequences, cameras, frames
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def require_folder(root: Path | None, title: str, what: str) -> Path:
    """The dataset root a reader opens, or one clear message: none given, or not a folder."""
    if root is None:
        raise DatasetError(f"{title} needs --data-root (or the dataset's environment variable or config entry): "
                           f"{what}")
    if not Path(root).is_dir():
        raise DatasetError(f"{title} root {root} is not a folder")
    return Path(root)


@runtime_checkable
class DatasetAdapter(Protocol):
    """What runner and scorer use: views and cameras as the protocol defines them."""

    root: Path

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera: ...

    def load_view(self, ref: ViewRef) -> View: ...

    # Optional: ``tracking(subject, sequence, frame) -> dict | None``, the frame's head parameters
    # (``HeadParams.to_dict()`` plus ``"model"``, the head model's name), for animatable methods.


@runtime_checkable
class LayoutReader(DatasetAdapter, Protocol):
    """One distributed layout, read in place. ``camera`` must not decode pixels.

    Class attributes: ``needs_cache`` (decoding is costly: videos, AVIF in zips) and
    ``supports_colour_calibration``. Optional methods: ``source_files(ref)`` (the files a view is read from, for
    the frame cache's fingerprint), ``subjects()`` and ``photos(subject)`` (in-the-wild listings), ``tracking``.
    """

    @classmethod
    def open(cls, root: Path | None) -> LayoutReader:
        """Open the dataset at ``root`` (``None``: the reader's default location), raising ``DatasetError``."""
        ...

    def check(self, subjects: list[str] | None = None) -> Inventory: ...
