"""A synthetic head corpus: heads from the head model rendered from a camera set, with the analytic ground truth a
prior trains on. Deterministic from (seed, index); written in shards with a manifest; generated in parallel
processes with one torch thread each; resumes after a kill.

    CORPUS/
      manifest.json           config, head model + UV-layout hash, per-shard sha256, per-identity distances to
                              every evaluation subject; written last (its hash identifies the corpus in training runs)
      uv_mask.npy             (R_uv, R_uv) texels covered by the UV layout
      shards/shard_{k:05d}.npz     samples [k * shard_size, (k + 1) * shard_size), arrays stacked on axis 0
      shards/shard_{k:05d}.json    the shard's sha256, written after it: a shard without it is redone

Sample ``i`` is expression ``i % expressions_per_identity`` of training identity ``i // expressions_per_identity``.
Arrays of a sample (V views of R x R pixels, UV maps of R_uv x R_uv texels):

    rgb (V, R, R, 3) uint8      premultiplied colour (on black)
    alpha (V, R, R) uint8
    normal (V, R, R, 3) float16 camera-space unit normals (OpenCV axes), alpha-weighted average of the Gaussians'
    depth (V, R, R) float16     expected camera-space depth in metres (0 where alpha is 0)
    world_to_camera (V, 4, 4), K (V, 3, 3) float32
    shape (S,), expression (E,), rotation, translation, jaw, neck (3,), eyes (6,), scale () float32: head parameters
    uv_albedo (R_uv, R_uv, 3) float32           the identity's albedo (no shading) on the neutral surface
    uv_identity_offset (R_uv, R_uv, 3) float32  shape blendshape offsets (metres, model space)
    uv_expression_offset (R_uv, R_uv, 3) float32  expression blendshape offsets (metres, model space)
    identity_index () int64, expression_index () int64
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import CorpusError
from harness.jsonio import atomic_write_bytes, atomic_write_json, mark_harness_made, read_json

CORPUS_VERSION = 1
MANIFEST = "manifest.json"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CorpusConfig:
    identities: int = 16
    expressions_per_identity: int = 4
    resolution: int = 64
    uv_resolution: int = 64
    camera_set: str = "rig"
    num_gaussians: int = 6000
    shard_size: int = 8
    seed: int = 0
    head_model: str = "template"  # or the path of the user's flame2023.pkl
    expression_scale: float = 1.0
    pose_degrees: float = 15.0

    @property
    def count(self) -> int:
        return self.identities * self.expressions_per_identity

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)


@lru_cache(maxsize=2)
def _model(head_model: str) -> Any:
    from harness.heads.loading import load_head_model

    return load_head_model(head_model)


def sample_params(model: Any, identity: Any, config: CorpusConfig, identity_index: int,
                  expression_index: int) -> Any:
    """Expression and pose of one sample: random blendshape weights, head rotation, jaw and gaze."""
    from harness.synth.streams import CORPUS_TAG

    rng = np.random.default_rng([CORPUS_TAG, config.seed, identity_index, expression_index, 1])
    expression = np.clip(rng.normal(0, 0.45, model.num_expression), -1, 1) * config.expression_scale
    if expression_index == 0:
        expression[:] = 0.0  # every identity has a neutral sample
    limit = np.radians(config.pose_degrees)
    rotation = rng.uniform(-1, 1, 3) * limit * np.array([0.5, 1.0, 0.3])
    gaze = np.r_[rng.uniform(-0.2, 0.2, 2), 0.0]
    return model.params(shape=identity.shape, expression=expression, rotation=rotation,
                        jaw=[abs(rng.normal(0, 0.12)), 0.0, 0.0], eyes=np.r_[gaze, gaze])


def _uv_ground_truth(model: Any, identity: Any, params: Any, resolution: int) -> dict[str, np.ndarray]:
    import torch

    from harness.geometry.attributes import uv_attribute_map
    from harness.geometry.uv_raster import uv_raster
    from harness.heads.model import surface_points
    from harness.synth.heads import albedo

    raster = uv_raster(model, resolution)
    covered = raster.mask.reshape(-1).numpy()
    ids = raster.face_ids.reshape(-1).numpy()[covered]
    weights = raster.bary.reshape(-1, 3).numpy()[covered]

    def uv_map(per_vertex: np.ndarray) -> np.ndarray:
        values = torch.as_tensor(per_vertex, dtype=torch.float32)
        return uv_attribute_map(values, model, resolution, raster)[0].permute(1, 2, 0).numpy()

    points = surface_points(torch.as_tensor(model.v_template, dtype=torch.float64), model.faces, ids, weights).numpy()
    colour = np.zeros((resolution * resolution, 3), dtype=np.float32)
    colour[covered] = albedo(model, identity, ids, points)
    return {"uv_albedo": colour.reshape(resolution, resolution, 3),
            "uv_identity_offset": uv_map(np.einsum("vcs,s->vc", model.shapedirs, params.shape)),
            "uv_expression_offset": uv_map(np.einsum("vce,e->vc", model.exprdirs, params.expression))}


def render_sample(config: CorpusConfig, index: int) -> dict[str, np.ndarray]:
    """Every array of sample ``index`` (deterministic from the config's seed and the index)."""
    import torch

    from harness.heads.model import deform
    from harness.render.renderer import camera_tensors, render
    from harness.synth.cameras import camera_set
    from harness.synth.heads import build_head
    from harness.synth.streams import CORPUS_TAG, training_identity

    model = _model(config.head_model)
    identity_index, expression_index = divmod(index, config.expressions_per_identity)
    identity, _ = training_identity(model, config.seed, identity_index)
    head = build_head(model, identity, np.random.default_rng([CORPUS_TAG, config.seed, identity_index, 2]),
                      count=config.num_gaussians)
    params = sample_params(model, identity, config, identity_index, expression_index)
    posed = deform(model, params)
    g = head.place(posed.vertices, torch.as_tensor(model.faces))
    cameras, _ = camera_set(config.camera_set, config.resolution)
    viewmats, Ks, width, height = camera_tensors(cameras)
    from harness.render.cpu import SH_C0, quat_to_rotmat

    # One render of 6 channels per camera: colour (SH degree 0, as the renderer evaluates it) and the camera-space
    # outward normal (each bound Gaussian's third axis is its triangle's normal, and its smallest scale).
    colour = torch.clamp_min(SH_C0 * g["sh"][:, 0] + 0.5, 0.0)
    normals = torch.einsum("cij,nj->cni", viewmats[:, :3, :3], quat_to_rotmat(g["quats"])[:, :, 2])
    features = torch.cat([colour[None].expand(len(cameras), -1, -1), normals], dim=-1)
    with torch.no_grad():
        out = render(g["means"], g["quats"], g["scales"], g["opacities"], features, viewmats, Ks, width, height,
                     backend="cpu")
    alpha = out.alpha[..., 0]
    seen = alpha > 1e-4
    depth = out.expected_depth[..., 0]
    normal_cam = torch.nn.functional.normalize(out.features[..., 3:], dim=-1)
    normal_cam = torch.where(seen[..., None], normal_cam, torch.zeros_like(normal_cam))
    arrays = {
        "rgb": np.round(out.features[..., :3].clamp(0, 1).numpy() * 255).astype(np.uint8),
        "alpha": np.round(alpha.clamp(0, 1).numpy() * 255).astype(np.uint8),
        "normal": normal_cam.numpy().astype(np.float16),
        "depth": depth.numpy().astype(np.float16),
        "world_to_camera": viewmats.numpy().astype(np.float32),
        "K": Ks.numpy().astype(np.float32),
        "identity_index": np.int64(identity_index),
        "expression_index": np.int64(expression_index),
    }
    arrays.update({k: np.asarray(v, dtype=np.float32) for k, v in params.as_arrays().items()})
    arrays.update(_uv_ground_truth(model, identity, params, config.uv_resolution))
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """An ``.npz`` whose bytes depend only on the arrays (fixed member timestamps); returns its sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, member.getvalue(), compresslevel=1)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _shard_paths(root: Path, shard: int) -> tuple[Path, Path]:
    base = root / "shards" / f"shard_{shard:05d}"
    return base.with_suffix(".npz"), base.with_suffix(".json")


def generate_shard(root: Path, config: CorpusConfig, shard: int) -> dict[str, Any]:
    """Render and write one shard (run in a worker process with one torch thread)."""
    import torch

    torch.set_num_threads(1)
    start = shard * config.shard_size
    indices = range(start, min(start + config.shard_size, config.count))
    samples = [render_sample(config, i) for i in indices]
    stacked = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    npz, sidecar = _shard_paths(root, shard)
    sha = write_npz(npz, stacked)
    entry = {"file": f"shards/{npz.name}", "sha256": sha, "first": start, "samples": len(samples)}
    atomic_write_json(sidecar, entry)
    return entry


def _done_shard(root: Path, shard: int) -> dict[str, Any] | None:
    npz, sidecar = _shard_paths(root, shard)
    if not (npz.is_file() and sidecar.is_file()):
        return None
    try:
        entry = read_json(sidecar)
    except (OSError, ValueError):
        return None
    if hashlib.sha256(npz.read_bytes()).hexdigest() != entry.get("sha256"):
        return None
    return entry


def _prepare_folder(root: Path, config: CorpusConfig) -> None:
    """A corpus is only written into an empty folder or one holding a corpus of the same config."""
    from harness.jsonio import check_replaceable

    config_path = root / "corpus_config.json"
    if config_path.exists():
        if read_json(config_path) != {"version": CORPUS_VERSION, **asdict(config)}:
            raise CorpusError(f"{root} holds a corpus of another configuration ({config_path}); use another folder")
        return
    check_replaceable(root)
    mark_harness_made(root, "synthetic corpus")
    atomic_write_json(config_path, {"version": CORPUS_VERSION, **asdict(config)})


def generate_corpus(root: Path, config: CorpusConfig, workers: int = 0,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Generate (or finish generating) the corpus in ``root``; returns the manifest."""
    import os

    from harness.geometry.uv_raster import uv_layout_hash
    from harness.synth.streams import MIN_IDENTITY_DISTANCE, identity_distances, training_identity

    root = Path(root)
    model = _model(config.head_model)
    _prepare_folder(root, config)
    entries: dict[int, dict[str, Any]] = {}
    for shard in range(config.num_shards):
        done = _done_shard(root, shard)
        if done is not None:
            entries[shard] = done
    todo = [s for s in range(config.num_shards) if s not in entries]
    finished = sum(e["samples"] for e in entries.values())
    if progress:
        progress(finished, config.count)
    workers = workers or max(1, min(len(todo), os.cpu_count() or 1))
    if todo and workers == 1:
        for shard in todo:
            entries[shard] = generate_shard(root, config, shard)
            finished += entries[shard]["samples"]
            if progress:
                progress(finished, config.count)
    elif todo:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(generate_shard, root, config, s): s for s in todo}
            for future in as_completed(futures):
                entry = future.result()
                entries[futures[future]] = entry
                finished += entry["samples"]
                if progress:
                    progress(finished, config.count)
    identities = []
    for index in range(config.identities):
        identity, attempt = training_identity(model, config.seed, index)
        distances = identity_distances(identity, model)
        nearest = min(distances, key=distances.get)
        identities.append({"index": index, "attempt": attempt, "nearest_evaluation_subject": nearest,
                           "nearest_distance": distances[nearest], "distances": distances})
    from harness.geometry.uv_raster import uv_raster

    buffer = io.BytesIO()
    np.save(buffer, uv_raster(model, config.uv_resolution).mask.numpy())
    atomic_write_bytes(root / "uv_mask.npy", buffer.getvalue())
    manifest = {
        "version": CORPUS_VERSION, "config": asdict(config), "count": config.count,
        "head_model": model.name, "uv_layout": uv_layout_hash(model),
        "min_identity_distance": MIN_IDENTITY_DISTANCE,
        "shards": [entries[s] for s in range(config.num_shards)],
        "identities": identities,
        "nearest_evaluation_distance": min(i["nearest_distance"] for i in identities),
    }
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


class Corpus:
    """Reads a corpus folder: samples by index, shards cached a few at a time."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise CorpusError(f"{self.root} is not a finished corpus (no {MANIFEST}); run `harness synth` to make "
                              "or finish it")
        self.manifest = read_json(path)
        self.config = CorpusConfig(**self.manifest["config"])
        self._load = lru_cache(maxsize=4)(self._read_shard)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def uv_mask(self) -> np.ndarray:
        return np.load(self.root / "uv_mask.npy")

    def _read_shard(self, shard: int) -> dict[str, np.ndarray]:
        entry = self.manifest["shards"][shard]
        path = self.root / entry["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise CorpusError(f"corpus shard {path} is unreadable ({err}); run `harness synth` again to redo "
                              "it") from None

    def sample(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of a corpus of {len(self)}")
        shard, offset = divmod(index, self.config.shard_size)
        return {k: v[offset] for k, v in self._load(shard).items()}

    def batch(self, indices: list[int]) -> dict[str, np.ndarray]:
        samples = [self.sample(i) for i in indices]
        return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
