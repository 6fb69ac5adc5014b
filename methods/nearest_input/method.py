"""Nearest-input baseline: copy the source image whose viewing direction is closest to the target's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import Target, View
from harness.imageio import resize


class NearestInput:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        self.device = device

    def reconstruct(self, sources: Sequence[View]) -> list[View]:
        if not sources:
            raise ValueError("nearest-input needs at least one source view")
        return list(sources)

    def render(self, avatar: list[View], targets: Sequence[Target]) -> list[np.ndarray]:
        directions = np.stack([v.camera.forward for v in avatar])
        images = []
        for target in targets:
            source = avatar[int(np.argmax(directions @ target.camera.forward))]
            # The photo as it is (RGB, its backdrop included): a 2D copy claims no coverage, so it carries no
            # alpha; an RGBA prediction would be composited over the background where its alpha is 0.
            images.append(resize(source.image, target.camera.width, target.camera.height))
        return images

    def save(self, avatar: list[View], path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for i, view in enumerate(avatar):
            np.save(path / f"source_{i}.npy", view.image)
