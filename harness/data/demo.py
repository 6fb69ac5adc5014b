"""The built-in demo benchmark: procedurally generated multi-view heads, deterministic from a seed.

Heads are unions of ellipsoids (cranium, hair shell, nose, ears, eyes, neck, shoulders) with procedural skin,
hair, brows and a mouth that opens and smiles over time; the head also turns a little. Each frame is ray-cast from
16 cameras placed like NeRSemble's rig (frontal camera 222200037, views out to +-75 degrees of yaw on two rows),
and written into the cache in the NeRSemble v1 on-disk layout, so every demo run goes through the real v1 reader.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.nersemble_v1 import ALPHA_FOLDER, DOWNSCALE, IMAGE_FOLDER, SERIALS, NersembleV1
from harness.imageio import write_mask_png, write_png
from harness.jsonio import atomic_write_json
from harness.paths import harness_home

DEMO_VERSION = 1
SUBJECTS = ("901", "902", "903")
SEQUENCE = "EXP-1-head"
NUM_FRAMES = 6
FULL_WIDTH, FULL_HEIGHT = 400, 560
FOCAL_FULL = 1250.0
CAMERA_DISTANCE = 1.0
SUPERSAMPLE = 1

# (yaw, pitch) in degrees for each serial, in NeRSemble's index order; positive yaw = camera to the head's left.
RIG_ANGLES = (
    (-75, 10), (-60, -10), (-45, 10), (-40, -12), (-25, 10), (-20, -10), (-10, 12), (0, -15),
    (0, 0), (10, 12), (20, -10), (25, 10), (40, -12), (45, 10), (60, -10), (75, 10),
)


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


def rig_cameras() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """World->camera matrices per serial and the shared full-resolution K (world: y up, head faces +z)."""
    target = np.array([0.0, -0.02, 0.0])
    extrinsics = {}
    for serial, (yaw, pitch) in zip(SERIALS, RIG_ANGLES, strict=True):
        yaw_r, pitch_r = np.radians(yaw), np.radians(pitch)
        center = target + CAMERA_DISTANCE * np.array(
            [np.sin(yaw_r) * np.cos(pitch_r), np.sin(pitch_r), np.cos(yaw_r) * np.cos(pitch_r)])
        extrinsics[serial] = look_at_world_to_camera(center, target, np.array([0.0, 1.0, 0.0]))
    K = np.array([[FOCAL_FULL, 0.0, FULL_WIDTH / 2], [0.0, FOCAL_FULL, FULL_HEIGHT / 2], [0.0, 0.0, 1.0]])
    return extrinsics, K


@dataclass(frozen=True)
class Identity:
    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    shirt: np.ndarray
    head_scale: np.ndarray
    nose_scale: float
    hair_volume: float


@dataclass(frozen=True)
class FrameState:
    """Per-frame head parameters, also shipped as the demo's tracking."""

    yaw: float
    pitch: float
    jaw: float
    smile: float
    brow: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


def make_identity(rng: np.random.Generator) -> Identity:
    return Identity(
        skin=np.array([0.80, 0.60, 0.50]) * rng.uniform(0.6, 1.1) + rng.uniform(-0.05, 0.05, 3),
        hair=rng.uniform(0.05, 0.55) * np.array([1.0, 0.8, 0.6]) + rng.uniform(0, 0.1, 3),
        iris=rng.uniform(0.1, 0.6, 3),
        shirt=rng.uniform(0.1, 0.9, 3),
        head_scale=rng.uniform(0.92, 1.08, 3),
        nose_scale=float(rng.uniform(0.8, 1.3)),
        hair_volume=float(rng.uniform(0.0, 1.0)),
    )


def frame_state(frame: int) -> FrameState:
    phase = 2 * np.pi * frame / NUM_FRAMES
    return FrameState(
        yaw=12.0 * np.sin(phase), pitch=5.0 * np.sin(2 * phase), jaw=0.5 * (1 - np.cos(phase)),
        smile=0.5 * (1 + np.sin(phase + 1.0)), brow=0.5 * (1 + np.cos(2 * phase)),
    )


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return ry @ rx


