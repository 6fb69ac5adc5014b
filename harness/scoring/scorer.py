"""The one scorer: prediction files + ground truth -> the long metrics table (Parquet).

It reads only the run folder and the dataset, never the method, so predictions made by any tool in the same
layout are scored exactly as ``harness run`` scores its own. Per-unit results are cached next to the run and
reused while the prediction files' hashes, the metric list and the protocol are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.api.method import MetricsUnavailableError, MissingWeightsError
from harness.api.specs import MetricSpec, load_target
from harness.api.types import EvalUnit, ViewRef
from harness.data.adapter import DatasetAdapter
from harness.data.errors import DatasetError, ProtocolError
from harness.data.protocol import Protocol, run_protocol
from harness.data.resolve import open_dataset
from harness.imageio import ImageReadError, read_image
from harness.jsonio import atomic_write_json, naming, read_json, sha256_bytes, stable_hash
from harness.plugins.registry import Registry
from harness.safepath import UnsafePathError
from harness.scoring.codec import CodecError, CodecRoundTrip, protocol_codec, round_trip_views
from harness.scoring.precision import DEFAULT_PRECISION, check_precision, run_mode, with_precision
from harness.scoring.precision import identity as precision_identity
from harness.scoring.values import Features, MetricValues, ReferenceCache, ReferenceFeatureMetric
from harness.store import RunStore

SCORER_VERSION = 6  # 6: SSIM's blur on CPU by scipy.ndimage (last-bit changes); metric precision modes
# 5: RGBA predictions' full variant composited over the background plate (or undefined)
# 4: SSIM in float64, PSNR capped, empty ground-truth alpha undefined, ranges enforced
# 3: per-image float64 reductions of PSNR and SSIM, independent of the batch
# Measured (benchmarks/bench_metrics.py): on CPU, one pair at a time is fastest for the pixel metrics and LPIPS at
# 512x512 (large batches spill the caches and fault in fresh memory); on CUDA batches keep the device busy.
BATCH_SIZE = {"cpu": 1, "cuda": 16}
# A masked pair whose ground-truth alpha covers less than this share of the image has no masked scores: an (almost)
# empty mask would make every masked metric a comparison of two background fills (SSIM 1, LPIPS 0).
MIN_ALPHA_COVERAGE = 1e-3
# Values this far outside a metric's declared range are rounding (e.g. DreamSim's 1 - cos at -1e-15) and are clamped;
# anything further out is a defect of the metric and is recorded as undefined with the value in the note.
RANGE_TOLERANCE = 1e-6
SCORED_LIBRARIES = ("torch", "torchvision", "numpy", "lpips", "dreamsim", "insightface", "onnxruntime", "pillow")
KEY_COLUMNS = ["unit", "subject", "sequence", "frame", "camera", "metric", "variant"]

METRIC_SCHEMA = {
    "run": pl.String, "method": pl.String, "dataset": pl.String, "protocol": pl.String,
    "protocol_version": pl.Int64, "unit": pl.String, "kind": pl.String, "subject": pl.String,
    "sequence": pl.String, "camera": pl.String, "frame": pl.Int64, "metric": pl.String, "variant": pl.String,
    "value": pl.Float64, "status": pl.String, "note": pl.String,
}
# status: ok (a value), undefined (the metric has no value for this pair; reason in note), missing (no usable
# prediction), skipped (the method's capabilities exclude the unit, e.g. reenactment for a static method).
IMAGE_SCHEMA = {
    "unit": pl.String, "subject": pl.String, "sequence": pl.String, "camera": pl.String, "frame": pl.Int64,
    "prediction": pl.String, "prediction_sha256": pl.String, "ground_truth_sha256": pl.String,
    "masked_available": pl.Boolean,
}


@dataclass
class ScoreResult:
    metrics: pl.DataFrame
    images: pl.DataFrame
    errors: list[dict[str, Any]] = field(default_factory=list)
    missing_units: list[str] = field(default_factory=list)
    metric_seconds: float = 0.0
    expected_images: int = 0
    unavailable_metrics: list[dict[str, str]] = field(default_factory=list)
    metric_identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # weights sha256 per metric
    metric_precision: str = DEFAULT_PRECISION  # the run's mode (harness.scoring.precision.run_mode)


@dataclass
class _Pair:
    ref: ViewRef
    prediction: np.ndarray
    ground_truth: np.ndarray
    alpha: np.ndarray | None
    pred_file: str
    pred_sha: str
    gt_sha: str
    alpha_note: str | None = None
    full_prediction: np.ndarray | None = None  # what the full variant compares (None: full is undefined)
    full_note: str | None = None  # why the full variant is undefined for this pair


class ScoringError(RuntimeError):
    pass


def ground_truth_hash(image: np.ndarray, alpha: np.ndarray | None) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes())
    if alpha is not None:
        digest.update(np.ascontiguousarray(alpha, dtype=np.float32).tobytes())
    return digest.hexdigest()


def load_metrics(registry: Registry, names: Sequence[str] | None, device: str, strict: bool = False) -> tuple[
        list[tuple[MetricSpec, Any]], list[dict[str, str]]]:
    """The metrics to compute, and those that cannot run here (missing weights) with the reason and the fix.

    With ``strict`` any metric that cannot run is an error (``MetricsUnavailableError`` listing all of them).
    """
    if names:
        specs = [registry.metric(n) for n in names]
    else:
        specs = [s for s in registry.specs["metrics"].values() if s.default and s.kind == "pair"]
    loaded, unavailable = [], []
    for spec in sorted(specs, key=lambda s: s.name):
        try:
            loaded.append((spec, load_target(spec.target)(device=device)))
        except MissingWeightsError as err:
            unavailable.append({"metric": spec.name, "reason": str(err)})
        except Exception as err:  # present but unreadable weights (truncated .pth, broken ONNX): that metric only
            unavailable.append({"metric": spec.name, "reason": _unloadable(registry, spec, err)})
    if strict and unavailable:
        raise MetricsUnavailableError("\n".join(f"metric {u['metric']}: {u['reason']}" for u in unavailable))
    return loaded, unavailable


def metric_identities(registry: Registry, metrics: list[tuple[MetricSpec, Any]]) -> dict[str, dict[str, Any]]:
    """Everything a metric's values depend on besides the images: its target, settings, the sha256 of every weight
    file it loaded, the precision it ran in (with its tested tolerance when reduced), and the versions of the
    libraries that compute it. Part of every cached unit's key and recorded in ``run.json``."""
    from harness.weights import checksums

    return {spec.name: {"target": spec.target, "settings": spec.settings,
                        "weights": {rel: sha for w in spec.weights
                                    if (source := registry.specs["weights"].get(w)) is not None
                                    for rel, sha in checksums(source).items()},
                        **precision_identity(metric)}
            for spec, metric in metrics}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in SCORED_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _unloadable(registry: Registry, spec: MetricSpec, err: Exception) -> str:
    """Why a metric whose weight files are present could not load them: the file (the one the error names, else
    every file of its weight sources) and the fix."""
    from harness.weights import weights_dir

    root = weights_dir()
    files = [root / f.relpath for w in spec.weights if (source := registry.specs["weights"].get(w)) is not None
             for f in source.files]
    text = str(err)
    named = [p for p in files if str(p) in text or p.name in text] or files
    fix = " or ".join(f"`harness weights fetch {w}`" for w in spec.weights) or "reinstall its weights"
    where = (f"weight file{'s' if len(named) > 1 else ''} {', '.join(str(p) for p in named)}" if named
             else "its weights")
    return (f"{where} is corrupt or not the expected file: loading it failed with "
            f"{type(err).__name__}: {' '.join(text.split())[:300]}. Fix: {fix} (replaces it with a verified copy)")


