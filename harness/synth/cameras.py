"""Camera sets a corpus is rendered from, all square at the corpus resolution, looking at the head.

``rig``: the 16 NeRSemble-like directions of the demo rig (yaw to +-75 degrees, two rows); ``synshot``: SynShot's
14 frontal cameras (yaw -60..60, pitch -15..15) and 14 on the upper hemisphere (pitch 25..65, all round);
``orbit``: 12 cameras evenly round the head at eye level, back views included; ``soap``: the 6 views of SOAP's
multi-view generator (yaw 0, -90, 180, 90, -45, 45 at eye level, in that order); ``soap+rig``: those 6, then
the 16 rig cameras. SOAP's cameras are orthographic; these are perspective like the other sets, so a model trained
on them sees the same projection as the rig.
"""

from __future__ import annotations

import numpy as np

from harness.api.types import Camera
from harness.data.rig import look_at_world_to_camera

CAMERA_SETS = ("rig", "synshot", "orbit", "soap", "soap+rig")
SOAP_YAWS = (0.0, -90.0, 180.0, 90.0, -45.0, 45.0)
DISTANCE = 1.0
FIELD_OF_VIEW_DEG = 17.0  # the head (about 0.25 m) fills most of a square image at 1 m
TARGET = np.array([0.0, -0.02, 0.0])

RIG_ANGLES = (
    (-75, 10), (-60, -10), (-45, 10), (-40, -12), (-25, 10), (-20, -10), (-10, 12), (0, -15),
    (0, 0), (10, 12), (20, -10), (25, 10), (40, -12), (45, 10), (60, -10), (75, 10),
)


def _angles(camera_set: str) -> list[tuple[float, float]]:
    if camera_set == "rig":
        return [(float(y), float(p)) for y, p in RIG_ANGLES]
    if camera_set == "synshot":
        frontal = [(y, p) for p in (-15.0, 15.0) for y in np.linspace(-60, 60, 7)]
        upper = [(y, p) for p, ys in ((25.0, np.linspace(-150, 180, 7)), (65.0, np.linspace(-180, 150, 7)))
                 for y in ys]
        return [(float(y), float(p)) for y, p in frontal + upper]
    if camera_set == "orbit":
        return [(float(y), 0.0) for y in np.arange(12) * 30.0]
    if camera_set == "soap":
        return [(y, 0.0) for y in SOAP_YAWS]
    if camera_set == "soap+rig":
        return _angles("soap") + _angles("rig")
    raise ValueError(f"unknown camera set {camera_set!r}; known: {', '.join(CAMERA_SETS)}")


def camera_set(name: str, resolution: int) -> tuple[list[Camera], list[tuple[float, float]]]:
    """The cameras of set ``name`` at ``resolution`` x ``resolution``, and their (yaw, pitch) in degrees."""
    focal = 0.5 * resolution / np.tan(np.radians(FIELD_OF_VIEW_DEG / 2))
    K = np.array([[focal, 0.0, resolution / 2], [0.0, focal, resolution / 2], [0.0, 0.0, 1.0]])
    cameras, angles = [], _angles(name)
    for yaw, pitch in angles:
        y, p = np.radians(yaw), np.radians(pitch)
        centre = TARGET + DISTANCE * np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)])
        up = np.array([0.0, 1.0, 0.0]) if abs(pitch) < 89 else np.array([0.0, 0.0, -1.0])
        cameras.append(Camera(look_at_world_to_camera(centre, TARGET, up), K, resolution, resolution))
    return cameras, angles
