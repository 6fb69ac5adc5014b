"""The built-in demo benchmark: heads made from the open head template, deterministic from a seed.

Each subject is the template with its own shape coefficients and procedural albedo, covered by Gaussians bound to
the mesh (``demo_heads``). Each frame poses it (the head turns a little, the jaw opens, the mouth smiles, the brows
rise) and renders it with the harness's own Gaussian renderer from 16 cameras placed like NeRSemble's rig (frontal
camera 222200037, views out to +-75 degrees of yaw on two rows) over a studio backdrop. It is written into the
cache in the NeRSemble v1 on-disk layout, so every demo run goes through the real v1 reader, and the per-frame head
parameters are shipped next to it as its tracking, so animatable methods can be driven on it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.types import Camera
from harness.data.errors import DatasetError
from harness.data.nersemble_v1 import ALPHA_FOLDER, DOWNSCALE, IMAGE_FOLDER, SERIALS, NersembleV1
from harness.data.rig import look_at_world_to_camera
from harness.heads.model import HeadParams
from harness.heads.template import head_template
from harness.imageio import write_mask_png, write_png
from harness.jsonio import RefusedFolderError, atomic_folder, atomic_write_json
from harness.paths import harness_home
from harness.synth.heads import Identity, build_head, frame_params, make_identity, render_posed

DEMO_VERSION = 2
SUBJECTS = ("901", "902", "903")
SEQUENCE = "EXP-1-head"
NUM_FRAMES = 6
FULL_WIDTH, FULL_HEIGHT = 400, 560
FOCAL_FULL = 1250.0
CAMERA_DISTANCE = 1.0
TRACKING_FILE = "demo_tracking.json"
TRACKING_CONVENTION = ("NeRSemble FLAME tracking: skinning with zero root rotation, then x_world = scale * R x + t, "
                       "R from intrinsic Euler XYZ 'rotation' (radians); jaw, neck, eyes axis-angle")

# (yaw, pitch) in degrees for each serial, in NeRSemble's index order; positive yaw = camera to the head's left.
RIG_ANGLES = (
    (-75, 10), (-60, -10), (-45, 10), (-40, -12), (-25, 10), (-20, -10), (-10, 12), (0, -15),
    (0, 0), (10, 12), (20, -10), (25, 10), (40, -12), (45, 10), (60, -10), (75, 10),
)


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


def _background(height: int, width: int) -> np.ndarray:
    """A studio backdrop: grey, darker towards the bottom."""
    y = (np.arange(height) + 0.5) / height
    grey = 0.62 - 0.25 * y
    column = np.stack([grey, grey * 0.98, grey * 1.03], axis=1)
    return np.broadcast_to(column[:, None, :], (height, width, 3))


def subject_identity(seed: int, index: int) -> Identity:
    return make_identity(np.random.default_rng([seed, index]), head_template())


def tracking_document(seed: int, index: int) -> dict:
    model = head_template()
    identity = subject_identity(seed, index)
    return {"model": model.name, "convention": TRACKING_CONVENTION,
            "frames": {str(f): frame_params(model, identity, f, NUM_FRAMES).to_dict() for f in range(NUM_FRAMES)}}


def _render_frame(tmp: Path, seed: int, index: int, subject: str, frame: int) -> None:
    torch.set_num_threads(1)
    extrinsics, K = rig_cameras()
    width, height = FULL_WIDTH // DOWNSCALE, FULL_HEIGHT // DOWNSCALE
    cameras = [Camera(extrinsics[s], K, FULL_WIDTH, FULL_HEIGHT).resized(width, height) for s in SERIALS]
    model = head_template()
    identity = subject_identity(seed, index)
    head = build_head(model, identity, np.random.default_rng([seed, index, 1]))
    colour, alpha = render_posed(model, head, frame_params(model, identity, frame, NUM_FRAMES), cameras)
    background = _background(height, width)
    frame_dir = tmp / subject / "sequences" / SEQUENCE / f"frame_{frame:05d}"
    for serial, premultiplied, a in zip(SERIALS, colour, alpha, strict=True):
        rgb = np.clip(premultiplied + (1 - a[..., None]) * background, 0, 1)
        write_png(frame_dir / IMAGE_FOLDER / f"cam_{serial}.png", rgb)
        write_mask_png(frame_dir / ALPHA_FOLDER / f"cam_{serial}.png", a)


def generate(root: Path, seed: int = 0) -> None:
    """Write the demo dataset into ``root`` (NeRSemble v1 layout), atomically: all of it or nothing."""
    try:
        with atomic_folder(Path(root), f"demo dataset v{DEMO_VERSION}") as tmp:
            _write(tmp, seed)
    except RefusedFolderError as err:
        raise DatasetError(f"cannot generate the demo: {err}") from None


def _write(tmp: Path, seed: int) -> None:
    extrinsics, K = rig_cameras()
    for subject in SUBJECTS:
        atomic_write_json(tmp / subject / "camera_params.json", {
            "world_2_cam": {s: m.tolist() for s, m in extrinsics.items()},
            "intrinsics": K.tolist(),
        })
        atomic_write_json(tmp / subject / "annotations" / SEQUENCE / TRACKING_FILE,
                          tracking_document(seed, SUBJECTS.index(subject)))
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


def demo_root() -> Path:
    return harness_home() / "data" / f"demo-v{DEMO_VERSION}"


def is_complete(root: Path) -> bool:
    marker = root / "DEMO.json"
    if not marker.exists():
        return False
    return json.loads(marker.read_text()).get("version") == DEMO_VERSION


class DemoDataset(NersembleV1):
    """The demo, generated on first use, then read through the NeRSemble v1 reader."""

    default_root = staticmethod(lambda: demo_root())

    @classmethod
    def generate_if_needed(cls, root: Path | None) -> None:
        """Write the demo into ``root`` (default: the cache) unless it is there; refuses a folder it did not make."""
        root = Path(root) if root is not None else demo_root()
        if not is_complete(root):
            generate(root)

    @classmethod
    def open(cls, root: Path | None) -> DemoDataset:
        """Read the demo; never writes (``generate_if_needed`` does)."""
        root = Path(root) if root is not None else demo_root()
        if not is_complete(root):
            raise DatasetError(f"{root} holds no generated demo (no {root / 'DEMO.json'} of version {DEMO_VERSION}); "
                               "`harness run --dataset demo` generates it")
        return cls(root)

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._tracking_document = lru_cache(maxsize=None)(self._read_tracking)

    def tracking(self, subject: str, sequence: str, frame: int) -> dict[str, Any] | None:
        """The head parameters of one frame (``HeadParams.to_dict`` plus the head model's name)."""
        path = self.subject_dir(subject) / "annotations" / sequence / TRACKING_FILE
        document = self._tracking_document(path)
        if str(frame) not in document["frames"]:
            raise DatasetError(f"{path}: no tracking for frame {frame}")
        return {"model": document["model"], **document["frames"][str(frame)]}

    @staticmethod
    def _read_tracking(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(f"missing tracking file {path}") from None


def head_params(tracking: dict[str, Any]) -> HeadParams:
    """Demo tracking as ``HeadParams`` of the open head template."""
    model = head_template()
    if tracking.get("model") != model.name:
        raise DatasetError(f"tracking is for head model {tracking.get('model')!r}, expected {model.name!r}")
    return HeadParams.from_dict(tracking, model)