def _load_prediction(store: RunStore, unit: EvalUnit, ref: ViewRef, gt_shape: tuple[int, ...]) -> tuple[
        np.ndarray, str, str, np.ndarray | None]:
    try:
        path = store.find_prediction(unit.name, ref)
    except UnsafePathError as err:
        raise ScoringError(f"unit {unit.name}: {err}; refused") from None
    where = f"unit {unit.name}: prediction {path}"
    if path.is_dir():
        raise ScoringError(f"{where} is a folder, not an image file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ScoringError(f"{where} is missing") from None
    except OSError as err:
        raise ScoringError(f"{where} cannot be read: {err.strerror or err}") from None
    try:
        rgb, alpha = read_image(path)
    except ImageReadError as err:
        raise ScoringError(f"unit {unit.name}: {err}") from None
    if rgb.shape != gt_shape:
        raise ScoringError(f"{where} has size {rgb.shape[1]}x{rgb.shape[0]}, the ground truth is "
                           f"{gt_shape[1]}x{gt_shape[0]}")
    if not np.isfinite(rgb).all():
        raise ScoringError(f"{where} contains NaN or infinite values")
    if alpha is not None and not np.isfinite(alpha).all():
        raise ScoringError(f"{where} has NaN or infinite alpha values")
    return (np.clip(rgb, 0.0, 1.0), str(path.relative_to(store.root)), sha256_bytes(data),
            None if alpha is None else np.clip(alpha, 0.0, 1.0))


def _composite(rgb: Any, alpha: Any, background: Any) -> Any:
    return rgb * alpha + background * (1.0 - alpha)


def _evaluate(spec: MetricSpec, metric: Any, pred: Any, gt: Any, gt_keys: list[str],
              cache: ReferenceCache | None, alpha: list[Any]) -> MetricValues:
    """Run one metric on a batch; metrics that declare ``needs_alpha`` get the ground-truth alpha per image."""
    extra = {"alpha": alpha} if getattr(metric, "needs_alpha", False) else {}
    if cache is None or not isinstance(metric, ReferenceFeatureMetric):
        return MetricValues.of(metric(pred, gt, **extra))
    features: list[Features | None] = [cache.get(spec.name, metric.cache_identity, k) for k in gt_keys]
    todo = [i for i, f in enumerate(features) if f is None]
    if todo:
        sub_extra = {"alpha": [alpha[i] for i in todo]} if extra else {}
        for i, computed in zip(todo, metric.reference_features(gt[todo], **sub_extra), strict=True):
            cache.put(spec.name, metric.cache_identity, gt_keys[i], computed)
            features[i] = computed
    return metric.compare(pred, gt, [f for f in features if f is not None], **extra)


def _compute(pairs: list[_Pair], metrics: list[tuple[MetricSpec, Any]], device: str,
             background: tuple[float, float, float], cache: ReferenceCache | None = None) -> list[
        tuple[int, str, str, float | None, str | None]]:
    """(pair index, metric, variant, value, note) for every pair, in batches grouped by image size.

    A value is None where the metric is undefined for that pair (e.g. no face detected); the note says why.
    """
    import torch

    out: list[tuple[int, str, str, float | None, str | None]] = []
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, pair in enumerate(pairs):
        by_shape.setdefault(pair.ground_truth.shape, []).append(i)
    bg = torch.tensor(background, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    background_key = stable_hash(list(background))
    batch = BATCH_SIZE["cuda" if str(device).startswith("cuda") else "cpu"]
    for indices in by_shape.values():
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]

            def stack(arrays: list[np.ndarray]) -> torch.Tensor:
                return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)

            pred = stack([pairs[i].prediction for i in chunk])
            gt = stack([pairs[i].ground_truth for i in chunk])
            full_idx = [k for k, i in enumerate(chunk) if pairs[i].full_prediction is not None]
            alpha_of = {i: torch.from_numpy(pairs[i].alpha).to(device) for i in chunk
                        if pairs[i].alpha is not None and not _empty_alpha(pairs[i].alpha)}
            masked_idx = [k for k, i in enumerate(chunk) if i in alpha_of]
            variants = {}
            if full_idx:
                variants["full"] = (stack([pairs[chunk[k]].full_prediction for k in full_idx]), gt[full_idx],
                                    full_idx)
            if masked_idx:
                alpha = torch.stack([alpha_of[chunk[k]] for k in masked_idx]).unsqueeze(1)
                variants["masked"] = (_composite(pred[masked_idx], alpha, bg),
                                      _composite(gt[masked_idx], alpha, bg), masked_idx)
            for variant, (p, g, rows) in variants.items():
                keys = [f"{pairs[chunk[k]].gt_sha}-{variant}-{background_key}" for k in rows]
                alphas = [alpha_of.get(chunk[k]) for k in rows]
                for spec, metric in metrics:
                    result = _evaluate(spec, metric, p, g, keys, cache, alphas)
                    for k, v, reason in zip(rows, result.values, result.reasons, strict=True):
                        value, note = checked_value(spec, v, reason)
                        out.append((chunk[k], spec.name, variant, value, note))
    return out


