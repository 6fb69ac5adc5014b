"""The dataset contracts.

A **layout reader** reads one distributed on-disk layout and converts at its edge into the harness convention
(OpenCV world->camera, K for the delivered resolution, metres, RGB/alpha floats in [0, 1]); nothing downstream
knows a dataset's quirks. The harness wraps every reader in a ``PreparedDataset`` (``harness.data.prepared``)
that applies the protocol's preprocessing and caches decoded frames; runner, scorer and reports talk to that.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.data.errors import DatasetError


@dataclass
class Inventory:
    """What ``harness datasets check`` found in a folder, and every problem at once."""

    root: Path
    layout: str
    found: dict[str, Any] = field(default_factory=dict)  # e.g. subjects, sequences, cameras, frames
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def require_folder(root: Path | None, title: str, what: str) -> Path:
    """The dataset root a reader opens, or one clear message: none given, or not a folder."""
    if root is None:
        raise DatasetError(f"{title} needs --data-root (or the dataset's environment variable or config entry): "
                           f"{what}")
    if not Path(root).is_dir():
        raise DatasetError(f"{title} root {root} is not a folder")
    return Path(root)


@runtime_checkable
class DatasetAdapter(Protocol):
    """What runner and scorer use: views and cameras as the protocol defines them."""

    root: Path

    def camera(self, subject: str, sequence: str, frame: int, camera_id: str) -> Camera: ...

    def load_view(self, ref: ViewRef) -> View: ...

    # Optional: ``tracking(subject, sequence, frame) -> dict | None``, the frame's head parameters
    # (``HeadParams.to_dict()`` plus ``"model"``, the head model's name), for animatable methods.


@runtime_checkable
class LayoutReader(DatasetAdapter, Protocol):
    """One distributed layout, read in place. ``camera`` must not decode pixels.

    Class attributes: ``needs_cache`` (decoding is costly: videos, AVIF in zips) and
    ``supports_colour_calibration``. Optional methods: ``source_files(ref)`` (the files a view is read from, for
    the frame cache's fingerprint), ``subjects()`` and ``photos(subject)`` (in-the-wild listings), ``tracking``.
    """

    @classmethod
    def open(cls, root: Path | None) -> LayoutReader:
        """Open the dataset at ``root`` (``None``: the reader's default location), raising ``DatasetError``."""
        ...

    def check(self, subjects: list[str] | None = None, deep: bool = False) -> Inventory:
        """What the folder holds and every problem at once; headers only, every frame decoded with ``deep``
        (a reader without the ``deep`` parameter is checked without it)."""
        ...


# -- what every reader's ``check`` shares --------------------------------------------------------------------------
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with
PRINCIPAL_POINT_TOLERANCE = 0.25  # K's principal point implies a frame of about (2 cx, 2 cy), within 25% per axis


def check_image_file(path: Path, deep: bool = False, what: str = "image") -> tuple[tuple[int, int] | None, str | None]:
    """((width, height), problem) of an image file, without decoding the pixels unless ``deep``.

    Always: the header is read and a PNG must end with its IEND chunk (a truncated copy does not); ``deep``:
    every pixel is decoded. The problem names the file; the size is None when the header cannot be read.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            size = (img.width, img.height)
            fmt = img.format
            if deep:
                img.load()
    except FileNotFoundError:
        return None, f"missing {what} file {path}"
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError, struct.error, ...
        return None, f"unreadable {what} file {path}: {type(err).__name__}: {err}"
    if not deep and fmt == "PNG":
        try:
            with open(path, "rb") as handle:
                handle.seek(-len(PNG_END), 2)
                complete = handle.read() == PNG_END
        except OSError as err:
            return size, f"unreadable {what} file {path}: {err}"
        if not complete:
            return size, f"truncated {what} file {path}: the PNG does not end with its IEND chunk"
    return size, None


def check_image_bytes(data: bytes, where: str, deep: bool = False) -> tuple[tuple[int, int] | None, str | None]:
    """``check_image_file`` for an image held in memory (a zip member); ``where`` names it in the problem."""
    from PIL import Image

    buffer = io.BytesIO(data)
    try:
        with Image.open(buffer) as img:
            size = (img.width, img.height)
            if deep:
                img.load()
    except Exception as err:  # as in check_image_file
        return None, f"unreadable image {where}: {image_error(err, buffer)}"
    if not deep and data[:8] == b"\x89PNG\r\n\x1a\n" and not data.endswith(PNG_END):
        return size, f"truncated image {where}: the PNG does not end with its IEND chunk"
    return size, None


def image_error(err: BaseException, buffer: object) -> str:
    """PIL's message without the repr of the in-memory buffer it was given (the caller names the file)."""
    return str(err).replace(repr(buffer), "").strip() or type(err).__name__


def finite_problem(matrix: Any, where: str) -> str | None:
    """A calibration matrix with NaN or infinity, named; None when every entry is finite."""
    array = np.asarray(matrix, dtype=np.float64)
    if np.isfinite(array).all():
        return None
    bad = int((~np.isfinite(array)).sum())
    return f"{where} holds {bad} non-finite value(s) (NaN or infinity)"


def principal_point_problem(K: np.ndarray, width: int, height: int, where: str) -> str | None:
    """K valid at (width, height) puts its principal point near the frame's centre: a frame of another size or
    orientation than the one K was calibrated for is named (K implies about 2 cx x 2 cy)."""
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if (abs(2 * cx / width - 1) <= PRINCIPAL_POINT_TOLERANCE
            and abs(2 * cy / height - 1) <= PRINCIPAL_POINT_TOLERANCE):
        return None
    return (f"{where}: the image is {width}x{height} but K's principal point ({cx:.1f}, {cy:.1f}) implies a frame of "
            f"about {2 * cx:.0f}x{2 * cy:.0f}")


class SizeTally:
    """Image sizes per camera across frames; ``problems`` names every camera whose frames disagree."""

    def __init__(self) -> None:
        self._sizes: dict[str, dict[tuple[int, int], list[str]]] = {}

    def add(self, camera: str, size: tuple[int, int] | None, where: str) -> None:
        if size is not None:
            self._sizes.setdefault(camera, {}).setdefault(size, []).append(where)

    def size(self, camera: str) -> tuple[int, int] | None:
        """The camera's most common size (the one the others are measured against)."""
        sizes = self._sizes.get(camera)
        return max(sizes, key=lambda s: len(sizes[s])) if sizes else None

    def problems(self) -> list[str]:
        out = []
        for camera, sizes in sorted(self._sizes.items()):
            if len(sizes) < 2:
                continue
            usual = self.size(camera)
            odd = [f"{w}x{h} ({len(files)}, e.g. {files[0]})" for (w, h), files in sizes.items() if (w, h) != usual]
            out.append(f"camera {camera}: images disagree on their size: {usual[0]}x{usual[1]} in "
                       f"{len(sizes[usual])} frame(s), but {'; '.join(odd)}")
        return out
