"""The dataset adapter contract: read one distributed layout, hand out views in the harness convention."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.api.types import Camera, View, ViewRef


@runtime_checkable
class DatasetAdapter(Protocol):
    root: Path

    @classmethod
    def open(cls, root: Path | None) -> DatasetAdapter:
        """Open the dataset at ``root`` (``None``: the adapter's default location), raising ``DatasetError``."""
        ...

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera: ...

    def load_view(self, ref: ViewRef) -> View: ...

    # Optional: ``tracking(subject, sequence, frame) -> dict | None``, the frame's head parameters
    # (``HeadParams.to_dict()`` plus ``"model"``, the head model's name), for animatable methods.
