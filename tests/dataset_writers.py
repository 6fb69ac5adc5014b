"""Tiny datasets written in the real on-disk formats (real MP4s, AVIFs inside zips, calibration files with the
real keys, transposes and units), with a red marker drawn where a known 3D point projects by the dataset's own
convention. Used by the dataset tests and the decoding benchmark."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.rig import look_at_world_to_camera
from harness.data.video import write_video

POINT = np.array([0.02, -0.01, 0.05])  # metres, near the head centre at the origin
MARKER = 3  # half-size in pixels
SERIALS = ("222200040", "220700191", "222200043")
YAWS = (-30.0, 0.0, 30.0)


def look_at(yaw_deg: float, distance: float = 1.0) -> np.ndarray:
    yaw = np.radians(yaw_deg)
    centre = distance * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    return look_at_world_to_camera(centre, np.zeros(3), np.array([0.0, 1.0, 0.0]))


def project(K: np.ndarray, w2c: np.ndarray, point: np.ndarray) -> np.ndarray:
    cam = w2c[:3, :3] @ point + w2c[:3, 3]
    uvw = K @ cam
    return uvw[:2] / uvw[2]


def marked_frame(width: int, height: int, uv: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey image with a red square at ``uv`` (pixel (i, j) covers [i, i+1)), and a disk mask around it."""
    image = np.full((height, width, 3), 90 + 10 * (frame % 16), dtype=np.uint8)
    u, v = int(np.floor(uv[0])), int(np.floor(uv[1]))
    image[max(v - MARKER, 0):v + MARKER + 1, max(u - MARKER, 0):u + MARKER + 1] = (250, 20, 20)
    yy, xx = np.mgrid[0:height, 0:width]
    mask = (((xx + 0.5 - uv[0]) ** 2 + (yy + 0.5 - uv[1]) ** 2) < (width / 4) ** 2).astype(np.uint8) * 255
    return image, mask


def write_benchmark(root: Path, subject: str = "388", sequence: str = "GLASSES", frames: int = 6,
                    size: tuple[int, int] = (64, 96), task: str = "nvs") -> dict[str, np.ndarray]:
    """nvs/ (or mono_flame_avatar/) participant: per-camera K at the delivered size, videos, alpha videos."""
    width, height = size
    base = root / task / subject
    world, intrinsics = {}, {}
    for i, (serial, yaw) in enumerate(zip(SERIALS, YAWS, strict=True)):
        K = np.array([[150.0 + 10 * i, 0, width / 2 + i], [0, 150.0 + 10 * i, height / 2 - i], [0, 0, 1]])
        w2c = look_at(yaw)
        world[serial], intrinsics[serial] = w2c, K
        images, alphas = [], []
        for t in range(frames):
            image, mask = marked_frame(width, height, project(K, w2c, POINT), t)
            images.append(image)
            alphas.append(np.stack([mask, np.zeros_like(mask), np.full_like(mask, 255)], axis=-1))
        write_video(base / "sequences" / sequence / "images" / f"cam_{serial}.mp4", images, fps=73)
        write_video(base / "sequences" / sequence / "alpha_maps" / f"cam_{serial}.mp4", alphas, fps=73)
    calibration = {"world_2_cam": {s: m.tolist() for s, m in world.items()},
                   "intrinsics": {s: k.tolist() for s, k in intrinsics.items()}}
    (base / "calibration").mkdir(parents=True, exist_ok=True)
    (base / "calibration" / "camera_params.json").write_text(json.dumps(calibration))
    return intrinsics


def write_tracking(root: Path, subject: str, sequence: str, frames: list[int]) -> Path:
    rng = np.random.default_rng(0)
    t = len(frames)
    path = root / "mono_flame_avatar" / subject / "sequences" / sequence / "tracking" / "flame2023_tracking_v2.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, shape=rng.normal(size=(1, 300)), expression=rng.normal(size=(t, 100)),
             rotation=rng.normal(size=(t, 3)) * 0.1, rotation_matrices=np.tile(np.eye(3), (t, 1, 1)),
             translation=rng.normal(size=(t, 3)) * 0.01, jaw=rng.normal(size=(t, 3)) * 0.1,
             frames=np.asarray(frames), scale=np.ones((1, 1)), neck=np.zeros((t, 3)), eyes=np.zeros((t, 6)))
    return path


FULL_V2 = (2200, 3208)


