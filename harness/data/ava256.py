"""Ava-256, read in place from its per-camera zip archives.

Layout under the dataset root (one folder per capture, named ``{yyyymmdd}--{hhmm}--{SID}``)::

    {capture}/decoder/camera_calibration.json       {"KRT": [{cameraId, K, distortion, T}, ...]}
    {capture}/decoder/frame_list.csv                seg_id,frame_id
    {capture}/decoder/image/cam{id}.zip             cam{id}/{frame:06d}.avif
    {capture}/decoder/segmentation_parts/cam{id}.zip  cam{id}/{frame:06d}.png (class ids)
    {capture}/decoder/head_pose/head_pose.zip       {frame:06d}.txt (3x4 head->world)

Conversions at the edge: ``K`` is stored transposed and for the full 2668x4096 (WxH) frame, so the reader
transposes it and rescales it to the delivered resolution (1334x2048 or 667x1024); ``T`` is stored transposed, so
``T[:4, :3].T`` is the 3x4 world->camera ``[R|t]``; translations are millimetres and become metres. The images are
not undistorted in the release, and the official loader and demos use them as they are with the pinhole K; so does
this reader by default. A protocol with ``preprocess: {undistort: true}`` makes it remap image and segmentation
(radial-tangential k1 k2 p1 p2, OpenCV's model) onto the same K; the flag is part of the protocol (and so of
``run.json`` and every cache key). Never undistort images that were already rectified: they would be distorted twice.
Subject = capture folder name, sequence = ``seg_id`` (e.g. ``EXP_free_face``), frame = ``frame_id``. The head
mask is every labelled class except the chair (0 background, 1 hair, 2 body, 3 chair, 4 apparel, 5 lenses, 6-7 lips,
8-9 teeth, 10 tongue).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from threading import Lock

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import (
    Inventory,
    SizeTally,
    check_image_bytes,
    finite_problem,
    image_error,
    principal_point_problem,
    require_folder,
)
from harness.data.errors import DatasetError

FULL_WIDTH, FULL_HEIGHT = 2668, 4096
FRONTAL_CAMERAS = ("401168", "401875", "402040", "401031")
CHAIR_CLASS = 3
MILLIMETRES_PER_METRE = 1000.0


class _Zips:
    """A few open zip archives, least recently used closed first."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._open: OrderedDict[Path, zipfile.ZipFile] = OrderedDict()
        self._lock = Lock()

    def names(self, path: Path) -> set[str]:
        """The members of an archive (empty when it is missing or unreadable: its views count as missing)."""
        with self._lock:
            archive = self._open.get(path)
            if archive is not None:
                return set(archive.namelist())
        try:
            with zipfile.ZipFile(path) as archive:
                return set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return set()

    def read(self, path: Path, member: str) -> bytes:
        with self._lock:
            archive = self._open.pop(path, None)
            if archive is None:
                if not path.is_file():
                    raise DatasetError(f"missing archive {path}")
                try:
                    archive = zipfile.ZipFile(path)
                except (zipfile.BadZipFile, OSError) as err:
                    raise DatasetError(f"unreadable archive {path}: {err}") from None
            self._open[path] = archive
            while len(self._open) > self.size:
                self._open.popitem(last=False)[1].close()
            try:
                return archive.read(member)
            except KeyError:
                raise DatasetError(f"archive {path} has no member {member}") from None
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise DatasetError(f"archive {path}: member {member} is unreadable: {err}") from None


_ZIPS = _Zips()


class AvaCamera:
    """One KRT entry, converted: K (3x3, full resolution), world->camera 4x4 in metres, distortion (4,)."""

    def __init__(self, K: np.ndarray, world_to_camera: np.ndarray, distortion: np.ndarray,
                 problem: str | None = None) -> None:
        self.K, self.world_to_camera, self.distortion = K, world_to_camera, distortion
        self.problem = problem  # NaN or infinity in K, T or the distortion: the camera cannot be used


