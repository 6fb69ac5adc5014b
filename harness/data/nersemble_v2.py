"""NeRSemble v2, read as distributed: per-camera MP4 videos, one shared K at full resolution.

Layout::

    metadata_participants.csv, metadata_sequences.csv
    {pid:03d}/calibration/camera_params.json        world_2_cam {serial: 4x4}, intrinsics 3x3 at 2200x3208
    {pid}/calibration/color_calibration.json        {serial: colour correction matrix}
    {pid}/sequences/{SEQ}/images/cam_{serial}.mp4
    {pid}/sequences/BACKGROUND/image_{serial}.jpg   background plates

v2 ships no alpha. Alpha is taken, when present, from frames extracted as
``{pid}/sequences/{SEQ}/timesteps/frame_{t:05d}/alpha_maps/cam_{serial}.png``, else from VHAP's preprocessing
(``vhap/preprocess_video.py``, the data GaussianAvatars trains on) as
``{pid}/sequences/{SEQ}/alpha_maps/cam_{serial}_{idx:06d}.png``, else from
``{pid}/sequences/{SEQ}/alpha_maps/cam_{serial}.mp4`` (the benchmark release's convention, channel 0); otherwise
the view has no alpha and masked metrics report why.

VHAP resamples the 73 fps videos to 25 fps with FFmpeg's ``fps`` filter (rounding to nearest, numbered from 0):
its image ``idx`` is the last 73 fps frame whose time rounds to output slot ``idx``, i.e. video frame
``ceil((idx + 0.5) * 73 / 25) - 1`` (idx 0, 1, 2, 3 -> frames 1, 4, 7, 10), the video's first timestamp being 0.
About one frame in three has a VHAP alpha map; the others have none (their note names the nearest that do).

Colour calibration (protocol ``preprocess.colour_calibration``) is the toolkit's: sRGB
decoding, Cheung 2004 polynomial expansion with the matrix's number of terms, matrix product, sRGB encoding
(``colour-science`` does the expansion, as in the official toolkit).
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.api.types import Camera, ViewRef
from harness.data.adapter import Inventory, check_image_file, require_folder
from harness.data.errors import DatasetError
from harness.data.nersemble_common import FULL_HEIGHT, FULL_WIDTH, Calibration, layout_problem, subject_folders
from harness.data.nersemble_video import NersembleVideoLayout
from harness.imageio import ImageReadError, read_image, read_mask


class NersembleV2(NersembleVideoLayout):
    supports_colour_calibration = True
    layout = "NeRSemble v2 (per-camera MP4 videos)"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.colour_calibration = False
        self._ccms = lru_cache(maxsize=None)(self._read_ccms)

    @classmethod
    def open(cls, root: Path | None) -> NersembleV2:
        return cls(require_folder(root, "NeRSemble v2",
                                  "the folder holding {pid:03d}/calibration/ and the metadata CSVs"))

    def participant_dir(self, subject: str) -> Path:
        return self.root / subject

    def subjects(self) -> list[str]:
        return subject_folders(self.root)

    def colour_calibration_path(self, subject: str) -> Path:
        return self.participant_dir(subject) / "calibration" / "color_calibration.json"

    def background_path(self, subject: str, serial: str) -> Path:
        return self.participant_dir(subject) / "sequences" / "BACKGROUND" / f"image_{serial}.jpg"

    def alpha_frame_path(self, ref: ViewRef) -> Path:
        return (self.sequence_dir(ref.subject, ref.sequence) / "timesteps" / f"frame_{ref.frame:05d}" / "alpha_maps"
                / f"cam_{ref.camera}.png")

    def vhap_alpha_path(self, ref: ViewRef) -> Path | None:
        """VHAP's alpha map of this view, if VHAP's 25 fps export holds this frame (see the module docstring)."""
        index = vhap_index(ref.frame)
        if index is None:
            return None
        return self.sequence_dir(ref.subject, ref.sequence) / "alpha_maps" / f"cam_{ref.camera}_{index:06d}.png"

    def source_files(self, ref: ViewRef) -> list[Path]:
        extra = [self.colour_calibration_path(ref.subject)] if self.colour_calibration else []
        vhap = self.vhap_alpha_path(ref)
        return [*super().source_files(ref), self.alpha_frame_path(ref), *([vhap] if vhap else []), *extra]

    def delivered_camera(self, calibration: Calibration, serial: str, width: int, height: int) -> Camera:
        if abs(width / height - FULL_WIDTH / FULL_HEIGHT) > 0.01:
            raise DatasetError(f"{calibration.path}: videos of camera {serial} are {width}x{height}, not a "
                               f"downscaled {FULL_WIDTH}x{FULL_HEIGHT} frame; the shared K cannot be rescaled")
        full = Camera(calibration.extrinsics(serial), calibration.intrinsics(serial), FULL_WIDTH, FULL_HEIGHT)
        return full.resized(width, height)

    def read_alpha(self, ref: ViewRef, width: int, height: int) -> tuple[np.ndarray | None, str | None]:
        frame_file = self.alpha_frame_path(ref)
        if frame_file.is_file():
            try:
                alpha = read_mask(frame_file)
            except ImageReadError as err:
                raise DatasetError(str(err)) from None
            if alpha.shape != (height, width):
                raise DatasetError(f"alpha map {frame_file} is {alpha.shape[1]}x{alpha.shape[0]}, the video is "
                                   f"{width}x{height}")
            return alpha, None
        vhap = self.vhap_alpha_path(ref)
        if vhap is not None and vhap.is_file():
            return _sized_mask(vhap, width, height), None
        alpha, _ = super().read_alpha(ref, width, height)
        if alpha is not None:
            return alpha, None
        folder = self.sequence_dir(ref.subject, ref.sequence) / "alpha_maps"
        exported = sorted(folder.glob(f"cam_{ref.camera}_*.png"))
        if exported and vhap is None:
            nearest = " and ".join(str(f) for f in vhap_frames_around(ref.frame))
            return None, (f"VHAP's 25 fps export of camera {ref.camera} ({len(exported)} alpha maps in {folder}) "
                          f"holds no frame {ref.frame}: the nearest frames it holds are {nearest}")
        return None, ("NeRSemble v2 ships no alpha maps and none were found at "
                      f"{self.alpha_video_path(ref)}, {frame_file}"
                      + (f" or VHAP's {vhap}" if vhap is not None else ""))

    def _read_ccms(self, subject: str) -> dict[str, np.ndarray]:
        path = self.colour_calibration_path(subject)
        try:
            return {str(k): np.asarray(v, dtype=np.float64) for k, v in json.loads(path.read_text()).items()}
        except FileNotFoundError:
            raise DatasetError(f"missing colour calibration file {path}") from None
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as err:
            raise DatasetError(f"malformed colour calibration file {path}: {err}") from None

    def correct_colour(self, image: np.ndarray, ref: ViewRef) -> np.ndarray:
        if not self.colour_calibration:
            return image
        ccms = self._ccms(ref.subject)
        if ref.camera not in ccms:
            raise DatasetError(f"{self.colour_calibration_path(ref.subject)}: no matrix for camera {ref.camera}")
        return apply_colour_correction(image, ccms[ref.camera])

    def background_plate(self, subject: str, serial: str) -> np.ndarray:
        """The empty-studio plate of one camera (float RGB at the plate's resolution)."""
        try:
            return read_image(self.background_path(subject, serial))[0]
        except ImageReadError as err:
            raise DatasetError(str(err)) from None

    def background_plate_for(self, ref: ViewRef) -> np.ndarray:
        return self.background_plate(ref.subject, ref.camera)

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        inventory = Inventory(self.root, self.layout)
        hint = layout_problem(self.root, "nersemble-v2")
        if hint:
            inventory.problems.append(hint)
        for name in ("metadata_participants.csv", "metadata_sequences.csv"):
            if not (self.root / name).is_file():
                inventory.problems.append(f"missing {self.root / name}")
        expected = _expected_sequences(self.root / "metadata_sequences.csv")
        found = subject_folders(self.root)
        if not found:
            inventory.problems.append(f"{self.root}: no participant folders ({{pid:03d}}/calibration/...)")
        for subject in subjects or found:
            if not self.participant_dir(subject).is_dir():
                inventory.problems.append(f"missing participant folder {self.participant_dir(subject)}")
                continue
            sizes = self.check_participant(subject, inventory, deep)
            self._check_alpha_frames(subject, sizes, inventory, deep)
            if not self.colour_calibration_path(subject).is_file():
                inventory.problems.append(f"missing colour calibration file {self.colour_calibration_path(subject)}")
            plates = sorted(self.background_path(subject, "x").parent.glob("image_*.jpg"))
            entry = inventory.found[subject]
            entry["background_plates"] = len(plates)
            inventory.problems += [problem for plate in plates
                                   if (problem := check_image_file(plate, deep, "background plate")[1])]
            listed = expected.get(subject.lstrip("0") or "0")
            if listed:
                missing = sorted(set(listed) - set(entry["sequences"]) - {"BACKGROUND"})
                entry["sequences_not_downloaded"] = missing
        return inventory

    def _check_alpha_frames(self, subject: str, sizes: dict[str, dict[str, tuple[int, int]]], inventory: Inventory,
                            deep: bool) -> None:
        """Alpha maps added as extracted frames or by VHAP: whole, and of their camera's video size."""
        for sequence, by_camera in sizes.items():
            vhap = sorted((self.sequence_dir(subject, sequence) / "alpha_maps").glob("cam_*_*.png"))
            if vhap:
                inventory.found[subject]["sequences"][sequence]["vhap_alpha_maps"] = len(vhap)
            for path in [*sorted((self.sequence_dir(subject, sequence) / "timesteps").glob("frame_*/alpha_maps/*.png")),
                         *vhap]:
                size, problem = check_image_file(path, deep, "alpha map")
                expected = by_camera.get(path.stem.removeprefix("cam_").split("_")[0])
                if problem:
                    inventory.problems.append(problem)
                elif size is not None and expected is not None and size != expected:
                    inventory.problems.append(f"alpha map {path} is {size[0]}x{size[1]}, the video is "
                                              f"{expected[0]}x{expected[1]}")


VHAP_FPS, VIDEO_FPS = 25, 73  # VHAP's preprocess_video.py target_fps; NeRSemble's capture rate


def vhap_frame(index: int) -> int:
    """The video frame VHAP's image ``index`` holds: FFmpeg's fps filter (round to nearest) keeps, for output slot
    k, the last input frame i with round(i * 25 / 73) <= k, i.e. i < (k + 0.5) * 73 / 25 (never exactly equal)."""
    return ((2 * index + 1) * VIDEO_FPS + 2 * VHAP_FPS - 1) // (2 * VHAP_FPS) - 1


def vhap_index(frame: int) -> int | None:
    """VHAP's image index holding video ``frame``, or None if the 25 fps export skipped it."""
    index = (2 * frame * VHAP_FPS + VIDEO_FPS) // (2 * VIDEO_FPS)  # round(frame * 25 / 73), never a tie
    return index if vhap_frame(index) == frame else None


def vhap_frames_around(frame: int) -> list[int]:
    """The nearest video frames before (if any) and after ``frame`` that VHAP's export holds."""
    index = (2 * frame * VHAP_FPS + VIDEO_FPS) // (2 * VIDEO_FPS)
    candidates = [vhap_frame(k) for k in range(max(index - 2, 0), index + 3)]
    before = [f for f in candidates if f < frame][-1:]
    return [*before, min(f for f in candidates if f > frame)]


def _sized_mask(path: Path, width: int, height: int) -> np.ndarray:
    try:
        alpha = read_mask(path)
    except ImageReadError as err:
        raise DatasetError(str(err)) from None
    if alpha.shape != (height, width):
        raise DatasetError(f"alpha map {path} is {alpha.shape[1]}x{alpha.shape[0]}, the video is {width}x{height}")
    return alpha


def _expected_sequences(path: Path) -> dict[str, list[str]]:
    """metadata_sequences.csv: per participant ID, the sequences marked as recorded ('x' or 'm')."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {str(int(row["ID"])): [k for k, v in row.items() if v in ("x", "m")]
                for row in csv.DictReader(handle) if row.get("ID", "").strip().isdigit()}


def apply_colour_correction(image: np.ndarray, ccm: np.ndarray) -> np.ndarray:
    """NeRSemble's colour correction of a float RGB image in [0, 1] (the official toolkit's recipe)."""
    import colour
    from colour.characterisation import matrix_augmented_Cheung2004

    linear = colour.cctf_decoding(np.clip(image, 0.0, 1.0), function="sRGB")
    expanded = matrix_augmented_Cheung2004(linear.reshape(-1, 3), ccm.shape[-1])
    corrected = (expanded @ ccm.T).reshape(image.shape)
    encoded = colour.cctf_encoding(corrected, function="sRGB")
    return np.clip(encoded, 0.0, 1.0).astype(np.float32)