def _empty_alpha(alpha: np.ndarray) -> bool:
    return float(np.mean(alpha)) < MIN_ALPHA_COVERAGE


def checked_value(spec: MetricSpec, value: float, reason: str | None) -> tuple[float | None, str | None]:
    """(value, None) for a legitimate value, (None, why) otherwise; rounding just past the declared range is
    clamped into it, a value further out is a defect and is not averaged."""
    if reason is not None:
        return None, reason
    value = float(value)
    if not np.isfinite(value):
        return None, f"metric returned a non-finite value ({value})"
    low, high = spec.value_range
    if low - RANGE_TOLERANCE <= value < low:
        return low, None
    if high < value <= high + RANGE_TOLERANCE:
        return high, None
    if not low <= value <= high:
        return None, f"metric returned {value!r}, outside its declared range [{low}, {high}]"
    return value, None


@dataclass
class _UnitScore:
    metrics: pl.DataFrame
    images: pl.DataFrame
    errors: list[dict[str, Any]]
    seconds: float


Loaded = list[tuple[ViewRef, Any, str | None]]  # (target, its ground-truth View or None, why it could not load)


def _load_ground_truth(unit: EvalUnit, adapter: DatasetAdapter) -> Loaded:
    """The unit's ground truth: each target's view, or for an in-the-wild unit its input photo (the reference)."""
    refs = [unit.sources[0]] if unit.kind == "in_the_wild" else list(unit.targets)
    loaded: Loaded = []
    for ref in refs:
        try:
            loaded.append((ref, adapter.load_view(ref), None))
        except (DatasetError, ImageReadError) as err:
            loaded.append((ref, None, str(err)))
    return loaded


