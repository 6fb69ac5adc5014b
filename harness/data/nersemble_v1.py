"""NeRSemble v1, read as distributed (per-frame PNGs, alpha maps, one shared K at full resolution).

Layout::

    {pid:03d}/camera_params.json                      world_2_cam {serial: 4x4 OpenCV}, intrinsics 3x3 (full res)
    {pid}/sequences/{SEQ}/frame_{t:05d}/images-2x-73fps/cam_{serial}.png
    {pid}/sequences/{SEQ}/frame_{t:05d}/alpha_map-73fps/cam_{serial}.png

The intrinsics are for the full-resolution frames; ``images-2x`` images are downsampled by 2, so K is rescaled
to the resolution actually loaded.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.errors import DatasetError
from harness.imageio import ImageReadError, read_image, read_mask, resize

IMAGE_FOLDER = "images-2x-73fps"
ALPHA_FOLDER = "alpha_map-73fps"
DOWNSCALE = 2

SERIALS = (
    "222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
    "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007",
)
FRONTAL_SERIAL = "222200037"


class NersembleV1:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._calibration = lru_cache(maxsize=None)(self._read_calibration)

    @classmethod
    def open(cls, root: Path | None) -> NersembleV1:
        if root is None:
            raise DatasetError("NeRSemble v1 needs --data-root (or the dataset's environment variable)")
        if not Path(root).is_dir():
            raise DatasetError(f"NeRSemble v1 root {root} is not a folder")
        return cls(Path(root))

    def subject_dir(self, subject: str) -> Path:
        return self.root / subject

    def frame_dir(self, ref: ViewRef) -> Path:
        return self.root / ref.subject / "sequences" / ref.sequence / f"frame_{ref.frame:05d}"

    def image_path(self, ref: ViewRef) -> Path:
        return self.frame_dir(ref) / IMAGE_FOLDER / f"cam_{ref.camera}.png"

    def alpha_path(self, ref: ViewRef) -> Path:
        return self.frame_dir(ref) / ALPHA_FOLDER / f"cam_{ref.camera}.png"

    def _read_calibration(self, subject: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        path = self.subject_dir(subject) / "camera_params.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            extrinsics = {str(k): np.asarray(v, dtype=np.float64) for k, v in raw["world_2_cam"].items()}
            K = np.asarray(raw["intrinsics"], dtype=np.float64)
        except FileNotFoundError:
            raise DatasetError(f"missing calibration file {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed calibration file {path}: {type(err).__name__}: {err}") from None
        if K.shape != (3, 3):
            raise DatasetError(f"{path}: 'intrinsics' must be one 3x3 matrix in NeRSemble v1, got {K.shape}")
        return extrinsics, K

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str, width: int = 0,
               height: int = 0) -> Camera:
        extrinsics, K_full = self._calibration(subject)
        if camera_id not in extrinsics:
            path = self.subject_dir(subject) / "camera_params.json"
            raise DatasetError(f"{path}: camera {camera_id} is not in 'world_2_cam'")
        if not width or not height:
            width, height = _image_size(self.image_path(ViewRef(subject, sequence, frame, camera_id)))
        full = Camera(extrinsics[camera_id], K_full, width * DOWNSCALE, height * DOWNSCALE)
        return full.resized(width, height)

    def load_view(self, ref: ViewRef) -> View:
        try:
            image, embedded_alpha = read_image(self.image_path(ref))
            alpha_file = self.alpha_path(ref)
            alpha = read_mask(alpha_file) if alpha_file.exists() else embedded_alpha
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        height, width = image.shape[:2]
        if alpha is not None and alpha.shape != (height, width):
            alpha = resize(alpha, width, height)
        camera = self.camera(ref.subject, ref.sequence, ref.frame, ref.camera, width, height)
        return View(ref=ref, image=image, camera=camera, alpha=alpha)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.width, img.height
    except FileNotFoundError:
        raise DatasetError(f"missing image file {path}") from None
