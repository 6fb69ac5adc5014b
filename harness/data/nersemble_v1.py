"""NeRSemble v1, read as distributed (per-frame PNGs, alpha maps, one shared K at full resolution).

Layout::

    {pid:03d}/camera_params.json                      world_2_cam {serial: 4x4 OpenCV}, intrinsics 3x3 (full res)
    {pid}/sequences/{SEQ}/frame_{t:05d}/images-2x-73fps/cam_{serial}.png
    {pid}/sequences/{SEQ}/frame_{t:05d}/alpha_map-73fps/cam_{serial}.png

The intrinsics are for the full-resolution frames; ``images-2x`` images are downsampled by 2, so K is rescaled
to the resolution actually loaded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import (
    Inventory,
    SizeTally,
    check_image_file,
    principal_point_problem,
    require_folder,
)
from harness.data.errors import DatasetError
from harness.data.nersemble_common import FRONTAL_SERIAL, SERIALS, Calibration, layout_problem, subject_folders
from harness.imageio import ImageReadError, read_image, read_mask, resize

__all__ = ["ALPHA_FOLDER", "DOWNSCALE", "FRONTAL_SERIAL", "IMAGE_FOLDER", "SERIALS", "NersembleV1"]

IMAGE_FOLDER = "images-2x-73fps"
ALPHA_FOLDER = "alpha_map-73fps"
DOWNSCALE = 2


class NersembleV1:
    needs_cache = False  # PNG frames: reading them is as cheap as reading a cache entry
    supports_colour_calibration = True  # the paper's per-camera affine colour correction (annotations/)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._calibration = lru_cache(maxsize=None)(self._read_calibration)
        self._colour_matrices = lru_cache(maxsize=None)(self._read_colour_matrix)
        self.colour_calibration = False  # set by the protocol's preprocess.colour_calibration

    def colour_correction_path(self, ref: ViewRef) -> Path:
        return self.subject_dir(ref.subject) / "annotations" / ref.sequence / "color_correction" / f"{ref.camera}.npy"

    def _read_colour_matrix(self, path: Path) -> np.ndarray:
        try:
            matrix = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DatasetError(f"missing colour correction {path} (preprocess.colour_calibration is set)") from None
        except (OSError, ValueError) as err:
            raise DatasetError(f"unreadable colour correction {path}: {err}") from None
        if matrix.ndim != 2 or matrix.shape[0] < 3 or matrix.shape[1] != 4 or not np.isfinite(matrix).all():
            raise DatasetError(f"colour correction {path} has shape {matrix.shape}; expected a finite 3x4 or 4x4 "
                               "affine matrix")
        return matrix.astype(np.float64)

    def correct_colour(self, image: np.ndarray, ref: ViewRef) -> np.ndarray:
        """The paper code's affine correction: ``rgb @ A[:3, :3] + A[:3, 3]``, clipped to [0, 1]."""
        if not self.colour_calibration:
            return image
        matrix = self._colour_matrices(self.colour_correction_path(ref))
        corrected = image.astype(np.float64) @ matrix[:3, :3] + matrix[:3, 3]
        return np.clip(corrected, 0.0, 1.0).astype(np.float32)

    @classmethod
    def open(cls, root: Path | None) -> NersembleV1:
        return cls(require_folder(root, "NeRSemble v1", "the folder holding {pid:03d}/camera_params.json"))

    def subject_dir(self, subject: str) -> Path:
        return self.root / subject

    def frame_dir(self, ref: ViewRef) -> Path:
        return self.root / ref.subject / "sequences" / ref.sequence / f"frame_{ref.frame:05d}"

    def image_path(self, ref: ViewRef) -> Path:
        return self.frame_dir(ref) / IMAGE_FOLDER / f"cam_{ref.camera}.png"

    def alpha_path(self, ref: ViewRef) -> Path:
        return self.frame_dir(ref) / ALPHA_FOLDER / f"cam_{ref.camera}.png"

    def _read_calibration(self, subject: str) -> Calibration:
        calibration = Calibration(self.subject_dir(subject) / "camera_params.json")
        if not calibration.shared_intrinsics:
            raise DatasetError(f"{calibration.path}: 'intrinsics' must be one 3x3 matrix in NeRSemble v1, got one "
                               "per camera (is this the benchmark release?)")
        return calibration

    def subjects(self) -> list[str]:
        return subject_folders(self.root)

    def sequences(self, subject: str) -> list[str]:
        return sorted(p.name for p in (self.subject_dir(subject) / "sequences").glob("*") if p.is_dir())

    def frames(self, subject: str, sequence: str) -> list[int]:
        folder = self.subject_dir(subject) / "sequences" / sequence
        frames = sorted(int(p.name.removeprefix("frame_")) for p in folder.glob("frame_*") if p.is_dir())
        if not frames:
            raise DatasetError(f"no frame_* folders in {folder}")
        return frames

    def source_files(self, ref: ViewRef) -> list[Path]:
        extra = [self.colour_correction_path(ref)] if self.colour_calibration else []
        return [self.image_path(ref), self.alpha_path(ref), self.subject_dir(ref.subject) / "camera_params.json",
                *extra]

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str, width: int = 0,
               height: int = 0) -> Camera:
        calibration = self._calibration(subject)
        extrinsics = calibration.extrinsics(camera_id)
        if not width or not height:
            width, height = _image_size(self.image_path(ViewRef(subject, sequence, frame, camera_id)))
        full = Camera(extrinsics, calibration.intrinsics(camera_id), width * DOWNSCALE, height * DOWNSCALE)
        return full.resized(width, height)

    def load_view(self, ref: ViewRef) -> View:
        try:
            image, embedded_alpha = read_image(self.image_path(ref))
            alpha_file = self.alpha_path(ref)
            alpha = read_mask(alpha_file) if alpha_file.exists() else embedded_alpha
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        image = self.correct_colour(image, ref)
        height, width = image.shape[:2]
        if alpha is not None and alpha.shape != (height, width):
            alpha = resize(alpha, width, height)
        camera = self.camera(ref.subject, ref.sequence, ref.frame, ref.camera, width, height)
        note = None if alpha is not None else f"no alpha map at {self.alpha_path(ref)}"
        return View(ref=ref, image=image, camera=camera, alpha=alpha, alpha_note=note)

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        """Every frame of every sequence: each calibrated camera has its image and alpha map, every file is whole
        (header and PNG end; every pixel with ``deep``), a camera's frames agree on their size and K fits it."""
        inventory = Inventory(self.root, "NeRSemble v1 (frame PNGs)")
        hint = layout_problem(self.root, "nersemble-v1")
        if hint:
            inventory.problems.append(hint)
        found = subject_folders(self.root)
        if not found:
            inventory.problems.append(f"{self.root}: no participant folders ({{pid:03d}}/camera_params.json)")
        for subject in subjects or found:
            folder = self.subject_dir(subject)
            if not folder.is_dir():
                inventory.problems.append(f"missing participant folder {folder}")
                continue
            try:
                calibration: Calibration | None = self._calibration(subject)
                inventory.problems += calibration.problems
            except DatasetError as err:
                inventory.problems.append(str(err))
                calibration = None
            sequences = sorted(p.name for p in (folder / "sequences").glob("*") if p.is_dir())
            entry: dict[str, object] = {"sequences": {}}
            for sequence in sequences:
                entry["sequences"][sequence] = self._check_sequence(  # type: ignore[index]
                    folder / "sequences" / sequence, calibration, inventory, deep)
            inventory.found[subject] = entry
        return inventory

    def _check_sequence(self, folder: Path, calibration: Calibration | None, inventory: Inventory,
                        deep: bool) -> dict[str, int]:
        frames = sorted(p for p in folder.glob("frame_*") if p.is_dir())
        present = {f: {p.stem.removeprefix("cam_") for p in (f / IMAGE_FOLDER).glob("cam_*.png")} for f in frames}
        seen = sorted(set().union(*present.values()))
        if calibration is not None:
            expected = calibration.serials
            for camera in seen:
                if camera not in calibration.world_to_camera:
                    first = next(f for f in frames if camera in present[f])
                    inventory.problems.append(f"{calibration.path}: camera {camera} (images in {first / IMAGE_FOLDER})"
                                              " is not in 'world_2_cam'")
        else:
            expected = seen
        sizes = SizeTally()
        for frame in frames:
            for kind, sub in (("image", IMAGE_FOLDER), ("alpha map", ALPHA_FOLDER)):
                missing = [c for c in expected if not (frame / sub / f"cam_{c}.png").is_file()]
                if missing:
                    inventory.problems.append(f"{frame / sub}: no {kind} for {len(missing)} of the {len(expected)} "
                                              f"camera(s) {'in the calibration' if calibration else 'seen'}: "
                                              f"{_names(missing)}")
            for camera in sorted(present[frame]):
                path = frame / IMAGE_FOLDER / f"cam_{camera}.png"
                size, problem = check_image_file(path, deep)
                sizes.add(camera, size, str(path))
                alpha = frame / ALPHA_FOLDER / f"cam_{camera}.png"
                _, alpha_problem = check_image_file(alpha, deep, "alpha map") if alpha.is_file() else (None, None)
                inventory.problems += [p for p in (problem, alpha_problem) if p]
        inventory.problems += [f"{folder}: {p}" for p in sizes.problems()]
        if calibration is not None:
            for camera in seen:
                size = sizes.size(camera)
                if size is None or camera not in calibration.world_to_camera or camera in calibration.unusable:
                    continue
                K = calibration.intrinsics(camera).copy()
                K[:2] /= DOWNSCALE  # K is for the full-resolution frame, the images are downscaled
                problem = principal_point_problem(K, *size, f"{calibration.path}: camera {camera} (images in "
                                                            f"{folder}/frame_*/{IMAGE_FOLDER}, K for {DOWNSCALE}x "
                                                            "their size)")
                if problem:
                    inventory.problems.append(problem)
        return {"frames": len(frames), "cameras": len(seen)}


def _names(cameras: list[str], shown: int = 4) -> str:
    names = ", ".join(f"cam_{c}.png" for c in cameras[:shown])
    return names + (f" and {len(cameras) - shown} more" if len(cameras) > shown else "")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.width, img.height
    except FileNotFoundError:
        raise DatasetError(f"missing image file {path}") from None
    except OSError as err:
        raise DatasetError(f"unreadable image file {path}: {err}") from None