def _ellipsoid_hits(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Near and far ray parameters of ellipsoid hits (inf where missed)."""
    oc, dd = (o - c) / r, d / r
    a = np.einsum("ij,ij->i", dd, dd)
    b = np.einsum("ij,ij->i", oc, dd)
    cc = np.einsum("ij,ij->i", oc, oc) - 1.0
    disc = b * b - a * cc
    hit = disc > 0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t0 = np.where(hit, (-b - sq) / a, np.inf)
    t1 = np.where(hit, (-b + sq) / a, np.inf)
    return np.where(t0 > 0, t0, np.inf), np.where(t1 > 0, t1, np.inf)


def render_head(identity: Identity, state: FrameState, w2c: np.ndarray, K: np.ndarray, width: int,
                height: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one head; returns (RGB HxWx3 over a studio background, alpha HxW), both float32."""
    ss = SUPERSAMPLE
    u, v = np.meshgrid((np.arange(width * ss) + 0.5) / ss, (np.arange(height * ss) + 0.5) / ss)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    dirs_cam = pix @ np.linalg.inv(K).T
    R, t = w2c[:3, :3], w2c[:3, 3]
    head_rot = _rotation(state.yaw, state.pitch)
    # Work in the head's frame: rays are rotated by the inverse head pose.
    origin = head_rot.T @ (-R.T @ t)
    dirs = dirs_cam @ R @ head_rot
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    o = np.broadcast_to(origin, dirs.shape)

    s = identity.head_scale
    prims = {
        "head": (np.array([0, 0.02, 0]), np.array([0.075, 0.105, 0.095]) * s),
        "hair": (np.array([0, 0.03, -0.012]), np.array([0.082, 0.116, 0.104]) * s * (1 + 0.04 * identity.hair_volume)),
        "nose": (np.array([0, 0.0, 0.086 * s[2]]), np.array([0.014, 0.028, 0.022]) * identity.nose_scale),
        "ear_l": (np.array([0.074 * s[0], 0.015, -0.005]), np.array([0.011, 0.028, 0.018])),
        "ear_r": (np.array([-0.074 * s[0], 0.015, -0.005]), np.array([0.011, 0.028, 0.018])),
        "eye_l": (np.array([0.031, 0.035, 0.077 * s[2]]), np.array([0.013, 0.013, 0.013])),
        "eye_r": (np.array([-0.031, 0.035, 0.077 * s[2]]), np.array([0.013, 0.013, 0.013])),
        "neck": (np.array([0, -0.13, -0.015]), np.array([0.048, 0.09, 0.05])),
        "torso": (np.array([0, -0.27, -0.02]), np.array([0.19, 0.08, 0.11])),
    }
    names = list(prims)
    ts = []
    for name in names:
        c, r = prims[name]
        t0, t1 = _ellipsoid_hits(o, dirs, c, r)
        if name == "hair":
            cut = 0.045 - 0.03 * identity.hair_volume

            def keep(tt: np.ndarray, c: np.ndarray = c, cut: float = cut) -> np.ndarray:
                p = o + np.where(np.isfinite(tt), tt, 0)[:, None] * dirs
                return np.isfinite(tt) & ((p[:, 1] > cut) | ((p[:, 2] < -0.03) & (p[:, 1] > -0.07)))

            t0 = np.where(keep(t0), t0, np.where(keep(t1), t1, np.inf))
        ts.append(t0)
    tstack = np.stack(ts)
    which = np.argmin(tstack, axis=0)
    tmin = tstack[which, np.arange(dirs.shape[0])]
    hit = np.isfinite(tmin)
    p = o + np.where(hit, tmin, 0)[:, None] * dirs

    normals = np.zeros_like(p)
    colour = np.zeros_like(p)
    for i, name in enumerate(names):
        sel = hit & (which == i)
        if not sel.any():
            continue
        c, r = prims[name]
        n = (p[sel] - c) / (r * r)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        normals[sel] = n
        colour[sel] = _surface_colour(name, p[sel], n, identity, state)

    light = head_rot.T @ np.array([0.3, 0.6, 0.75])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0, 1)
    rgb_fg = np.clip(colour * shade[:, None], 0, 1)
    bg = _background(v.ravel() / (height * ss))
    alpha = hit.astype(np.float64)
    rgb = rgb_fg * alpha[:, None] + bg * (1 - alpha[:, None])
    rgb = rgb.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    alpha = alpha.reshape(height, ss, width, ss).mean(axis=(1, 3))
    return rgb.astype(np.float32), alpha.astype(np.float32)


def _background(y: np.ndarray) -> np.ndarray:
    grey = 0.62 - 0.25 * y
    return np.stack([grey, grey * 0.98, grey * 1.03], axis=1)


