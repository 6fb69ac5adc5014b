"""What the two video layouts of NeRSemble (v2 and the benchmark release) share: per-camera MP4s, alpha videos."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import Inventory, principal_point_problem
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
    def expected_cameras(self, subject: str, calibration: Calibration) -> list[str] | None:
        """The cameras whose videos every sequence must hold (None: not checked); the layout may leave some out."""
        return calibration.serials

    def check_participant(self, subject: str, inventory: Inventory,
                          deep: bool = False) -> dict[str, dict[str, tuple[int, int]]]:
        """Check one participant's calibration and videos; returns the video size per sequence and camera.

        Every expected camera has its video (and alpha video where the layout ships them) in every sequence, every
        video is whole (packets counted; every frame decoded with ``deep``), an alpha video matches its image video
        in size and length, and the calibration's K fits the delivered size.
        """
        folder = self.participant_dir(subject)
        try:
            calibration: Calibration | None = self._calibration(subject)
            inventory.problems += calibration.problems
        except DatasetError as err:
            inventory.problems.append(str(err))
            calibration = None
        expected = self.expected_cameras(subject, calibration) if calibration is not None else None
        sequences: dict[str, dict[str, object]] = {}
        sizes: dict[str, dict[str, tuple[int, int]]] = {}
        for seq_dir in sorted(p for p in (folder / "sequences").glob("*") if p.is_dir()):
            videos = sorted((seq_dir / "images").glob("cam_*.mp4"))
            if not videos:
                continue
            serials = [v.stem.removeprefix("cam_") for v in videos]
            alpha_videos = sorted((seq_dir / "alpha_maps").glob("cam_*.mp4"))
            wants_alpha = self.expects_alpha_videos or bool(alpha_videos)  # v2: optional, but all or none
            counts: dict[str, int] = {}
            seq_sizes: dict[str, tuple[int, int]] = {}
            for serial, video in zip(serials, videos, strict=True):
                length = self._check_video(video, inventory, deep)
                if length is None:
                    continue
                counts[serial], seq_sizes[serial] = length[0], length[1]
                alpha = seq_dir / "alpha_maps" / video.name
                if not alpha.is_file():
                    if wants_alpha:
                        inventory.problems.append(f"missing alpha video {alpha}")
                    continue
                alpha_length = self._check_video(alpha, inventory, deep)
                if alpha_length is not None and alpha_length != length:
                    inventory.problems.append(f"alpha video {alpha} is {alpha_length[1][0]}x{alpha_length[1][1]} "
                                              f"with {alpha_length[0]} frames, its image video {video} "
                                              f"{length[1][0]}x{length[1][1]} with {length[0]}")
            if calibration is not None:
                inventory.problems += [f"{calibration.path}: camera {s} (video {seq_dir / 'images'}/cam_{s}.mp4) is "
                                       "not in the calibration" for s in serials if not calibration.has(s)]
                missing = [s for s in expected or [] if s not in serials]
                if missing:
                    inventory.problems.append(
                        f"{seq_dir / 'images'}: no video for {len(missing)} of the {len(expected or [])} camera(s) "
                        f"in {calibration.path}: {', '.join(f'cam_{s}.mp4' for s in missing[:4])}"
                        + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
                for serial, (width, height) in seq_sizes.items():
                    if not calibration.has(serial) or serial in calibration.unusable:
                        continue
                    where = f"{calibration.path}: camera {serial} (video {seq_dir / 'images'}/cam_{serial}.mp4)"
                    try:
                        camera = self.delivered_camera(calibration, serial, width, height)
                    except DatasetError as err:
                        inventory.problems.append(str(err))
                        continue
                    problem = principal_point_problem(camera.K, width, height, where)
                    if problem:
                        inventory.problems.append(problem)
            lengths = sorted(set(counts.values()))
            if len(lengths) > 1:
                inventory.problems.append(f"{seq_dir / 'images'}: cameras disagree on the frame count {lengths}")
            sequences[seq_dir.name] = {"cameras": len(serials), "frames": lengths[0] if lengths else 0}
            sizes[seq_dir.name] = seq_sizes
        inventory.found[subject] = {"sequences": sequences}
        return sizes

    @staticmethod
    def _check_video(path: Path, inventory: Inventory, deep: bool) -> tuple[int, tuple[int, int]] | None:
        """(frames, (width, height)) of a video whose packets (and, ``deep``, frames) all read, else None."""
        import av

        try:
            reader = VideoReader(path)
        except DatasetError as err:
            inventory.problems.append(str(err))
            return None
        try:
            count = reader.count_frames()
            declared = reader.frames_declared
            if declared and count < declared:
                inventory.problems.append(f"video file {path} holds {count} frames but declares {declared} "
                                          "(truncated?)")
            if deep:
                decoded = reader.decode_all()
                if decoded < count:
                    inventory.problems.append(f"video file {path}: only {decoded} of its {count} frames decode")
                    count = decoded
            return count, (reader.width, reader.height)
        except DatasetError as err:
            inventory.problems.append(str(err))
            return None
        except (av.error.FFmpegError, OSError) as err:  # a broken container can fail in the demuxer too
            inventory.problems.append(f"unreadable video file {path}: {type(err).__name__}: {err}")
            return None
        finally:
            reader.close()
