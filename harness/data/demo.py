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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.types import Camera
from harness.data.errors import DatasetError
from harness.data.nersemble_v1 import ALPHA_FOLDER, DOWNSCALE, IMAGE_FOLDER, SERIALS, NersembleV1
from harness.data.rig import look_at_world_to_camera
from harness.heads.model import HeadModel, HeadParams
from harness.heads.template import head_template
from harness.imageio import write_mask_png, write_png
from harness.jsonio import RefusedFolderError, atomic_folder, atomic_write_json
from harness.paths import harness_home
from harness.synth.heads import NUM_GAUSSIANS, Identity, build_head, frame_params, render_posed
from harness.synth.streams import demo_identity

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
    return demo_identity(head_template(), seed, index)


def demo_frame_params(model: HeadModel, identity: Identity, frame: int) -> HeadParams:
    return frame_params(model, identity, frame, NUM_FRAMES)


@dataclass(frozen=True)
class DemoSpec:
    """One generated benchmark on the template: its subjects (from their evaluation stream), frames and marker."""

    name: str
    version: int
    subjects: tuple[str, ...]
    num_frames: int
    identity: Callable[[int, int], Identity]  # (seed, index) -> identity
    params: Callable[[HeadModel, Identity, int], HeadParams]  # (model, identity, frame) -> head parameters
    num_gaussians: int = NUM_GAUSSIANS
    marker: str = "DEMO.json"

    def root(self) -> Path:
        return harness_home() / "data" / f"{self.name}-v{self.version}"


DEMO = DemoSpec("demo", DEMO_VERSION, SUBJECTS, NUM_FRAMES, subject_identity, demo_frame_params)


def tracking_document(seed: int, index: int, spec: DemoSpec = DEMO) -> dict:
    model = head_template()
    identity = spec.identity(seed, index)
    return {"model": model.name, "convention": TRACKING_CONVENTION,
            "frames": {str(f): spec.params(model, identity, f).to_dict() for f in range(spec.num_frames)}}


def _render_frame(tmp: Path, seed: int, index: int, subject: str, frame: int, spec: DemoSpec = DEMO) -> None:
    torch.set_num_threads(1)
    extrinsics, K = rig_cameras()
    width, height = FULL_WIDTH // DOWNSCALE, FULL_HEIGHT // DOWNSCALE
    cameras = [Camera(extrinsics[s], K, FULL_WIDTH, FULL_HEIGHT).resized(width, height) for s in SERIALS]
    model = head_template()
    identity = spec.identity(seed, index)
    head = build_head(model, identity, np.random.default_rng([seed, index, 1]), count=spec.num_gaussians)
    colour, alpha = render_posed(model, head, spec.params(model, identity, frame), cameras)
    background = _background(height, width)
    frame_dir = tmp / subject / "sequences" / SEQUENCE / f"frame_{frame:05d}"
    for serial, premultiplied, a in zip(SERIALS, colour, alpha, strict=True):
        rgb = np.clip(premultiplied + (1 - a[..., None]) * background, 0, 1)
        write_png(frame_dir / IMAGE_FOLDER / f"cam_{serial}.png", rgb)
        write_mask_png(frame_dir / ALPHA_FOLDER / f"cam_{serial}.png", a)


def generate(root: Path, seed: int = 0, spec: DemoSpec = DEMO) -> None:
    """Write a generated benchmark into ``root`` (NeRSemble v1 layout), atomically: all of it or nothing."""
    try:
        with atomic_folder(Path(root), f"{spec.name} dataset v{spec.version}") as tmp:
            _write(tmp, seed, spec)
    except RefusedFolderError as err:
        raise DatasetError(f"cannot generate the {spec.name} dataset: {err}") from None


def _write(tmp: Path, seed: int, spec: DemoSpec) -> None:
    extrinsics, K = rig_cameras()
    for index, subject in enumerate(spec.subjects):
        atomic_write_json(tmp / subject / "camera_params.json", {
            "world_2_cam": {s: m.tolist() for s, m in extrinsics.items()},
            "intrinsics": K.tolist(),
        })
        atomic_write_json(tmp / subject / "annotations" / SEQUENCE / TRACKING_FILE,
                          tracking_document(seed, index, spec))
    jobs = [(tmp, seed, index, subject, frame, spec) for index, subject in enumerate(spec.subjects)
            for frame in range(spec.num_frames)]
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    if workers == 1:
        for job in jobs:
            _render_frame(*job)
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_render_frame, *zip(*jobs, strict=True)))
    atomic_write_json(tmp / spec.marker, {"version": spec.version, "seed": seed, "subjects": list(spec.subjects),
                                          "sequence": SEQUENCE, "frames": spec.num_frames})


def demo_root() -> Path:
    return DEMO.root()


def is_complete(root: Path, spec: DemoSpec = DEMO) -> bool:
    marker = root / spec.marker
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("version") == spec.version
    except (OSError, ValueError):
        return False


class DemoDataset(NersembleV1):
    """The demo, generated on first use, then read through the NeRSemble v1 reader."""

    spec: DemoSpec = DEMO

    @classmethod
    def default_root(cls) -> Path:
        return cls.spec.root()

    @classmethod
    def generate_if_needed(cls, root: Path | None) -> None:
        """Write the dataset into ``root`` (default: the cache) unless it is there; refuses a folder it did not
        make."""
        root = Path(root) if root is not None else cls.spec.root()
        if not is_complete(root, cls.spec):
            generate(root, spec=cls.spec)

    def background_plate_for(self, ref: Any) -> np.ndarray:
        """The studio backdrop every demo frame was composited on (the empty-studio plate), at the view's size."""
        camera = self.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
        return _background(camera.height, camera.width).astype(np.float32)

    @classmethod
    def open(cls, root: Path | None) -> DemoDataset:
        """Read the dataset; never writes (``generate_if_needed`` does)."""
        root = Path(root) if root is not None else cls.spec.root()
        if not is_complete(root, cls.spec):
            raise DatasetError(f"{root} holds no generated {cls.spec.name} (no {root / cls.spec.marker} of version "
                               f"{cls.spec.version}); `harness run --dataset {cls.spec.name}` generates it")
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
