"""The NeRSemble benchmark release (2026), read as distributed.

Layout under the benchmark folder::

    nvs/{pid:03d}/calibration/camera_params.json             world_2_cam {serial: 4x4}, intrinsics {serial: 3x3}
    nvs/{pid}/sequences/{SEQ}/images/cam_{serial}.mp4         1100x1604, background removed onto white
    nvs/{pid}/sequences/{SEQ}/alpha_maps/cam_{serial}.mp4     alpha = channel 0
    mono_flame_avatar/{pid}/...                               the same, 512x512, plus
    mono_flame_avatar/{pid}/sequences/{SEQ}/tracking/flame2023_tracking_v2.npz
    svfr/{pid}/{SEQ}_{t}_{serial}/rgb.png                     512x512 single-view crops (no calibration)

The intrinsics are per camera and already for the delivered resolution, so K is used as is (contrast v1/v2, whose
one K is for 2200x3208). Participants of the NVS and mono-avatar tasks are disjoint, so a participant id names its
task folder. The NVS hold-out cameras (222200046, 222200037, 222200039) are not distributed, but calibrated: a
camera without a video (a hold-out camera, or any camera of a mono-avatar test sequence, whose images are held out)
has the size of the participant's distributed videos, so a method can render it for a submission
(``harness export``); it has no ground truth. In-the-wild units of this dataset read the ``svfr`` crops: subject =
participant, photo = the ``{SEQ}_{t}_{serial}`` folder name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import Inventory, check_image_file, require_folder
from harness.data.errors import DatasetError
from harness.data.nersemble_common import Calibration, layout_problem, subject_folders
from harness.data.nersemble_video import NersembleVideoLayout
from harness.data.protocol import PHOTO_CAMERA
from harness.data.video import video_size
from harness.heads.flame import params_from_nersemble_tracking
from harness.imageio import ImageReadError, read_image

TASK_FOLDERS = ("nvs", "mono_flame_avatar")
SVFR = "svfr"
NVS_HOLD_OUT_SERIALS = ("222200046", "222200037", "222200039")
TRACKING_FILE = "flame2023_tracking_v2.npz"


class NersembleBenchmark(NersembleVideoLayout):
    layout = "NeRSemble benchmark release (nvs/, mono_flame_avatar/, svfr/)"
    expects_alpha_videos = True

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._tracking = lru_cache(maxsize=None)(self._read_tracking)

    @classmethod
    def open(cls, root: Path | None) -> NersembleBenchmark:
        return cls(require_folder(root, "NeRSemble benchmark", "the folder nersemble-benchmark-download wrote, "
                                                              "holding nvs/, mono_flame_avatar/, svfr/"))

    def participant_dir(self, subject: str) -> Path:
        candidates = [self.root / task / subject for task in TASK_FOLDERS]
        for folder in candidates:
            if folder.is_dir():
                return folder
        raise DatasetError(f"participant {subject} not found: neither {candidates[0]} nor {candidates[1]} exists")

    def delivered_camera(self, calibration: Calibration, serial: str, width: int, height: int) -> Camera:
        return Camera(calibration.extrinsics(serial), calibration.intrinsics(serial), width, height)

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera:
        if self.video_path(ViewRef(subject, sequence, frame, camera_id)).is_file():
            return super().camera(subject, sequence, frame, camera_id)
        calibration = self._calibration(subject)
        calibration.extrinsics(camera_id)  # a camera missing from the calibration is named first
        videos = sorted((self.participant_dir(subject) / "sequences").glob("*/images/cam_*.mp4"))
        if not videos:
            raise DatasetError(f"camera {camera_id} of participant {subject}: no video of "
                               f"{self.video_path(ViewRef(subject, sequence, frame, camera_id))} and no other video "
                               "of the participant to take the delivered size from")
        return self.delivered_camera(calibration, camera_id, *video_size(videos[0]))

    def _read_calibration(self, subject: str) -> Calibration:
        calibration = Calibration(self.calibration_path(subject))
        if calibration.shared_intrinsics:
            raise DatasetError(f"{calibration.path}: the benchmark release has one K per camera, this file has one "
                               "shared K (is this NeRSemble v2?)")
        return calibration

    def frames(self, subject: str, sequence: str) -> list[int]:
        """Video frames 0..n-1. For mono-avatar participants, as the official toolkit reads them: tracking row i
        belongs to video frame i (the ``frames`` values of the tracking file are capture timesteps, not video
        frame numbers), so the frames are the rows, and every frame chosen can be driven."""
        data = self._tracking(self.tracking_path(subject, sequence))
        if data is not None:
            return list(range(len(np.asarray(data["frames"]).reshape(-1))))
        return super().frames(subject, sequence)

    # -- svfr photos ----------------------------------------------------------------------------------------------
    def photo_path(self, subject: str, photo: str) -> Path:
        return self.root / SVFR / subject / photo / "rgb.png"

    def subjects(self) -> list[str]:
        """Participants of the svfr task (the only task whose protocols list subjects from the folder)."""
        return subject_folders(self.root / SVFR)

    def photos(self, subject: str) -> list[str]:
        folder = self.root / SVFR / subject
        if not folder.is_dir():
            raise DatasetError(f"missing svfr folder {folder}")
        return sorted(p.name for p in folder.iterdir() if (p / "rgb.png").is_file())

    def source_files(self, ref: ViewRef) -> list[Path]:
        if ref.camera == PHOTO_CAMERA:
            return [self.photo_path(ref.subject, ref.sequence)]
        return super().source_files(ref)

    def load_view(self, ref: ViewRef) -> View:
        if ref.camera != PHOTO_CAMERA:
            return super().load_view(ref)
        path = self.photo_path(ref.subject, ref.sequence)
        try:
            image, alpha = read_image(path)
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        height, width = image.shape[:2]
        nominal = Camera(np.eye(4), np.array([[width * 2.0, 0, width / 2], [0, width * 2.0, height / 2], [0, 0, 1]]),
                         width, height)  # uncalibrated crop; in-the-wild protocols replace it with their orbit's
        return View(ref=ref, image=image, camera=nominal, alpha=alpha,
                    alpha_note=None if alpha is not None else "svfr crops ship no alpha")

    # -- tracking -------------------------------------------------------------------------------------------------
    def tracking_path(self, subject: str, sequence: str) -> Path:
        return self.root / "mono_flame_avatar" / subject / "sequences" / sequence / "tracking" / TRACKING_FILE

    def _read_tracking(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise DatasetError(f"unreadable tracking file {path}: {err}") from None

    def tracking(self, subject: str, sequence: str, frame: int) -> dict[str, Any] | None:
        """FLAME 2023 parameters of one frame, for participants of the mono-avatar task (else None)."""
        path = self.tracking_path(subject, sequence)
        data = self._tracking(path)
        if data is None:
            return None
        rows = len(np.asarray(data["frames"]).reshape(-1))
        if not 0 <= frame < rows:
            raise DatasetError(f"{path}: no tracking for video frame {frame} (it has {rows} rows, one per frame)")
        return params_from_nersemble_tracking(data, int(frame))  # row = video frame, as the official toolkit

    # -- checking -------------------------------------------------------------------------------------------------
    def _check_tracking_rows(self, subject: str, sequence: str, inventory: Inventory) -> None:
        """A mono-avatar tracking file must have one row per video frame (row i drives frame i)."""
        path = self.tracking_path(subject, sequence)
        if not path.is_file():
            inventory.problems.append(f"missing tracking file {path}")
            return
        try:
            rows = len(np.asarray(self._tracking(path)["frames"]).reshape(-1))  # type: ignore[index]
            videos = len(super().frames(subject, sequence))
        except (DatasetError, KeyError) as err:
            inventory.problems.append(f"{path}: {err}")
            return
        if rows != videos:
            inventory.problems.append(f"{path}: {rows} tracking rows for {videos} video frames; row i must drive video "
                                      "frame i")

    def expected_cameras(self, subject: str, calibration: Calibration) -> list[str] | None:
        """NVS participants: every calibrated camera but the hold-out ones, which are not distributed. Mono-avatar
        participants: not checked (which cameras the task distributes is the task's choice)."""
        if (self.root / "nvs" / subject).is_dir():
            return [s for s in calibration.serials if s not in NVS_HOLD_OUT_SERIALS]
        return None

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        inventory = Inventory(self.root, self.layout)
        hint = layout_problem(self.root, "nersemble")
        if hint:
            inventory.problems.append(hint)
        by_task = {task: subject_folders(self.root / task) for task in (*TASK_FOLDERS, SVFR)}
        if not any(by_task.values()):
            inventory.problems.append(f"{self.root}: none of nvs/, mono_flame_avatar/, svfr/ holds participant "
                                      "folders")
        for task in TASK_FOLDERS:
            for subject in by_task[task]:
                if subjects and subject not in subjects:
                    continue
                self.check_participant(subject, inventory, deep)
                inventory.found[subject]["task"] = task
                if task == "mono_flame_avatar":
                    for sequence in inventory.found[subject]["sequences"]:
                        self._check_tracking_rows(subject, sequence, inventory)
        for subject in by_task[SVFR]:
            if not subjects or subject in subjects:
                photos = self.photos(subject)
                inventory.found[subject] = {"task": SVFR, "photos": len(photos)}
                for photo in photos:
                    _, problem = check_image_file(self.photo_path(subject, photo), deep, "photo")
                    if problem:
                        inventory.problems.append(problem)
        for subject in subjects or []:
            if subject not in inventory.found:
                inventory.problems.append(f"participant {subject} not found under "
                                          f"{', '.join(str(self.root / t) for t in (*TASK_FOLDERS, SVFR))}")
        return inventory
