"""Preprocessing shared by every dataset: square crop, resize with K updated, compositing, orbit cameras.

A protocol's ``preprocess`` section says what happens between the distributed pixels and what methods and the
scorer see::

    preprocess:
      crop: none            # none | center_square | head_square
      crop_scale: 1.2       # head_square: side = crop_scale x the longer side of the ground-truth alpha's bbox
      resolution: 512       # square side in pixels, [width, height], or null to keep the (cropped) size;
                            # box filter when shrinking, bilinear when enlarging (harness.imageio.resize)
      composite: false      # composite images onto `background` with the ground-truth alpha
      colour_calibration: false   # NeRSemble v2: apply the per-camera colour correction matrices

The crop and resize act on the camera exactly as on the pixels (principal point shifted by the crop offset, K
scaled by the resize), so a method rendering the target camera produces the ground truth's framing. Crops that
reach past the image are padded with the protocol's background colour. Pixel centres sit at integer + 0.5, so an
integer crop offset and a uniform scale are exact on K.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from harness.api.types import Camera, View
from harness.data.errors import ProtocolError
from harness.data.rig import look_at_world_to_camera
from harness.imageio import resize

CropMode = Literal["none", "center_square", "head_square"]
CROP_MODES = ("none", "center_square", "head_square")


@dataclass(frozen=True)
class Preprocessing:
    crop: CropMode = "none"
    crop_scale: float = 1.2
    resolution: tuple[int, int] | None = None  # (width, height)
    composite: bool = False
    colour_calibration: bool = False
    undistort: bool = False  # remap images and masks through the calibration's lens distortion (Ava-256)

    @property
    def is_identity(self) -> bool:
        """No pixel is changed by the harness (undistortion is the reader's, not a pixel transform here)."""
        return self.as_dict() | {"undistort": False} == Preprocessing().as_dict()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_preprocessing(raw: Any, where: str) -> Preprocessing:
    if raw is None:
        return Preprocessing()
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: 'preprocess' must be a mapping")
    unknown = sorted(set(raw) - {"crop", "crop_scale", "resolution", "composite", "colour_calibration",
                                 "undistort"})
    if unknown:
        raise ProtocolError(f"{where}: unknown preprocess field(s) {unknown}")
    crop = raw.get("crop", "none")
    if crop not in CROP_MODES:
        raise ProtocolError(f"{where}: preprocess.crop is {crop!r}; expected one of {list(CROP_MODES)}")
    resolution = raw.get("resolution")
    if resolution is not None:
        size = [resolution, resolution] if isinstance(resolution, int) else resolution
        if not isinstance(size, list | tuple) or len(size) != 2 or not all(isinstance(v, int) and v > 0
                                                                           for v in size):
            raise ProtocolError(f"{where}: preprocess.resolution must be a positive integer or [width, height]")
        resolution = (int(size[0]), int(size[1]))
    scale = float(raw.get("crop_scale", 1.2))
    if scale <= 0:
        raise ProtocolError(f"{where}: preprocess.crop_scale must be positive")
    return Preprocessing(crop=crop, crop_scale=scale, resolution=resolution,
                         composite=bool(raw.get("composite", False)),
                         colour_calibration=bool(raw.get("colour_calibration", False)),
                         undistort=bool(raw.get("undistort", False)))


@dataclass(frozen=True)
class CropBox:
    """A square (or full-frame) window in source pixels: columns [x0, x0 + width), rows [y0, y0 + height)."""

    x0: int
    y0: int
    width: int
    height: int


def crop_box(mode: CropMode, width: int, height: int, alpha: np.ndarray | None, scale: float) -> tuple[
        CropBox, str]:
    """The crop window for one view and how it was found (``head_square`` falls back to the centre square)."""
    if mode == "none":
        return CropBox(0, 0, width, height), "full frame"
    if mode == "head_square" and alpha is not None:
        rows = np.flatnonzero((alpha > 0.5).any(axis=1))
        cols = np.flatnonzero((alpha > 0.5).any(axis=0))
        if rows.size and cols.size:
            side = _round_half_up(scale * max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]))
            cx, cy = (cols[0] + cols[-1] + 1) / 2.0, (rows[0] + rows[-1] + 1) / 2.0
            box = CropBox(_round_half_up(cx - side / 2), _round_half_up(cy - side / 2), side, side)
            return box, "ground-truth alpha"
        reason = "alpha is empty"
    else:
        reason = "no alpha" if mode == "head_square" else ""
    side = min(width, height)
    box = CropBox((width - side) // 2, (height - side) // 2, side, side)
    return box, "centre square" + (f" (head_square fallback: {reason})" if reason else "")


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def crop_array(array: np.ndarray, box: CropBox, fill: np.ndarray | float) -> np.ndarray:
    """``array[box]`` with the part outside the image filled with ``fill``."""
    h, w = array.shape[:2]
    if box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.width <= w and box.y0 + box.height <= h:
        return array[box.y0:box.y0 + box.height, box.x0:box.x0 + box.width]
    out = np.empty((box.height, box.width, *array.shape[2:]), dtype=array.dtype)
    out[...] = fill
    sx0, sy0 = max(box.x0, 0), max(box.y0, 0)
    sx1, sy1 = min(box.x0 + box.width, w), min(box.y0 + box.height, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - box.y0:sy1 - box.y0, sx0 - box.x0:sx1 - box.x0] = array[sy0:sy1, sx0:sx1]
    return out


def crop_camera(camera: Camera, box: CropBox) -> Camera:
    K = camera.K.copy()
    K[0, 2] -= box.x0
    K[1, 2] -= box.y0
    return Camera(camera.world_to_camera, K, box.width, box.height)


def apply(view: View, spec: Preprocessing, background: tuple[float, float, float]) -> tuple[View, dict[str, Any]]:
    """The view as the protocol defines it, and a record of what was done (crop window, how it was found)."""
    height, width = view.image.shape[:2]
    box, how = crop_box(spec.crop, width, height, view.alpha, spec.crop_scale)
    bg = np.asarray(background, dtype=np.float32)
    image = crop_array(view.image, box, bg)
    alpha = crop_array(view.alpha, box, 0.0) if view.alpha is not None else None
    camera = crop_camera(view.camera, box)
    if spec.resolution is not None:
        out_w, out_h = spec.resolution
        image = np.clip(resize(image, out_w, out_h), 0.0, 1.0)
        alpha = np.clip(resize(alpha, out_w, out_h), 0.0, 1.0) if alpha is not None else None
        camera = camera.resized(out_w, out_h)
    note = view.alpha_note
    if spec.composite:
        if alpha is not None:
            image = image * alpha[..., None] + bg * (1.0 - alpha[..., None])
        else:
            note = (note or "no alpha") + "; not composited onto the background"
    record = {"crop": [box.x0, box.y0, box.width, box.height], "crop_found_by": how,
              "size": [camera.width, camera.height]}
    return View(ref=view.ref, image=np.ascontiguousarray(image, dtype=np.float32), camera=camera,
                alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
                tracking=view.tracking, alpha_note=note), record


@dataclass(frozen=True)
class Orbit:
    """Cameras on a circle around the head for units without calibrated views (in-the-wild photos).

    World frame: head at the origin, +y up, the face looking down +z, metres. ``orbit_yaw+030`` is the camera
    turned 30 degrees towards the head's left (positive yaw = counter-clockwise seen from above).
    """

    distance: float = 1.0
    fov_deg: float = 14.0  # NeRSemble's rig sees a head at 1 m with roughly this vertical field of view
    pitch_deg: float = 0.0

    def camera(self, camera_id: str, width: int, height: int) -> Camera:
        yaw = parse_orbit_id(camera_id)
        return orbit_camera(yaw, self.pitch_deg, self.distance, self.fov_deg, width, height)


def orbit_id(yaw_deg: float) -> str:
    return f"orbit_yaw{_round_half_up(yaw_deg):+04d}"


def parse_orbit_id(camera_id: str) -> float:
    if not camera_id.startswith("orbit_yaw"):
        raise ValueError(f"{camera_id!r} is not an orbit camera id (orbit_yaw+NNN)")
    return float(camera_id.removeprefix("orbit_yaw"))


def orbit_camera(yaw_deg: float, pitch_deg: float, distance: float, fov_deg: float, width: int,
                 height: int) -> Camera:
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    center = distance * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    w2c = look_at_world_to_camera(center, np.zeros(3), np.array([0.0, 1.0, 0.0]))
    focal = 0.5 * height / np.tan(np.radians(fov_deg) / 2.0)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(w2c, K, width, height)