def read_krt(path: Path) -> dict[str, AvaCamera]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["KRT"]
    except FileNotFoundError:
        raise DatasetError(f"missing calibration file {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DatasetError(f"malformed calibration file {path}: {type(err).__name__}: {err}") from None
    cameras = {}
    for i, entry in enumerate(entries):
        try:
            K = np.asarray(entry["K"], dtype=np.float64).T
            T = np.asarray(entry["T"], dtype=np.float64)
            distortion = np.asarray(entry.get("distortion", [0.0] * 4), dtype=np.float64)
            name = str(entry["cameraId"])
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{path}: KRT[{i}] is malformed: {type(err).__name__}: {err}") from None
        if K.shape != (3, 3) or T.shape != (4, 4) or distortion.shape != (4,):
            raise DatasetError(f"{path}: KRT[{i}] (camera {name}) has K {K.shape}, T {T.shape}, distortion "
                               f"{distortion.shape}; expected (3, 3), (4, 4), (4,)")
        w2c = np.eye(4)
        w2c[:3, :] = T[:4, :3].T
        w2c[:3, 3] /= MILLIMETRES_PER_METRE
        problem = next((p for p in (finite_problem(m, f"{path}: KRT[{i}] (camera {name}) {key}")
                                    for key, m in (("K", K), ("T", T), ("distortion", distortion))) if p), None)
        cameras[name] = AvaCamera(K, w2c, distortion, problem)
    return cameras


def _decode(data: bytes, where: str) -> Image.Image:
    buffer = io.BytesIO(data)
    try:
        img = Image.open(buffer)
        img.load()
        return img
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"unreadable image {where}: {image_error(err, buffer)}") from None


