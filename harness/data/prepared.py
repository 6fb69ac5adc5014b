"""A layout reader seen through a protocol: preprocessing applied, decoded frames cached."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.adapter import Inventory, LayoutReader
from harness.data.errors import DatasetError, ProtocolError
from harness.data.framecache import FrameCache, quantise, source_fingerprint
from harness.data.preprocess import Preprocessing, apply, crop_box, crop_camera
from harness.data.protocol import PHOTO_CAMERA, Protocol
from harness.data.rig import nearest_yaw_cameras
from harness.imageio import ImageReadError, resize
from harness.jsonio import stable_hash
from harness.paths import harness_home

CACHE_FORMAT = 2


class PreparedDataset:
    """What runner, scorer and reports read: ``camera``/``load_view`` as the protocol defines them.

    Frames are cached (``$HARNESS_HOME/cache/frames``) when decoding is costly (the reader says so) or the
    protocol changes the pixels; the cache key holds the dataset root, the reader and the preprocessing, and each
    entry is checked against its source files' size and modification time.
    """

    def __init__(self, reader: LayoutReader, protocol: Protocol | None, dataset: str,
                 cache_root: Path | None = None) -> None:
        self.reader = reader
        self.root = reader.root
        self.dataset = dataset
        self.preprocessing = protocol.preprocess if protocol is not None else Preprocessing()
        self.background = protocol.background if protocol is not None else (1.0, 1.0, 1.0)
        self.orbit = protocol.orbit if protocol is not None else None
        if self.preprocessing.colour_calibration:
            if not getattr(reader, "supports_colour_calibration", False):
                raise ProtocolError(f"{protocol.path if protocol else ''}: preprocess.colour_calibration is set, "
                                    f"but dataset {dataset!r} ({type(reader).__name__}) has no colour calibration")
            reader.colour_calibration = True  # type: ignore[attr-defined]
        if self.preprocessing.undistort:
            if not getattr(reader, "supports_undistortion", False):
                raise ProtocolError(f"{protocol.path if protocol else ''}: preprocess.undistort is set, but dataset "
                                    f"{dataset!r} ({type(reader).__name__}) has no lens distortion to remove")
            reader.undistort = True  # type: ignore[attr-defined]
        self.cache: FrameCache | None = None
        if getattr(reader, "needs_cache", False) or not self.preprocessing.is_identity:
            key = stable_hash({"format": CACHE_FORMAT, "root": str(Path(reader.root).resolve()),
                               "reader": f"{type(reader).__module__}.{type(reader).__qualname__}",
                               "reader_version": getattr(reader, "version", 1),
                               "preprocess": self.preprocessing.as_dict(), "background": list(self.background),
                               "orbit": None if self.orbit is None else vars(self.orbit),
                               "crop_detector": getattr(reader, "crop_identity", "")}, 16)
            self.cache = FrameCache((cache_root or harness_home() / "cache" / "frames") / dataset / key)

    @property
    def output_size(self) -> tuple[int, int]:
        if self.preprocessing.resolution is None:
            raise ProtocolError("orbit cameras need preprocess.resolution")
        return self.preprocessing.resolution

    def _fingerprint(self, ref: ViewRef) -> list[list[Any]]:
        files = getattr(self.reader, "source_files", None)
        return source_fingerprint(files(ref)) if files is not None else []

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera:
        if camera_id.startswith("orbit_yaw"):
            if self.orbit is None:
                raise ProtocolError(f"camera {camera_id}: the protocol defines no orbit")
            return self.orbit.camera(camera_id, *self.output_size)
        if camera_id == PHOTO_CAMERA and self.orbit is not None:
            return self.orbit.camera("orbit_yaw+000", *self.output_size)
        ref = ViewRef(subject, sequence, frame, camera_id)
        if self.cache is not None:
            meta = self.cache.meta(ref, self._fingerprint(ref))
            if meta is not None:
                return FrameCache.camera_of(meta)
        if self.preprocessing.crop == "head_square":  # the window depends on the ground-truth alpha
            return self.load_view(ref).camera
        raw = self.reader.camera(subject, sequence, frame, camera_id)
        box, _ = crop_box(self.preprocessing.crop, raw.width, raw.height, None, self.preprocessing.crop_scale)
        camera = crop_camera(raw, box)
        resolution = self.preprocessing.resolution
        return camera.resized(*resolution) if resolution is not None else camera

    def load_view(self, ref: ViewRef) -> View:
        if ref.camera.startswith("orbit_yaw"):
            raise DatasetError(f"{ref}: orbit views are rendered, they have no ground truth")
        fingerprint = self._fingerprint(ref) if self.cache is not None else []
        if self.cache is not None:
            hit = self.cache.get(ref, fingerprint)
            if hit is not None:
                return hit[0]
        raw = self.reader.load_view(ref)
        if self.preprocessing.is_identity and self.orbit is None:
            view = raw
            record: dict[str, Any] = {}
        else:
            view, record = apply(raw, self.preprocessing, self.background)
        if self.orbit is not None:  # a photo: its camera is the orbit's frontal one, by definition
            view.camera = self.orbit.camera("orbit_yaw+000", view.camera.width, view.camera.height)
        if self.cache is not None:
            view = quantise(view)
            self.cache.put(view, record, fingerprint)
        return view

    def missing_views(self, refs: list[ViewRef]) -> dict[ViewRef, str]:
        """Views the release does not have (the reader's ``missing_views``; none when it cannot tell)."""
        missing = getattr(self.reader, "missing_views", None)
        return dict(missing(refs)) if missing is not None else {}

    def plate_behind(self, ref: ViewRef, height: int, width: int) -> tuple[np.ndarray | None, str]:
        """The empty-studio plate behind view ``ref`` at ``height`` x ``width`` (colour-corrected like the view),
        or None and why not: the scorer composites RGBA predictions over it for the ``full`` variant."""
        if not self.preprocessing.is_identity or self.orbit is not None:
            return None, "this protocol crops or resizes the frames, and the plates are not prepared the same way"
        return reader_plate(self.reader, ref, height, width, self.dataset)

    def tracking(self, subject: str, sequence: str, frame: int) -> dict[str, Any] | None:
        tracking = getattr(self.reader, "tracking", None)
        return tracking(subject, sequence, frame) if tracking is not None else None

    def subjects(self) -> list[str]:
        listing = getattr(self.reader, "subjects", None)
        if listing is None:
            raise DatasetError(f"dataset {self.dataset!r} cannot list its subjects")
        return list(listing())

    def photos(self, subject: str) -> list[str]:
        listing = getattr(self.reader, "photos", None)
        if listing is None:
            raise DatasetError(f"dataset {self.dataset!r} has no photos to list")
        return list(listing(subject))

    def sequences(self, subject: str) -> list[str]:
        listing = getattr(self.reader, "sequences", None)
        if listing is None:
            raise DatasetError(f"dataset {self.dataset!r} cannot list a subject's sequences")
        return list(listing(subject))

    def frames(self, subject: str, sequence: str) -> list[int]:
        listing = getattr(self.reader, "frames", None)
        if listing is None:
            raise DatasetError(f"dataset {self.dataset!r} cannot list the frames of a sequence")
        return list(listing(subject, sequence))

    def cameras_at_yaws(self, subject: str, reference: str, yaws: Sequence[float]) -> list[str]:
        """Cameras nearest to the given yaws around the head, measured from ``reference`` (the rule behind
        ``target_cameras: {nearest_yaws: [...]}``)."""
        listing = getattr(self.reader, "cameras", None)
        if listing is None:
            raise DatasetError(f"dataset {self.dataset!r} cannot list its cameras")
        cameras = listing(subject)
        if reference not in cameras:
            raise DatasetError(f"dataset {self.dataset!r}, subject {subject}: reference camera {reference} is not "
                               "calibrated")
        return nearest_yaw_cameras(cameras, reference, yaws)

    def check(self, subjects: list[str] | None = None) -> Inventory:
        return self.reader.check(subjects)


def reader_plate(reader: Any, ref: ViewRef, height: int, width: int, dataset: str = "") -> tuple[
        np.ndarray | None, str]:
    """A reader's background plate for ``ref`` (``background_plate_for``), resized to ``height`` x ``width`` and
    colour-corrected as the reader's views are; or None and why not."""
    plate_for = getattr(reader, "background_plate_for", None)
    if plate_for is None:
        return None, f"dataset {dataset or type(reader).__name__!r} has no background plates"
    try:
        plate = np.asarray(plate_for(ref), dtype=np.float32)
    except (DatasetError, ImageReadError, OSError) as err:
        return None, f"background plate unreadable: {err}"
    correct = getattr(reader, "correct_colour", None)
    if correct is not None and getattr(reader, "colour_calibration", False):
        plate = correct(plate, ref)
    if plate.shape[:2] != (height, width):
        plate = resize(plate, width, height)
    return np.clip(plate[..., :3], 0.0, 1.0), ""
