"""The built-in in-the-wild demo: demo heads photographed at random poses over textured backgrounds.

Written on first use into ``$HARNESS_HOME/data/demo-wild-v{N}`` as a plain photo folder (jpg, png and webp, as a
user's folder would hold) with a ``boxes.json`` of face boxes taken from the projected head (so crops do not need
the face detector's weights), then read back through the in-the-wild reader like any user's photos.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.api.types import Camera
from harness.data.demo import subject_identity
from harness.data.errors import DatasetError
from harness.data.rig import look_at_world_to_camera
from harness.data.wild import BOXES_FILE, WildPhotos
from harness.heads.model import deform
from harness.heads.template import head_template
from harness.imageio import to_uint8
from harness.jsonio import RefusedFolderError, atomic_folder, atomic_write_json
from harness.paths import harness_home
from harness.synth.heads import build_head, frame_params, render_posed

DEMO_WILD_VERSION = 1
PHOTOS = (("wild-901", 0, ".jpg"), ("wild-902", 1, ".png"), ("wild-903", 2, ".webp"), ("wild-904", 3, ".jpg"))
WIDTH, HEIGHT = 360, 480


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Coloured waves and blotches: a busy backdrop unlike the studio's."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = rng.uniform(0.2, 0.9, 3)
    image = np.empty((height, width, 3))
    for c in range(3):
        f1, f2, phase = rng.uniform(4, 14), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
        image[..., c] = base[c] + 0.18 * np.sin(f1 * x * 2 * np.pi + phase) * np.cos(f2 * y * 2 * np.pi)
    image += rng.normal(0, 0.03, image.shape)
    return np.clip(image, 0, 1)


def _photo(seed: int, index: int) -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng([seed, 7, index])
    model = head_template()
    identity = subject_identity(seed, index)
    head = build_head(model, identity, np.random.default_rng([seed, index, 1]))
    params = frame_params(model, identity, int(rng.integers(0, 6)), 6)
    params = params.replace(rotation=np.radians([rng.uniform(-8, 8), rng.uniform(-25, 25), rng.uniform(-6, 6)]))
    distance, focal = rng.uniform(0.9, 1.2), rng.uniform(900, 1200)
    center = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.03, 0.05), distance])
    w2c = look_at_world_to_camera(center, np.array([0.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    K = np.array([[focal, 0, WIDTH / 2 + rng.uniform(-20, 20)], [0, focal, HEIGHT / 2 + rng.uniform(-30, 10)],
                  [0, 0, 1]])
    camera = Camera(w2c, K, WIDTH, HEIGHT)
    colour, alpha = render_posed(model, head, params, [camera])
    background = textured_background(rng, HEIGHT, WIDTH)
    image = colour[0] + (1 - alpha[0][..., None]) * background
    face = deform(model, params).vertices.numpy()[np.asarray(model.regions["face"])]
    uv, _ = camera.project(face)
    box = [float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())]
    return np.clip(image, 0, 1), box


def generate(root: Path, seed: int = 0) -> None:
    try:
        with atomic_folder(root, f"demo-wild photos v{DEMO_WILD_VERSION}") as tmp:
            boxes = {}
            # One torch thread: these small renders ran several times slower with two threads on a busy 2-core
            # machine (measured 2.0 s against 7.6 s for the 4 photos), and worker processes cost more to start than
            # they save; the caller's thread count is put back.
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                rendered = [_photo(seed, index) for _, index, _ in PHOTOS]
            finally:
                torch.set_num_threads(threads)
            for (name, _, suffix), (image, box) in zip(PHOTOS, rendered, strict=True):
                Image.fromarray(to_uint8(image)).save(tmp / f"{name}{suffix}", quality=92)
                boxes[f"{name}{suffix}"] = box
            (tmp / BOXES_FILE).write_text(json.dumps(boxes, indent=1), encoding="utf-8")
            atomic_write_json(tmp / "DEMO_WILD.json", {"version": DEMO_WILD_VERSION, "seed": seed})
    except RefusedFolderError as err:
        raise DatasetError(f"cannot generate the demo-wild photos: {err}") from None


def is_complete(root: Path) -> bool:
    marker = root / "DEMO_WILD.json"
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("version") == DEMO_WILD_VERSION
    except (OSError, ValueError):
        return False


def demo_wild_root() -> Path:
    return harness_home() / "data" / f"demo-wild-v{DEMO_WILD_VERSION}"


class DemoWild(WildPhotos):
    default_root = staticmethod(lambda: demo_wild_root())

    @classmethod
    def generate_if_needed(cls, root: Path | None) -> None:
        root = Path(root) if root is not None else demo_wild_root()
        if not is_complete(root):
            generate(root)

    @classmethod
    def open(cls, root: Path | None) -> DemoWild:
        """Read the photos; never writes (``generate_if_needed`` does)."""
        root = Path(root) if root is not None else demo_wild_root()
        if not is_complete(root):
            raise DatasetError(f"{root} holds no generated demo-wild photos (no DEMO_WILD.json of version "
                               f"{DEMO_WILD_VERSION}); `harness run --dataset demo-wild` generates them")
        return cls(root)