class Ava256:
    needs_cache = True  # AVIF decoding and undistortion are far costlier than reading a cached PNG
    layout = "Ava-256 (per-camera zip archives)"
    supports_undistortion = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.undistort = False  # set by the protocol's preprocess.undistort
        self._krt = lru_cache(maxsize=None)(self._read_krt)
        self._frame_list = lru_cache(maxsize=None)(self._read_frame_list)
        self._undistort_maps = lru_cache(maxsize=16)(self._maps)
        self._delivered_size = lru_cache(maxsize=None)(self._read_size)
        self._names = lru_cache(maxsize=None)(_ZIPS.names)

    @classmethod
    def open(cls, root: Path | None) -> Ava256:
        return cls(require_folder(root, "Ava-256", "the folder holding the {date}--{time}--{subject} capture folders"))

    # -- paths ----------------------------------------------------------------------------------------------------
    def decoder_dir(self, subject: str) -> Path:
        return self.root / subject / "decoder"

    def calibration_path(self, subject: str) -> Path:
        return self.decoder_dir(subject) / "camera_calibration.json"

    def image_zip(self, subject: str, camera: str) -> Path:
        return self.decoder_dir(subject) / "image" / f"cam{camera}.zip"

    def segmentation_zip(self, subject: str, camera: str) -> Path:
        return self.decoder_dir(subject) / "segmentation_parts" / f"cam{camera}.zip"

    def source_files(self, ref: ViewRef) -> list[Path]:
        return [self.image_zip(ref.subject, ref.camera), self.segmentation_zip(ref.subject, ref.camera),
                self.calibration_path(ref.subject)]

    # -- calibration, frames, poses -------------------------------------------------------------------------------
    def _read_krt(self, subject: str) -> dict[str, AvaCamera]:
        return read_krt(self.calibration_path(subject))

    def _calibrated(self, subject: str, camera_id: str) -> AvaCamera:
        cameras = self._krt(subject)
        if camera_id not in cameras:
            raise DatasetError(f"{self.calibration_path(subject)}: camera {camera_id} is not in 'KRT'")
        if cameras[camera_id].problem:
            raise DatasetError(f"camera {camera_id} is unusable: {cameras[camera_id].problem}")
        return cameras[camera_id]

    def cameras(self, subject: str) -> dict[str, Camera]:
        """Every calibrated camera at full resolution (for choosing cameras by yaw)."""
        return {name: Camera(c.world_to_camera, c.K, FULL_WIDTH, FULL_HEIGHT) for name, c in self._krt(subject).items()
                if not c.problem}

    def _read_frame_list(self, subject: str) -> dict[str, list[int]]:
        path = self.decoder_dir(subject) / "frame_list.csv"
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                segments: dict[str, list[int]] = {}
                for row in csv.DictReader(handle):
                    segments.setdefault(row["seg_id"], []).append(int(row["frame_id"]))
        except FileNotFoundError:
            raise DatasetError(f"missing frame list {path}") from None
        except (KeyError, ValueError, TypeError) as err:
            raise DatasetError(f"malformed frame list {path} (expected columns seg_id,frame_id): {err}") from None
        return {k: sorted(v) for k, v in segments.items()}

    def sequences(self, subject: str) -> list[str]:
        return sorted(self._frame_list(subject))

    def frames(self, subject: str, sequence: str) -> list[int]:
        segments = self._frame_list(subject)
        if sequence not in segments:
            raise DatasetError(f"{self.decoder_dir(subject) / 'frame_list.csv'}: no segment {sequence!r} "
                               f"(segments: {sorted(segments)[:8]}...)")
        return segments[sequence]

    def head_pose(self, subject: str, frame: int) -> np.ndarray:
        """The 4x4 head->world transform of a frame, in metres."""
        path = self.decoder_dir(subject) / "head_pose" / "head_pose.zip"
        text = _ZIPS.read(path, f"{frame:06d}.txt").decode("utf-8")
        try:
            pose = np.loadtxt(io.StringIO(text), dtype=np.float64).reshape(3, 4)
        except ValueError as err:
            raise DatasetError(f"archive {path}: {frame:06d}.txt is not a 3x4 matrix: {err}") from None
        out = np.eye(4)
        out[:3] = pose
        out[:3, 3] /= MILLIMETRES_PER_METRE
        return out

    # -- pixels ---------------------------------------------------------------------------------------------------
    def _member(self, camera: str, frame: int, suffix: str) -> str:
        return f"cam{camera}/{frame:06d}.{suffix}"

    def _read_size(self, subject: str, camera: str) -> tuple[int, int]:
        """The delivered size of a camera's images, from its first readable frame: every frame of a camera has
        one size (``check`` verifies it), and a frame missing from the release must not make the camera unknown."""
        archive = self.image_zip(subject, camera)
        members = sorted(m for m in self._names(archive) if m.endswith(".avif"))
        if not members:
            raise DatasetError(f"archive {archive} is missing or holds no .avif frames")
        problem = ""
        for member in members[:3]:
            size, problem = check_image_bytes(_ZIPS.read(archive, member), f"{archive}:{member}")
            if size is not None:
                return size
        raise DatasetError(problem)

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera:
        return self._camera_at(subject, camera_id, *self._delivered_size(subject, camera_id))

    def missing_views(self, refs: list[ViewRef]) -> dict[ViewRef, str]:
        """The views whose image or segmentation is not in the release (about 0.1% of Ava-256's frames, per its
        datasheet; the official loader skips them), each with the member that is missing."""
        missing: dict[ViewRef, str] = {}
        for ref in refs:
            for archive, suffix in ((self.image_zip(ref.subject, ref.camera), "avif"),
                                    (self.segmentation_zip(ref.subject, ref.camera), "png")):
                member = self._member(ref.camera, ref.frame, suffix)
                if member not in self._names(archive):
                    missing[ref] = f"{archive} has no member {member}"
                    break
        return missing

    def _camera_at(self, subject: str, camera_id: str, width: int, height: int) -> Camera:
        calibrated = self._calibrated(subject, camera_id)
        if abs(width / height - FULL_WIDTH / FULL_HEIGHT) > 0.01:
            raise DatasetError(f"{self.image_zip(subject, camera_id)}: images are {width}x{height}, not a downscaled "
                               f"{FULL_WIDTH}x{FULL_HEIGHT} frame")
        return Camera(calibrated.world_to_camera, calibrated.K, FULL_WIDTH, FULL_HEIGHT).resized(width, height)

    def _maps(self, subject: str, camera_id: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray] | None:
        import cv2

        calibrated = self._calibrated(subject, camera_id)
        if not np.any(calibrated.distortion):
            return None
        K = self._camera_at(subject, camera_id, width, height).K
        return cv2.initUndistortRectifyMap(K, calibrated.distortion, None, K, (width, height), cv2.CV_32FC1)

    def load_view(self, ref: ViewRef) -> View:
        import cv2

        where = f"{self.image_zip(ref.subject, ref.camera)}:{self._member(ref.camera, ref.frame, 'avif')}"
        image = np.asarray(_decode(_ZIPS.read(self.image_zip(ref.subject, ref.camera),
                                              self._member(ref.camera, ref.frame, "avif")), where).convert("RGB"))
        height, width = image.shape[:2]
        camera = self._camera_at(ref.subject, ref.camera, width, height)  # size from the decoded image: one read
        seg_zip = self.segmentation_zip(ref.subject, ref.camera)
        seg_where = f"{seg_zip}:{self._member(ref.camera, ref.frame, 'png')}"
        labels = np.asarray(_decode(_ZIPS.read(seg_zip, self._member(ref.camera, ref.frame, "png")), seg_where))
        if labels.ndim == 3:
            labels = labels[..., 0]
        if labels.shape != (height, width):
            labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))
        maps = self._undistort_maps(ref.subject, ref.camera, width, height) if self.undistort else None
        if maps is not None:
            image = cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            labels = cv2.remap(labels, maps[0], maps[1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)
        alpha = ((labels != 0) & (labels != CHAIR_CLASS)).astype(np.float32)
        return View(ref=ref, image=image.astype(np.float32) / 255.0, camera=camera, alpha=alpha)

    # -- checking -------------------------------------------------------------------------------------------------
    def subjects(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "decoder").is_dir()) if self.root.is_dir() else []

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        """Per capture: the calibration (finite), an image and a segmentation archive for every calibrated camera
        holding every frame of the frame list, every member whole (CRC; header read; decoded with ``deep``), a
        camera's images of one size that fits its K."""
        inventory = Inventory(self.root, self.layout)
        found = self.subjects()
        if not found:
            inventory.problems.append(f"{self.root}: no capture folders ({{date}}--{{time}}--{{subject}}/decoder)")
        for subject in subjects or found:
            decoder = self.decoder_dir(subject)
            if not decoder.is_dir():
                inventory.problems.append(f"missing capture folder {decoder}")
                continue
            entry: dict[str, object] = {}
            try:
                krt = self._krt(subject)
                inventory.problems += [c.problem for c in krt.values() if c.problem]
            except DatasetError as err:
                inventory.problems.append(str(err))
                krt = {}
            frames: list[int] = []
            try:
                segments = self._frame_list(subject)
                entry["segments"] = {k: len(v) for k, v in segments.items()}
                frames = sorted({f for v in segments.values() for f in v})
            except DatasetError as err:
                inventory.problems.append(str(err))
            zips = {p.stem.removeprefix("cam") for p in (decoder / "image").glob("cam*.zip")}
            seg_zips = {p.stem.removeprefix("cam") for p in (decoder / "segmentation_parts").glob("cam*.zip")}
            calibrated = set(krt)
            entry["cameras_calibrated"] = len(calibrated)
            entry["image_archives"] = len(zips)
            inventory.problems += [f"{self.calibration_path(subject)}: camera {c} (archive "
                                   f"{self.image_zip(subject, c)}) is not in 'KRT'" for c in sorted(zips - calibrated)]
            inventory.problems += [f"missing image archive {self.image_zip(subject, c)} (camera {c} is in "
                                   f"{self.calibration_path(subject)})" for c in sorted(calibrated - zips)]
            inventory.problems += [f"missing segmentation archive {self.segmentation_zip(subject, c)}"
                                   for c in sorted((zips | calibrated) - seg_zips)]
            sizes = SizeTally()
            for camera in sorted(zips):
                self._check_archive(self.image_zip(subject, camera), camera, frames, "avif", sizes, inventory, deep)
            for camera in sorted(seg_zips):
                self._check_archive(self.segmentation_zip(subject, camera), camera, frames, "png", None, inventory,
                                    deep)
            inventory.problems += [f"{decoder / 'image'}: {p}" for p in sizes.problems()]
            for camera in sorted(zips & calibrated):
                size = sizes.size(camera)
                if size is None or krt[camera].problem:
                    continue
                try:
                    K = self._camera_at(subject, camera, *size).K
                except DatasetError as err:
                    inventory.problems.append(str(err))
                    continue
                problem = principal_point_problem(K, *size, f"{self.calibration_path(subject)}: camera {camera} "
                                                            f"(archive {self.image_zip(subject, camera)})")
                if problem:
                    inventory.problems.append(problem)
            if not (decoder / "head_pose" / "head_pose.zip").is_file():
                inventory.problems.append(f"missing {decoder / 'head_pose' / 'head_pose.zip'}")
            inventory.found[subject] = entry
        return inventory

    def _check_archive(self, path: Path, camera: str, frames: list[int], suffix: str, sizes: SizeTally | None,
                       inventory: Inventory, deep: bool) -> None:
        """Every frame of the frame list is a member; every member's bytes match their CRC and its header (every
        pixel with ``deep``) reads."""
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                missing = [self._member(camera, f, suffix) for f in frames
                           if self._member(camera, f, suffix) not in names]
                if missing:
                    inventory.problems.append(f"archive {path} lacks {len(missing)} of the {len(frames)} frames of "
                                              f"frame_list.csv, e.g. {missing[0]}")
                for name in sorted(n for n in names if n.endswith(f".{suffix}")):
                    try:
                        data = archive.read(name)  # checks the CRC
                    except (zipfile.BadZipFile, OSError, EOFError) as err:
                        inventory.problems.append(f"archive {path}: member {name} is corrupt: {err}")
                        continue
                    size, problem = check_image_bytes(data, f"{path}:{name}", deep)
                    if problem:
                        inventory.problems.append(problem)
                    if sizes is not None:
                        sizes.add(camera, size, f"{path}:{name}")
        except (zipfile.BadZipFile, OSError) as err:
            inventory.problems.append(f"unreadable archive {path}: {err}")