def _ground_truth_fingerprint(loaded: Loaded) -> str:
    return stable_hash([[ref.as_dict(), ground_truth_hash(view.image, view.alpha) if view is not None else why]
                        for ref, view, why in loaded])


def _plates_fingerprint(adapter: DatasetAdapter, loaded: Loaded, memo: dict[tuple, str]) -> str:
    """Hash of the background plates behind the unit's targets (what an RGBA prediction's ``full`` score depends
    on), one plate per (subject, camera, size), each computed once per scoring run."""
    from harness.data.prepared import reader_plate

    plate_of = getattr(adapter, "plate_behind", None)
    out = []
    for ref, view, _ in loaded:
        if view is None:
            continue
        height, width = view.image.shape[:2]
        key = (ref.subject, ref.camera, height, width)
        if key not in memo:
            plate, why = (plate_of(ref, height, width) if plate_of is not None
                          else reader_plate(adapter, ref, height, width))
            memo[key] = sha256_bytes(np.ascontiguousarray(plate).tobytes()) if plate is not None else f"none: {why}"
        out.append(memo[key])
    return stable_hash(out)


def _unit_pairs(store: RunStore, unit: EvalUnit, loaded: Loaded, adapter: DatasetAdapter,
                background: tuple[float, float, float], codec: CodecRoundTrip | None = None) -> tuple[
        list[_Pair], list[dict[str, Any]]]:
    pairs: list[_Pair] = []
    errors: list[dict[str, Any]] = []
    predictions: dict[ViewRef, tuple[np.ndarray, str, str, np.ndarray | None]] = {}
    for ref, view, why in loaded:
        try:
            if view is None:
                raise ScoringError(why or "ground truth unreadable")
            predictions[ref] = _load_prediction(store, unit, ref, view.image.shape)
        except ScoringError as err:
            errors.append({"unit": unit.name, **ref.as_dict(), "error": str(err)})
    if codec is not None and predictions:  # scored as a submission carries them: RGB frames after the codec
        try:
            coded = round_trip_views({r: (p[0], p[3]) for r, p in predictions.items()}, background, codec)
        except CodecError as err:
            errors += [{"unit": unit.name, **r.as_dict(), "error": f"unit {unit.name}: {err}"} for r in predictions]
            return pairs, errors
        predictions = {r: (coded[r], rel, sha, None) for r, (_, rel, sha, _) in predictions.items()}
    for ref, view, _ in loaded:
        if ref not in predictions or view is None:
            continue
        pred, rel, pred_sha, pred_alpha = predictions[ref]
        full, full_note = _full_prediction(pred, pred_alpha, ref, adapter)
        if pred_alpha is not None:  # the masked variant sees the prediction over the protocol background
            a = pred_alpha[..., None]
            pred = (pred * a + np.asarray(background, dtype=np.float32) * (1.0 - a)).astype(np.float32)
        pairs.append(_Pair(ref, pred, view.image, view.alpha, rel, pred_sha,
                           ground_truth_hash(view.image, view.alpha), view.alpha_note, full, full_note))
    return pairs, errors


