"""The input view as the networks see it (a square crop on white) and SOAP's cameras round the head.

SOAP's six views are the input camera turned round the head about the camera's up axis, through a pivot
``head_distance`` metres along its optical axis, by the yaws of ``config.SOAP_YAWS`` (positive yaw: the camera
moves to the head's left, as in the demo rig). They keep the input crop's intrinsics (perspective; SOAP's own
cameras are orthographic: a full-size SOAP generator is given these cameras as the views' poses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.api.types import Camera, View


def on_white(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return np.asarray(image, dtype=np.float32)
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    return np.asarray(image, dtype=np.float32) * a + (1 - a)


def square_crop(view: View, size: int) -> tuple[torch.Tensor, torch.Tensor, Camera]:
    """The central square of the view resized to ``size``: image on white (3, S, S), alpha (S, S), its camera."""
    h, w = view.image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    image = on_white(view.image, view.alpha)[y0:y0 + side, x0:x0 + side]
    alpha = (np.ones((h, w), np.float32) if view.alpha is None else view.alpha.astype(np.float32))
    alpha = alpha[y0:y0 + side, x0:x0 + side]
    img = torch.as_tensor(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    img = F.interpolate(img, size=(size, size), mode="area")[0]
    a = F.interpolate(torch.as_tensor(np.ascontiguousarray(alpha))[None, None], size=(size, size), mode="area")[0, 0]
    cam = view.camera
    if (cam.width, cam.height) != (w, h):
        cam = cam.resized(w, h)
    K = cam.K.copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    cropped = Camera(cam.world_to_camera, K, side, side).resized(size, size)
    return img.clamp(0, 1), a.clamp(0, 1), cropped


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def pivot(camera: Camera, distance: float) -> np.ndarray:
    return camera.center + distance * camera.forward


def orbit_cameras(camera: Camera, distance: float, yaws: Sequence[float]) -> list[Camera]:
    """``camera`` turned round the pivot about its up axis by each yaw (degrees)."""
    p = pivot(camera, distance)
    up = -camera.world_to_camera[1, :3]  # OpenCV: camera y points down
    out = []
    for yaw in yaws:
        Q = rotation_about(up, np.radians(yaw))
        T = np.eye(4)
        T[:3, :3] = Q.T
        T[:3, 3] = p - Q.T @ p
        out.append(Camera(camera.world_to_camera @ T, camera.K, camera.width, camera.height))
    return out


def euler_xyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Inverse of ``harness.heads.model.euler_xyz_to_matrix``: R = Rx(a) Ry(b) Rz(c) -> (a, b, c)."""
    b = np.arcsin(np.clip(R[0, 2], -1.0, 1.0))
    a = np.arctan2(-R[1, 2], R[2, 2])
    c = np.arctan2(-R[0, 1], R[0, 0])
    return np.array([a, b, c])


def head_pose_facing(camera: Camera, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Euler rotation and translation that put the head model (face towards +z, y up) facing ``camera`` at the
    pivot (the template's origin sits 2 cm above the head centre the rig aims at)."""
    R_c = camera.world_to_camera[:3, :3]
    up, back = -R_c[1], -R_c[2]  # model y -> camera up, model z -> towards the camera
    x = np.cross(up, back)
    R = np.stack([x, up, back], 1)
    t = pivot(camera, distance) + 0.02 * up
    return euler_xyz_from_matrix(R), t
