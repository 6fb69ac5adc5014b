"""The method itself: load once, reconstruct an avatar per unit, render each target camera."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import Target, View


class MeanColour:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        # Load weights here; raise harness.api.MissingWeightsError(what, path, how_to_get) when they are absent.
        self.background = float(config["background"])

    def reconstruct(self, sources: Sequence[View]) -> dict[str, np.ndarray]:
        view = sources[0]
        alpha = view.alpha if view.alpha is not None else np.ones(view.image.shape[:2], np.float32)
        weight = alpha.sum() or 1.0
        colour = (view.image * alpha[..., None]).sum(axis=(0, 1)) / weight
        return {"colour": colour.astype(np.float32), "alpha": alpha}

    def render(self, avatar: dict[str, np.ndarray], targets: Sequence[Target]) -> list[np.ndarray]:
        images = []
        for target in targets:
            h, w = target.camera.height, target.camera.width
            rgb = np.empty((h, w, 3), np.float32)
            rgb[:] = avatar["colour"]
            alpha = np.zeros((h, w), np.float32)
            sh, sw = min(h, avatar["alpha"].shape[0]), min(w, avatar["alpha"].shape[1])
            alpha[:sh, :sw] = avatar["alpha"][:sh, :sw]
            rgb = rgb * alpha[..., None] + self.background * (1 - alpha[..., None])
            images.append(np.concatenate([rgb, alpha[..., None]], axis=-1))
        return images

    def save(self, avatar: dict[str, np.ndarray], path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "avatar.npz", **avatar)