def write_v2(root: Path, subject: str = "017", sequence: str = "EXP-1-head", frames: int = 4,
             downscale: int = 8) -> np.ndarray:
    """NeRSemble v2 participant: one shared K at 2200x3208, videos at 1/downscale, colour calibration, plates."""
    width, height = FULL_V2[0] // downscale, FULL_V2[1] // downscale
    K_full = np.array([[8000.0, 0, 1100.0], [0, 8000.0, 1604.0], [0, 0, 1]])
    base = root / subject
    world = {}
    for serial, yaw in zip(SERIALS, YAWS, strict=True):
        w2c = look_at(yaw)
        world[serial] = w2c
        K = K_full.copy()
        K[0] *= width / FULL_V2[0]
        K[1] *= height / FULL_V2[1]
        images = [marked_frame(width, height, project(K, w2c, POINT), t)[0] for t in range(frames)]
        write_video(base / "sequences" / sequence / "images" / f"cam_{serial}.mp4", images, fps=73)
        plate = base / "sequences" / "BACKGROUND" / f"image_{serial}.jpg"
        plate.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(plate)
    (base / "calibration").mkdir(parents=True, exist_ok=True)
    (base / "calibration" / "camera_params.json").write_text(json.dumps(
        {"world_2_cam": {s: m.tolist() for s, m in world.items()}, "intrinsics": K_full.tolist()}))
    ccm = {s: (np.eye(3) * 0.9 + 0.02).tolist() for s in SERIALS}
    (base / "calibration" / "color_calibration.json").write_text(json.dumps(ccm))
    (root / "metadata_participants.csv").write_text("ID,gender\n17,x\n")
    (root / "metadata_sequences.csv").write_text("ID,wears_glasses,BACKGROUND,EXP-1-head,EXP-2-eyes\n17,,x,x,x\n")
    return K_full


AVA_FULL = (2668, 4096)
AVA_CAMERAS = ("401168", "400940", "401031")
AVA_YAWS = (0.0, -60.0, 60.0)
AVA_DISTORTION = (-0.4, 0.2, -0.01, 0.01)
AVA_POINT = np.array([0.2, -0.25, 0.0])  # off the optical axis, where the lens distortion shows


def avif_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="AVIF", quality=95)
    return buffer.getvalue()


def write_ava(root: Path, capture: str = "20230405--1635--AAN112", frames: tuple[int, ...] = (10, 11, 12),
              downscale: int = 8, distort: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One Ava-256 capture: KRT with transposed K/T in millimetres, per-camera zips of AVIFs and segmentations."""
    import cv2

    width, height = AVA_FULL[0] // downscale, AVA_FULL[1] // downscale
    decoder = root / capture / "decoder"
    (decoder / "image").mkdir(parents=True, exist_ok=True)
    (decoder / "segmentation_parts").mkdir(parents=True, exist_ok=True)
    (decoder / "head_pose").mkdir(parents=True, exist_ok=True)
    krt, truth = [], {}
    for i, (camera, yaw) in enumerate(zip(AVA_CAMERAS, AVA_YAWS, strict=True)):
        K_full = np.array([[2500.0 + 100 * i, 0, 1313.0], [0, 2500.0 + 100 * i, 2083.0], [0, 0, 1]])
        w2c = look_at(yaw)
        T = np.zeros((4, 4))
        T[:3, :3] = w2c[:3, :3].T  # stored transposed: T[:4, :3].T is [R|t]
        T[3, :3] = w2c[:3, 3] * 1000.0  # millimetres
        T[3, 3] = 1.0
        dist = np.array(AVA_DISTORTION if distort and i == 0 else (0.0, 0.0, 0.0, 0.0))
        krt.append({"cameraId": camera, "projectionModel": "Pinhole", "distortionModel": "RadialAndTangential",
                    "K": K_full.T.tolist(), "distortion": dist.tolist(), "T": T.tolist()})
        K = K_full.copy()
        K[:2] /= downscale
        # The dataset's own convention: millimetres through the transposed matrices, then the lens distortion.
        R, t_mm = T[:4, :3].T[:, :3], T[:4, :3].T[:, 3]
        rvec, _ = cv2.Rodrigues(R)
        distorted, _ = cv2.projectPoints((AVA_POINT * 1000.0)[None], rvec, t_mm, K, dist)
        truth[camera] = (K, w2c, distorted.reshape(2))
        with zipfile.ZipFile(decoder / "image" / f"cam{camera}.zip", "w") as images, \
                zipfile.ZipFile(decoder / "segmentation_parts" / f"cam{camera}.zip", "w") as segs:
            for frame in frames:
                image, mask = marked_frame(width, height, distorted.reshape(2), frame % 7)
                images.writestr(f"cam{camera}/{frame:06d}.avif", avif_bytes(image))
                labels = np.where(mask > 0, 1, 0).astype(np.uint8)
                labels[-height // 8:, :] = 3  # the chair, at the bottom
                buffer = io.BytesIO()
                Image.fromarray(labels).save(buffer, format="PNG")
                segs.writestr(f"cam{camera}/{frame:06d}.png", buffer.getvalue())
    (decoder / "camera_calibration.json").write_text(json.dumps({"KRT": krt}))
    rows = "\n".join(f"{'EXP_free_face' if f != frames[0] else 'EXP_neutral_peak'},{f}" for f in frames)
    (decoder / "frame_list.csv").write_text(f"seg_id,frame_id\n{rows}\n")
    with zipfile.ZipFile(decoder / "head_pose" / "head_pose.zip", "w") as poses:
        for frame in frames:
            pose = np.hstack([np.eye(3), np.array([[10.0], [-20.0], [1000.0 + frame]])])
            poses.writestr(f"{frame:06d}.txt", "\n".join(" ".join(f"{v:.6f}" for v in r) for r in pose))
    return truth