def _full_prediction(pred: np.ndarray, pred_alpha: np.ndarray | None, ref: ViewRef,
                     adapter: DatasetAdapter) -> tuple[np.ndarray | None, str | None]:
    """What the ``full`` variant compares with the raw frame. An RGB prediction: itself. An RGBA prediction (its
    RGB straight colour, as PNG stores it): composited over the view's empty-studio plate, which is what the camera
    saw behind the head; with no plate, ``full`` is undefined for it, since a render with nothing behind the head
    cannot be compared fairly with a frame that has a backdrop."""
    if pred_alpha is None:
        return pred, None
    from harness.data.prepared import reader_plate

    plate_of = getattr(adapter, "plate_behind", None)  # a prepared dataset; a bare reader has no preprocessing
    plate, why = (plate_of(ref, *pred.shape[:2]) if plate_of is not None
                  else reader_plate(adapter, ref, *pred.shape[:2]))
    if plate is None:
        return None, (f"full variant undefined for an RGBA prediction: {why}, so there is no backdrop to composite "
                      "it over (the masked variant compares the head)")
    a = pred_alpha[..., None]
    return (pred * a + plate * (1.0 - a)).astype(np.float32), None


def _score_units(store: RunStore, group: list[tuple[EvalUnit, Loaded]], adapter: DatasetAdapter, protocol: Protocol,
                 metrics: list[tuple[MetricSpec, Any]], device: str, run_meta: dict[str, Any],
                 cache: ReferenceCache | None, codec: CodecRoundTrip | None = None) -> list[_UnitScore]:
    """Score the paired units of ``group`` together: their pairs share batches (on CUDA a batch spans units), and
    each pair's values are the same whatever batch it came in (see harness.scoring.metrics)."""
    per_unit = [_unit_pairs(store, unit, loaded, adapter, protocol.background, codec) for unit, loaded in group]
    pairs = [pair for unit_pairs, _ in per_unit for pair in unit_pairs]
    owner = [u for u, (unit_pairs, _) in enumerate(per_unit) for _ in unit_pairs]
    t0 = time.perf_counter()
    values = _compute(pairs, metrics, device, protocol.background, cache) if pairs else []
    seconds = (time.perf_counter() - t0) / max(1, len(group))
    values += [(i, spec.name, "masked", None, _no_masked_reason(pair)) for i, pair in enumerate(pairs)
               if pair.alpha is None or _empty_alpha(pair.alpha) for spec, _ in metrics]
    values += [(i, spec.name, "full", None, pair.full_note) for i, pair in enumerate(pairs)
               if pair.full_prediction is None for spec, _ in metrics]
    results = []
    for u, (unit, _) in enumerate(group):
        rows = [{
            **run_meta, "unit": unit.name, "kind": unit.kind, "subject": pairs[i].ref.subject,
            "sequence": pairs[i].ref.sequence, "camera": pairs[i].ref.camera, "frame": pairs[i].ref.frame,
            "metric": name, "variant": variant, "value": value, "status": "ok" if value is not None else "undefined",
            "note": note,
        } for i, name, variant, value, note in values if owner[i] == u]
        images = [{
            "unit": unit.name, **p.ref.as_dict(), "prediction": p.pred_file, "prediction_sha256": p.pred_sha,
            "ground_truth_sha256": p.gt_sha, "masked_available": p.alpha is not None and not _empty_alpha(p.alpha),
        } for i, p in enumerate(pairs) if owner[i] == u]
        results.append(_UnitScore(pl.DataFrame(rows, schema=METRIC_SCHEMA).sort(KEY_COLUMNS),
                                  pl.DataFrame(images, schema=IMAGE_SCHEMA), per_unit[u][1], seconds))
    return results


def _no_masked_reason(pair: _Pair) -> str:
    if pair.alpha is None:
        return "masked variant unavailable: " + (pair.alpha_note or "the dataset provides no alpha for this view")
    return (f"masked variant undefined: the ground-truth alpha is empty (mean {float(np.mean(pair.alpha)):.2g}, "
            f"below {MIN_ALPHA_COVERAGE:g} of the image), so there is no head to compare")


