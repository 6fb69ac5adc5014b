"""What the two video layouts of NeRSemble (v2 and the benchmark release) share: per-camera MP4s, alpha videos."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import Inventory
from harness.data.errors import DatasetError
from harness.data.nersemble_common import Calibration
from harness.data.video import VideoReader, read_video_frame, video_size


class NersembleVideoLayout(ABC):
    """Base of the v2 and benchmark readers; subclasses say where a participant's files are and how K is given."""

    needs_cache = True  # seeking in H.264 is far costlier than reading a cached frame
    supports_colour_calibration = False
    expects_alpha_videos = False
    layout = ""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._calibration = lru_cache(maxsize=None)(self._read_calibration)

    # -- paths (subclasses) ---------------------------------------------------------------------------------------
    @abstractmethod
    def participant_dir(self, subject: str) -> Path: ...

    def calibration_path(self, subject: str) -> Path:
        return self.participant_dir(subject) / "calibration" / "camera_params.json"

    def sequence_dir(self, subject: str, sequence: str) -> Path:
        return self.participant_dir(subject) / "sequences" / sequence

    def video_path(self, ref: ViewRef) -> Path:
        return self.sequence_dir(ref.subject, ref.sequence) / "images" / f"cam_{ref.camera}.mp4"

    def alpha_video_path(self, ref: ViewRef) -> Path:
        return self.sequence_dir(ref.subject, ref.sequence) / "alpha_maps" / f"cam_{ref.camera}.mp4"

    def _read_calibration(self, subject: str) -> Calibration:
        return Calibration(self.calibration_path(subject))

    @abstractmethod
    def delivered_camera(self, calibration: Calibration, serial: str, width: int, height: int) -> Camera: ...

    def sequences(self, subject: str) -> list[str]:
        folder = self.participant_dir(subject) / "sequences"
        return sorted(p.name for p in folder.glob("*") if (p / "images").is_dir())

    def frames(self, subject: str, sequence: str) -> list[int]:
        """Frames 0..n-1, n counted from the packets of the sequence's first camera video (no decoding)."""
        videos = sorted((self.sequence_dir(subject, sequence) / "images").glob("cam_*.mp4"))
        if not videos:
            raise DatasetError(f"no cam_*.mp4 videos in {self.sequence_dir(subject, sequence) / 'images'}")
        reader = VideoReader(videos[0])
        try:
            return list(range(reader.count_frames()))
        finally:
            reader.close()

    # -- reading --------------------------------------------------------------------------------------------------
    def source_files(self, ref: ViewRef) -> list[Path]:
        return [self.video_path(ref), self.alpha_video_path(ref), self.calibration_path(ref.subject)]

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera:
        calibration = self._calibration(subject)
        calibration.extrinsics(camera_id)  # a camera missing from the calibration is named before any decoding
        width, height = video_size(self.video_path(ViewRef(subject, sequence, frame, camera_id)))
        return self.delivered_camera(calibration, camera_id, width, height)

    def read_alpha(self, ref: ViewRef, width: int, height: int) -> tuple[np.ndarray | None, str | None]:
        path = self.alpha_video_path(ref)
        if not path.is_file():
            return None, f"no alpha video at {path}"
        alpha = read_video_frame(path, ref.frame)[..., 0].astype(np.float32) / 255.0  # alpha lives in channel 0
        if alpha.shape != (height, width):
            raise DatasetError(f"alpha video {path} is {alpha.shape[1]}x{alpha.shape[0]}, the images are "
                               f"{width}x{height}")
        return alpha, None

    def correct_colour(self, image: np.ndarray, ref: ViewRef) -> np.ndarray:
        return image

    def load_view(self, ref: ViewRef) -> View:
        camera = self.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
        pixels = read_video_frame(self.video_path(ref), ref.frame)
        image = self.correct_colour(pixels.astype(np.float32) / 255.0, ref)
        alpha, note = self.read_alpha(ref, camera.width, camera.height)
        return View(ref=ref, image=image, camera=camera, alpha=alpha, alpha_note=note)

    # -- checking -------------------------------------------------------------------------------------------------
    def check_participant(self, subject: str, inventory: Inventory) -> None:
        folder = self.participant_dir(subject)
        try:
            calibration: Calibration | None = self._calibration(subject)
        except DatasetError as err:
            inventory.problems.append(str(err))
            calibration = None
        sequences: dict[str, dict[str, object]] = {}
        for seq_dir in sorted(p for p in (folder / "sequences").glob("*") if p.is_dir()):
            videos = sorted((seq_dir / "images").glob("cam_*.mp4"))
            if not videos:
                continue
            serials = [v.stem.removeprefix("cam_") for v in videos]
            counts = {}
            for serial, video in zip(serials, videos, strict=True):
                try:
                    reader = VideoReader(video)
                    counts[serial] = reader.count_frames()
                    reader.close()
                except DatasetError as err:
                    inventory.problems.append(str(err))
                    continue
                declared = reader.frames_declared
                if declared and counts[serial] < declared:
                    inventory.problems.append(f"video file {video} holds {counts[serial]} frames but declares "
                                              f"{declared} (truncated?)")
                alpha = seq_dir / "alpha_maps" / video.name
                if self.expects_alpha_videos and not alpha.is_file():
                    inventory.problems.append(f"missing alpha video {alpha}")
            if calibration is not None:
                inventory.problems += [f"{calibration.path}: camera {s} (video {seq_dir / 'images'}/cam_{s}.mp4) is "
                                       "not in the calibration" for s in serials if not calibration.has(s)]
            lengths = sorted(set(counts.values()))
            if len(lengths) > 1:
                inventory.problems.append(f"{seq_dir / 'images'}: cameras disagree on the frame count {lengths}")
            sequences[seq_dir.name] = {"cameras": len(serials), "frames": lengths[0] if lengths else 0}
        inventory.found[subject] = {"sequences": sequences}
