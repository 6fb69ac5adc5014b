"""What every NeRSemble layout shares: camera serials, calibration files, sequence names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.data.adapter import finite_problem
from harness.data.errors import DatasetError

SERIALS = (
    "222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
    "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007",
)
FRONTAL_SERIAL = "222200037"
FULL_WIDTH, FULL_HEIGHT = 2200, 3208
SEQUENCES = (
    "BACKGROUND", "GLASSES", "EXP-1-head", "EXP-2-eyes", "EXP-3-cheeks+nose", "EXP-4-lips", "EXP-5-mouth",
    "EXP-6-tongue-1", "EXP-7-tongue-2", "EXP-8-jaw-1", "EXP-9-jaw-2", "HAIR", "FREE", "EMO-1-shout+laugh",
    "EMO-2-surprise+fear", "EMO-3-angry+sad", "EMO-4-disgust+happy", "SEN-01-cramp_small_danger",
    "SEN-02-same_phrase_thirty_times", "SEN-03-pluck_bright_rose", "SEN-04-two_plus_seven",
    "SEN-05-glow_eyes_sweet_girl", "SEN-06-problems_wise_chief", "SEN-07-fond_note_fried",
    "SEN-08-clothes_and_lodging", "SEN-09-frown_events_bad", "SEN-10-port_strong_smokey",
)


class Calibration:
    """``camera_params.json``: ``world_2_cam`` {serial: 4x4 OpenCV world->camera} and ``intrinsics``.

    ``intrinsics`` is one 3x3 for all cameras at full resolution (v1, v2) or {serial: 3x3} at the delivered
    resolution (benchmark release); ``shared_intrinsics`` says which this file holds.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.world_to_camera = {str(k): _matrix(v, (4, 4), path, f"world_2_cam[{k}]")
                                    for k, v in raw["world_2_cam"].items()}
            intrinsics = raw["intrinsics"]
        except FileNotFoundError:
            raise DatasetError(f"missing calibration file {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise DatasetError(f"malformed calibration file {path}: {type(err).__name__}: {err}") from None
        self.shared_intrinsics = not isinstance(intrinsics, dict)
        if self.shared_intrinsics:
            self._shared = _matrix(intrinsics, (3, 3), path, "intrinsics")
            self._per_camera: dict[str, np.ndarray] = {}
        else:
            self._per_camera = {str(k): _matrix(v, (3, 3), path, f"intrinsics[{k}]") for k, v in intrinsics.items()}
        # A camera whose matrices hold NaN or infinity cannot be used; the others can (``problems`` lists it).
        self.unusable: dict[str, str] = {}
        shared = finite_problem(self._shared, f"{path}: intrinsics") if self.shared_intrinsics else None
        for serial, matrix in self.world_to_camera.items():
            problem = (finite_problem(matrix, f"{path}: world_2_cam[{serial}]") or shared
                       or (finite_problem(self._per_camera[serial], f"{path}: intrinsics[{serial}]")
                           if serial in self._per_camera else None))
            if problem:
                self.unusable[serial] = problem

    @property
    def problems(self) -> list[str]:
        """Calibration entries that make a camera unusable (non-finite values), one line each."""
        return list(dict.fromkeys(self.unusable.values()))

    @property
    def serials(self) -> list[str]:
        return sorted(self.world_to_camera)

    def has(self, serial: str) -> bool:
        return serial in self.world_to_camera and (self.shared_intrinsics or serial in self._per_camera)

    def extrinsics(self, serial: str) -> np.ndarray:
        if serial not in self.world_to_camera:
            raise DatasetError(f"{self.path}: camera {serial} is not in 'world_2_cam'")
        if serial in self.unusable:
            raise DatasetError(f"camera {serial} is unusable: {self.unusable[serial]}")
        return self.world_to_camera[serial]

    def intrinsics(self, serial: str) -> np.ndarray:
        if serial in self.unusable:
            raise DatasetError(f"camera {serial} is unusable: {self.unusable[serial]}")
        if self.shared_intrinsics:
            return self._shared
        if serial not in self._per_camera:
            raise DatasetError(f"{self.path}: camera {serial} is not in 'intrinsics'")
        return self._per_camera[serial]


def _matrix(value: object, shape: tuple[int, int], path: Path, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: {key} is not a numeric matrix") from None
    if array.shape != shape:
        raise DatasetError(f"{path}: {key} has shape {array.shape}, expected {shape}")
    return array


def subject_folders(folder: Path) -> list[str]:
    """Participant folders (three-digit ids) directly under ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


# Which dataset name reads which NeRSemble layout, and the file that tells them apart.
LAYOUTS = {
    "nersemble": "the benchmark release (nvs/, mono_flame_avatar/, svfr/)",
    "nersemble-v1": "NeRSemble v1 ({pid}/camera_params.json, frame_*/images-2x-73fps/*.png)",
    "nersemble-v2": "NeRSemble v2 ({pid}/calibration/camera_params.json, sequences/*/images/*.mp4)",
}


def detect_layout(root: Path) -> str | None:
    """The dataset name whose NeRSemble layout ``root`` holds (see ``LAYOUTS``), or None if it holds none."""
    root = Path(root)
    if any(subject_folders(root / task) for task in ("nvs", "mono_flame_avatar", "svfr")):
        return "nersemble"
    subjects = subject_folders(root)
    if any((root / s / "calibration" / "camera_params.json").is_file() for s in subjects) \
            or (root / "metadata_sequences.csv").is_file():
        return "nersemble-v2"
    if any((root / s / "camera_params.json").is_file() for s in subjects):
        return "nersemble-v1"
    for s in subjects:
        for sequence in (root / s / "sequences").glob("*"):
            if next(sequence.glob("frame_*"), None) is not None and not (sequence / "images").is_dir():
                return "nersemble-v1"
            if next((sequence / "images").glob("cam_*.mp4"), None) is not None:
                return "nersemble-v2"
    return None


def layout_problem(root: Path, expected: str) -> str | None:
    """One line when ``root`` holds another NeRSemble layout than dataset ``expected`` reads, naming the dataset
    that reads it."""
    found = detect_layout(root)
    if found is None or found == expected:
        return None
    return (f"{root} holds {LAYOUTS[found]}, not {LAYOUTS[expected]}: read it as dataset {found} "
            f"(`harness datasets check {found} --data-root {root}`, `harness run --dataset {found}`)")