def _score_wild_unit(store: RunStore, unit: EvalUnit, adapter: DatasetAdapter, loaded: Loaded,
                     metrics: list[tuple[MetricSpec, Any]], device: str, run_meta: dict[str, Any]) -> _UnitScore:
    """Reference-free scoring: every render against the input photo, and renders against each other.

    Metrics take part through optional methods: ``against_photo(renders, photo)`` (variant ``against_photo``, one
    row per target) and ``cross_view(renders)`` (variant ``cross_view``, one row per pair of targets, camera
    ``a~b``). Pixel metrics have no reference-free form and give no rows.
    """
    import torch

    errors: list[dict[str, Any]] = []
    _, photo, why = loaded[0]
    if photo is None:  # no reference: every target of this unit only
        errors = [{"unit": unit.name, **ref.as_dict(), "error": f"unit {unit.name}: input photo: {why}"}
                  for ref in unit.targets]
        return _UnitScore(pl.DataFrame(schema=METRIC_SCHEMA), pl.DataFrame(schema=IMAGE_SCHEMA), errors, 0.0)
    rendered: list[tuple[ViewRef, np.ndarray, str, str]] = []
    for ref in unit.targets:
        try:
            camera = adapter.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
            pred, rel, sha, _ = _load_prediction(store, unit, ref, (camera.height, camera.width, 3))
        except (ScoringError, DatasetError) as err:
            errors.append({"unit": unit.name, **ref.as_dict(), "error": str(err)})
            continue
        rendered.append((ref, pred, rel, sha))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if rendered:
        renders = torch.from_numpy(np.stack([r[1] for r in rendered])).permute(0, 3, 1, 2).to(device)
        reference = torch.from_numpy(photo.image[None]).permute(0, 3, 1, 2).to(device)

        def row(ref: ViewRef, camera: str, spec: MetricSpec, variant: str, value: float, reason: str | None) -> dict:
            checked, note = checked_value(spec, value, reason)
            return {**run_meta, "unit": unit.name, "kind": unit.kind, "subject": ref.subject,
                    "sequence": ref.sequence, "camera": camera, "frame": ref.frame, "metric": spec.name,
                    "variant": variant, "value": checked, "status": "ok" if checked is not None else "undefined",
                    "note": note}

        for spec, metric in metrics:
            if hasattr(metric, "against_photo"):
                result = metric.against_photo(renders, reference)
                rows += [row(r[0], r[0].camera, spec, "against_photo", v, why)
                         for r, v, why in zip(rendered, result.values, result.reasons, strict=True)]
            if hasattr(metric, "cross_view") and len(rendered) > 1:
                result, index_pairs = metric.cross_view(renders)
                rows += [row(rendered[a][0], f"{rendered[a][0].camera}~{rendered[b][0].camera}", spec,
                             "cross_view", v, why)
                         for (a, b), v, why in zip(index_pairs, result.values, result.reasons, strict=True)]
    seconds = time.perf_counter() - t0
    photo_sha = ground_truth_hash(photo.image, None)
    images = [{"unit": unit.name, **ref.as_dict(), "prediction": rel, "prediction_sha256": sha,
               "ground_truth_sha256": photo_sha, "masked_available": False} for ref, _, rel, sha in rendered]
    return _UnitScore(pl.DataFrame(rows, schema=METRIC_SCHEMA), pl.DataFrame(images, schema=IMAGE_SCHEMA),
                      errors, seconds)


