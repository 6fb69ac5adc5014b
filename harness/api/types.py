"""Core value types: cameras, views, targets and evaluation units.

Conventions (the contract every dataset adapter converts into at its edge):
- cameras are OpenCV (x right, y down, z forward), ``world_to_camera`` is a 4x4 matrix, units are metres;
- ``K`` is the pixel intrinsics matrix valid for the image resolution actually loaded (``width`` x ``height``);
- images are RGB float32 in [0, 1] of shape (H, W, 3); alpha is float32 in [0, 1] of shape (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Camera:
    world_to_camera: np.ndarray
    K: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        w2c = np.asarray(self.world_to_camera, dtype=np.float64)
        K = np.asarray(self.K, dtype=np.float64)
        if w2c.shape != (4, 4):
            raise ValueError(f"world_to_camera must be 4x4, got shape {w2c.shape}")
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {K.shape}")
        object.__setattr__(self, "world_to_camera", w2c)
        object.__setattr__(self, "K", K)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        R, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -R.T @ t

    @property
    def forward(self) -> np.ndarray:
        """Viewing direction (camera +z) in world coordinates."""
        return self.world_to_camera[2, :3].copy()

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) world points to (N, 2) pixel coordinates; also returns camera-space depth (N,).

        Pixel centres are at integer coordinates + 0.5 in the OpenCV convention used here: pixel (0, 0) covers
        [0, 1) x [0, 1).
        """
        pts = np.asarray(points_world, dtype=np.float64)
        cam = pts @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        uvw = cam @ self.K.T
        return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        return Camera(self.world_to_camera, K, width, height)


@dataclass(frozen=True, order=True)
class ViewRef:
    """Names one image of a dataset: (subject, sequence, frame, camera)."""

    subject: str
    sequence: str
    frame: int
    camera: str

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "sequence": self.sequence, "frame": self.frame, "camera": self.camera}


@dataclass
class View:
    ref: ViewRef
    image: np.ndarray
    camera: Camera
    alpha: np.ndarray | None = None
    tracking: dict[str, Any] | None = None
    alpha_note: str | None = None  # why ``alpha`` is None (the masked metrics report it as the reason)


@dataclass(frozen=True)
class Target:
    """What a method must render: a camera and, for animatable methods, the driving head parameters."""

    ref: ViewRef
    camera: Camera
    driving: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvalUnit:
    """One reconstruction task: build an avatar from ``sources`` and render ``targets``.

    ``name`` is human-readable and unique within a protocol; it names the unit's prediction folder, so predictions
    made by any tool can be scored by name.
    """

    name: str
    kind: str
    subject: str
    sources: tuple[ViewRef, ...]
    targets: tuple[ViewRef, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "subject": self.subject,
            "sources": [r.as_dict() for r in self.sources],
            "targets": [r.as_dict() for r in self.targets],
        }


@dataclass(frozen=True)
class RunContext:
    """What a method is told about the run before ``load``: the runner sets ``method.run_context`` to one.

    ``synthetic_subjects`` is True only for the procedural demo datasets: a learned method uses it to refuse running
    a synthetic-demo checkpoint on real people's photos unless asked to (``--config checkpoint=demo``).
    """

    dataset: str
    protocol: str
    synthetic_subjects: bool
