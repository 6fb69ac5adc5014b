"""Geometry of a camera rig: where it looks, and each camera's yaw around the head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def look_at_world_to_camera(center: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV world->camera matrix of a camera at ``center`` looking at ``target`` (image y points down)."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    w2c = np.eye(4)
    w2c[:3, :3] = np.stack([x, y, z])
    w2c[:3, 3] = -w2c[:3, :3] @ center
    return w2c


def rig_centre(centres: np.ndarray, forwards: np.ndarray) -> np.ndarray:
    """The point closest (least squares) to all optical axes: where the rig looks, i.e. the head."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for c, f in zip(centres, forwards, strict=True):
        p = np.eye(3) - np.outer(f, f)
        a += p
        b += p @ c
    return np.linalg.lstsq(a, b, rcond=None)[0]


def yaw_angles(cameras: dict[str, Any], reference: str) -> dict[str, float]:
    """Signed yaw (degrees) of each camera around the rig's up axis, 0 at the ``reference`` (source) camera."""
    names = list(cameras)
    centres = np.stack([cameras[n].center for n in names])
    forwards = np.stack([cameras[n].forward for n in names])
    up = -np.mean([cameras[n].world_to_camera[1, :3] for n in names], axis=0)
    up /= np.linalg.norm(up)
    head = rig_centre(centres, forwards)
    flat = centres - head
    flat -= np.outer(flat @ up, up)
    ref = flat[names.index(reference)]
    out = {}
    for name, v in zip(names, flat, strict=True):
        out[name] = float(np.degrees(np.arctan2(np.cross(ref, v) @ up, ref @ v)))
    return out


def nearest_yaw_cameras(cameras: dict[str, Any], reference: str, yaws: Sequence[float]) -> list[str]:
    """For each wanted yaw (degrees from ``reference``), the closest camera not chosen yet (never the reference)."""
    angles = yaw_angles(cameras, reference)
    chosen: list[str] = []
    for want in yaws:
        free = [c for c in cameras if c != reference and c not in chosen]
        if not free:
            break
        chosen.append(min(free, key=lambda c: (abs((angles[c] - want + 180.0) % 360.0 - 180.0), c)))
    return chosen