def _surface_colour(name: str, p: np.ndarray, n: np.ndarray, ident: Identity, st: FrameState) -> np.ndarray:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if name == "hair":
        strands = 0.85 + 0.15 * np.sin(300 * x + 80 * z) * np.sin(40 * y)
        return ident.hair[None, :] * strands[:, None]
    if name == "torso":
        return np.broadcast_to(ident.shirt, p.shape).copy()
    if name.startswith("eye"):
        gaze = np.array([0.25 * np.sin(st.yaw / 6.0), 0.0, 1.0])
        gaze /= np.linalg.norm(gaze)
        facing = n @ gaze
        col = np.where(facing[:, None] > 0.8, ident.iris[None, :], np.array([0.93, 0.93, 0.9])[None, :])
        return np.where(facing[:, None] > 0.94, np.array([0.03, 0.03, 0.03])[None, :], col)
    pores = 1.0 + 0.04 * np.sin(220 * x) * np.sin(260 * y) * np.sin(180 * z)
    col = ident.skin[None, :] * pores[:, None]
    if name == "head":
        front = z > 0.03
        mouth_y, half_w = -0.045, 0.022 * (1 + 0.35 * st.smile)
        curve = 0.25 * st.smile * (x / max(half_w, 1e-6)) ** 2 * 0.02
        top, bottom = mouth_y + 0.004 + curve, mouth_y - 0.004 - 0.022 * st.jaw + curve
        lips = front & (np.abs(x) < half_w + 0.004) & (y < top + 0.004) & (y > bottom - 0.004)
        inside = front & (np.abs(x) < half_w) & (y < top) & (y > bottom)
        col = np.where(lips[:, None], np.array([0.72, 0.33, 0.33])[None, :], col)
        col = np.where(inside[:, None], np.array([0.25, 0.05, 0.07])[None, :], col)
        brow_lo = 0.058 + 0.012 * st.brow
        brows = front & (np.abs(x) > 0.012) & (np.abs(x) < 0.048) & (y > brow_lo) & (y < brow_lo + 0.007)
        col = np.where(brows[:, None], ident.hair[None, :] * 0.7, col)
    return col


def _render_frame(tmp: Path, seed: int, index: int, subject: str, frame: int) -> None:
    extrinsics, K = rig_cameras()
    width, height = FULL_WIDTH // DOWNSCALE, FULL_HEIGHT // DOWNSCALE
    K_loaded = K.copy()
    K_loaded[:2] /= DOWNSCALE
    identity = make_identity(np.random.default_rng([seed, index]))
    state = frame_state(frame)
    frame_dir = tmp / subject / "sequences" / SEQUENCE / f"frame_{frame:05d}"
    for serial in SERIALS:
        rgb, alpha = render_head(identity, state, extrinsics[serial], K_loaded, width, height)
        write_png(frame_dir / IMAGE_FOLDER / f"cam_{serial}.png", rgb)
        write_mask_png(frame_dir / ALPHA_FOLDER / f"cam_{serial}.png", alpha)


def generate(root: Path, seed: int = 0) -> None:
    """Write the demo dataset into ``root`` (NeRSemble v1 layout), atomically: all of it or nothing."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        extrinsics, K = rig_cameras()
        for subject in SUBJECTS:
            atomic_write_json(tmp / subject / "camera_params.json", {
                "world_2_cam": {s: m.tolist() for s, m in extrinsics.items()},
                "intrinsics": K.tolist(),
            })
            atomic_write_json(tmp / subject / "annotations" / SEQUENCE / "demo_tracking.json",
                              {str(f): frame_state(f).as_dict() for f in range(NUM_FRAMES)})
        jobs = [(tmp, seed, index, subject, frame) for index, subject in enumerate(SUBJECTS)
                for frame in range(NUM_FRAMES)]
        workers = max(1, min(len(jobs), os.cpu_count() or 1))
        if workers == 1:
            for job in jobs:
                _render_frame(*job)
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_render_frame, *zip(*jobs, strict=True)))
        atomic_write_json(tmp / "DEMO.json", {"version": DEMO_VERSION, "seed": seed, "subjects": list(SUBJECTS),
                                              "sequence": SEQUENCE, "frames": NUM_FRAMES})
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def demo_root() -> Path:
    return harness_home() / "data" / f"demo-v{DEMO_VERSION}"


def is_complete(root: Path) -> bool:
    marker = root / "DEMO.json"
    if not marker.exists():
        return False
    return json.loads(marker.read_text()).get("version") == DEMO_VERSION


class DemoDataset(NersembleV1):
    """The demo, generated on first use, then read through the NeRSemble v1 reader."""

    @classmethod
    def open(cls, root: Path | None) -> DemoDataset:
        root = Path(root) if root is not None else demo_root()
        if not is_complete(root):
            generate(root)
        return cls(root)