def _missing_rows(units: list[EvalUnit], missing_units: list[str], errors: list[dict[str, Any]],
                  metrics: list[tuple[MetricSpec, Any]], scored: pl.DataFrame,
                  run_meta: dict[str, Any]) -> pl.DataFrame:
    """One ``missing`` row per metric and variant for every target without a usable prediction, so the long table
    alone tells a complete result from an incomplete one."""
    variants = sorted(set(scored["variant"].to_list())) or ["full"]
    by_name = {u.name: u for u in units}
    holes: list[tuple[EvalUnit, dict[str, Any], str]] = [
        (by_name[name], ref.as_dict(), "no predictions for the unit") for name in missing_units
        for ref in by_name[name].targets]
    holes += [(by_name[e["unit"]], {k: e[k] for k in ("subject", "sequence", "frame", "camera")}, e["error"])
              for e in errors if e.get("unit") in by_name]
    rows = [{**run_meta, "unit": unit.name, "kind": unit.kind, **ref, "metric": spec.name, "variant": variant,
             "value": None, "status": "missing", "note": why}
            for unit, ref, why in holes for spec, _ in metrics for variant in variants]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def _skipped_rows(units: list[EvalUnit], skipped: dict[str, str], metrics: list[tuple[MetricSpec, Any]],
                  scored: pl.DataFrame, run_meta: dict[str, Any]) -> pl.DataFrame:
    """One ``skipped`` row per target, metric and variant of each unit the method cannot take (a static method on a
    reenactment unit, a one-shot method on a few-shot unit), with the reason: counted apart, never as missing."""
    variants = sorted(set(scored["variant"].to_list())) or ["full"]
    rows = [{**run_meta, "unit": unit.name, "kind": unit.kind, **ref.as_dict(), "metric": spec.name,
             "variant": variant, "value": None, "status": "skipped", "note": skipped[unit.name]}
            for unit in units if unit.name in skipped for ref in unit.targets for spec, _ in metrics
            for variant in variants]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def _prediction_fingerprint(store: RunStore, unit: EvalUnit) -> str:
    """Hash of the unit's prediction files (names and bytes), to decide if cached scores still hold."""
    digest = hashlib.sha256()
    for ref in unit.targets:
        try:
            path = store.find_prediction(unit.name, ref)
        except UnsafePathError:
            digest.update(f"<refused {ref}>".encode())
            continue
        digest.update(str(path.relative_to(store.root)).encode())
        try:
            digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` whole or not at all: on any error (a full disk) the temporary file is removed, the old
    table is left as it was, and an OSError names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.write_parquet(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        named = naming(err, path)
        if named is err:
            raise
        raise named from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cached_unit(store: RunStore, unit: EvalUnit, key: str) -> tuple[pl.DataFrame, pl.DataFrame, list] | None:
    """A unit's cached scores when they were made for ``key``; None when absent, stale or unreadable (then the
    unit is scored again and the cache rewritten)."""
    sidecar = store.score_part(unit.name).with_suffix(".json")
    try:
        cached = read_json(sidecar) if sidecar.exists() else None
        if not isinstance(cached, dict) or cached.get("key") != key:
            return None
        return (pl.read_parquet(store.score_part(unit.name)),
                pl.read_parquet(store.score_part(unit.name).with_suffix(".images.parquet")),
                list(cached.get("errors", [])))
    except Exception:  # a damaged cache file (polars raises its own error types) is only a cache miss
        return None


def score_run(run_dir: Path, registry: Registry, device: str = "cpu", adapter: DatasetAdapter | None = None,
              metric_names: Sequence[str] | None = None,
              progress: Callable[[str, int, int], None] | None = None, strict: bool = False,
              cache: ReferenceCache | None = None, metric_precision: str = DEFAULT_PRECISION,
              codec_roundtrip: CodecRoundTrip | None = None) -> ScoreResult:
    """Score every unit of the run folder; ``cache`` holds ground-truth features (default: the harness cache);
    ``metric_precision`` is fp32, tf32 or bf16 (``harness.scoring.precision``); ``codec_roundtrip`` (else the
    protocol's ``scoring.codec_roundtrip``) encodes predictions as a benchmark submission before scoring."""
    check_precision(metric_precision, device)
    store = RunStore(run_dir)
    run = store.read_run()
    protocol, units = run_protocol(run, str(store.run_json))
    if not units:
        raise ProtocolError(f"{store.run_json}: protocol {protocol.label} gives 0 units; nothing to score")
    if adapter is None:
        adapter = open_dataset(registry.dataset(run["dataset"]), run.get("data_root") or None, protocol,
                               generate=True)
    metrics, unavailable = load_metrics(registry, metric_names or run.get("metrics"), device, strict)
    metrics = [(spec, with_precision(metric, metric_precision, device)) for spec, metric in metrics]
    cache = cache or ReferenceCache()
    run_meta = {"run": run["run_id"], "method": run["method"], "dataset": run["dataset"],
                "protocol": protocol.name, "protocol_version": protocol.version}
    identities = metric_identities(registry, metrics)
    cache_identity = {"scorer": SCORER_VERSION, "metrics": identities, "libraries": library_versions(),
                      "protocol": protocol.identity(), "run": run_meta}
    codec = codec_roundtrip or protocol_codec(protocol.raw, f"{store.run_json} (protocol_content)")
    if codec is not None:
        cache_identity["codec_roundtrip"] = codec.as_dict()
    metric_parts, image_parts, errors, missing = [], [], [], []
    seconds = 0.0
    skipped_units: dict[str, str] = run.get("skipped_units") or {}
    # Uncached paired units are scored in groups so that, on CUDA, one batch spans several units.
    group_pairs = BATCH_SIZE["cuda" if str(device).startswith("cuda") else "cpu"]
    group: list[tuple[EvalUnit, Loaded, str]] = []
    plates: dict[tuple, str] = {}

    def keep(part: _UnitScore) -> None:
        metric_parts.append(part.metrics)
        image_parts.append(part.images)
        errors.extend(part.errors)

    def commit(unit: EvalUnit, key: str, part: _UnitScore) -> None:
        nonlocal seconds
        seconds += part.seconds
        _write_parquet(part.metrics, store.score_part(unit.name))
        _write_parquet(part.images, store.score_part(unit.name).with_suffix(".images.parquet"))
        atomic_write_json(store.score_part(unit.name).with_suffix(".json"), {"key": key, "errors": part.errors})
        keep(part)

    def flush() -> None:
        if group:
            parts = _score_units(store, [(u, loaded) for u, loaded, _ in group], adapter, protocol, metrics,
                                 device, run_meta, cache, codec)
            for (unit, _, key), part in zip(group, parts, strict=True):
                commit(unit, key, part)
            group.clear()

    for done, unit in enumerate(units, start=1):
        if unit.name in skipped_units:
            pass  # the method cannot take this unit (its capabilities): rows say so, it is not a failure
        elif not store.unit_dir(unit.name).is_dir():
            missing.append(unit.name)
        else:
            loaded = _load_ground_truth(unit, adapter)
            key = stable_hash({**cache_identity, "predictions": _prediction_fingerprint(store, unit),
                               "ground_truth": _ground_truth_fingerprint(loaded),
                               "plates": _plates_fingerprint(adapter, loaded, plates)
                               if unit.kind != "in_the_wild" else None})
            cached = _cached_unit(store, unit, key)
            if cached is not None:
                keep(_UnitScore(*cached, seconds=0.0))
            elif unit.kind == "in_the_wild":
                commit(unit, key, _score_wild_unit(store, unit, adapter, loaded, metrics, device, run_meta))
            else:
                group.append((unit, loaded, key))
                if sum(len(u.targets) for u, _, _ in group) >= group_pairs:
                    flush()
        if progress:
            progress("score", done, len(units))
    flush()
    metrics_table = pl.concat(metric_parts) if metric_parts else pl.DataFrame(schema=METRIC_SCHEMA)
    metrics_table = pl.concat([metrics_table, _missing_rows(units, missing, errors, metrics, metrics_table,
                                                             run_meta),
                               _skipped_rows(units, skipped_units, metrics, metrics_table, run_meta)])
    metrics_table = metrics_table.sort(KEY_COLUMNS)
    images_table = pl.concat(image_parts) if image_parts else pl.DataFrame(schema=IMAGE_SCHEMA)
    images_table = images_table.sort(["unit", "subject", "sequence", "frame", "camera"])
    _write_parquet(metrics_table, store.metrics_path)
    _write_parquet(images_table, store.images_path)
    atomic_write_json(store.scoring_errors_path, {"errors": errors, "missing_units": missing,
                                                  "unavailable_metrics": unavailable,
                                                  "metric_identities": identities,
                                                  "metric_precision": run_mode(identities),
                                                  "codec_roundtrip": codec.as_dict() if codec else None})
    recorded = {k: v for k, v in store.read_run().items() if k != "scoring"}  # what `harness score` scored with
    store.write_run({**recorded, "metric_identities": identities,
                     **({"scoring": {"codec_roundtrip": codec.as_dict(), "note": codec.describe()}} if codec else {})})
    return ScoreResult(metrics_table, images_table, errors, missing, seconds,
                       expected_images=sum(len(u.targets) for u in units), unavailable_metrics=unavailable,
                       metric_identities=identities,
                       metric_precision=run_mode(identities) or DEFAULT_PRECISION)
