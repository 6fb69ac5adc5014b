"""Metric precision: fp32 (the default, used for published numbers), tf32 or bf16 for the network metrics.

A metric takes part by declaring ``precision_tolerance``: the largest |value - fp32 value| the reduced modes may
give for it, as tested (``tests/test_metric_precision.py``). LPIPS and DreamSim declare one; PSNR and SSIM (float64,
cheap and exact) and CSIM (ArcFace runs in onnxruntime, which torch's autocast does not reach) do not, and are
computed the same way in every mode.

- ``fp32``: float32 throughout, TF32 tensor cores off for matmuls and cuDNN convolutions (PyTorch enables TF32 for
  cuDNN convolutions by default; here fp32 means fp32).
- ``tf32``: TF32 matmuls and convolutions (CUDA only: TF32 is a tensor-core format; on CPU it is refused, since the
  run would be fp32 while claiming otherwise).
- ``bf16``: ``torch.autocast`` to bfloat16 around the metric's network (CPU or CUDA with bf16 support).

The mode a metric ran in is part of its identity (``harness.scoring.scorer.metric_identities``), so it keys the
score cache and the ground-truth feature cache, and it is recorded in ``run.json`` and shown in every report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"
COMPUTE = {"tf32": "TF32 tensor-core matmuls and convolutions", "bf16": "bfloat16 autocast"}
_WRAPPED = ("reference_features", "compare", "against_photo", "cross_view")


class MetricPrecisionError(ValueError):
    """A metric precision mode that cannot run here; the message says why and what to use instead."""


def check_precision(mode: str, device: str) -> None:
    """Refuse a mode this device cannot run."""
    if mode not in PRECISIONS:
        raise MetricPrecisionError(f"unknown metric precision {mode!r}; choose one of {', '.join(PRECISIONS)}")
    if mode == "fp32":
        return
    if mode == "tf32" and not str(device).startswith("cuda"):
        raise MetricPrecisionError(f"metric precision tf32 needs a CUDA device (TF32 is an NVIDIA tensor-core "
                                   f"format), the metrics run on {device}; use --metric-precision fp32 or bf16")
    if mode == "bf16" and str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            raise MetricPrecisionError(f"metric precision bf16: {device} has no bfloat16 support; use "
                                       "--metric-precision fp32 or tf32")


def applied(metric: Any, mode: str) -> str:
    """The mode ``metric`` runs in when ``mode`` is asked for: fp32 for a metric that declares no tolerance."""
    return mode if getattr(metric, "precision_tolerance", None) is not None else "fp32"


@contextmanager
def compute_precision(mode: str, device: str) -> Iterator[None]:
    """Run the block in ``mode``; TF32 settings are put back afterwards."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        if mode == "bf16":
            with torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class PrecisionMetric:
    """A loaded metric whose every computation runs in its applied mode (made by ``with_precision``). Other
    attributes pass through; the ground-truth feature cache identity names a reduced mode, so bf16 features never
    serve an fp32 score."""

    def __init__(self, metric: Any, mode: str, device: str) -> None:
        self._metric, self.precision, self._device = metric, applied(metric, mode), device

    def __getattr__(self, name: str) -> Any:
        if name == "_metric":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self._metric, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with compute_precision(self.precision, self._device):
            return self._metric(*args, **kwargs)


def _wrapped(name: str) -> Any:
    def method(self: PrecisionMetric, *args: Any, **kwargs: Any) -> Any:
        with compute_precision(self.precision, self._device):
            return getattr(self._metric, name)(*args, **kwargs)
    method.__name__ = name
    return method


def _cache_identity(self: PrecisionMetric) -> str:
    inner = self._metric.cache_identity
    return inner if self.precision == "fp32" else f"{inner}|precision={self.precision}"


def with_precision(metric: Any, mode: str, device: str) -> PrecisionMetric:
    """``metric`` running in its applied mode. The wrapper has exactly the optional methods the metric has (the
    scorer asks ``hasattr(metric, "against_photo")``, and checks ``ReferenceFeatureMetric`` statically)."""
    members: dict[str, Any] = {name: _wrapped(name) for name in _WRAPPED if callable(getattr(metric, name, None))}
    if hasattr(metric, "cache_identity"):
        members["cache_identity"] = property(_cache_identity)
    return type(f"Precision{type(metric).__name__}", (PrecisionMetric,), members)(metric, mode, device)


def identity(metric: Any) -> dict[str, Any]:
    """What a metric's identity records of its mode: the mode applied, and for a reduced one its tolerance."""
    used = metric.precision if isinstance(metric, PrecisionMetric) else DEFAULT_PRECISION
    out: dict[str, Any] = {"precision": used}
    if used != "fp32":
        out["precision_tolerance"] = float(metric.precision_tolerance)
    return out


def reduced(identities: Any) -> dict[str, tuple[str, float]]:
    """metric -> (mode, tolerance) for each metric of a run scored in a reduced mode."""
    if not isinstance(identities, Mapping):
        return {}
    return {str(name): (str(i["precision"]), float(i.get("precision_tolerance") or 0.0))
            for name, i in sorted(identities.items())
            if isinstance(i, Mapping) and i.get("precision", "fp32") != "fp32"}


def run_mode(identities: Any) -> str:
    """The run's metric precision: a reduced mode if any metric ran in one, fp32 otherwise; "" for a run scored
    before modes were recorded."""
    modes = sorted({mode for mode, _ in reduced(identities).values()})
    if modes:
        return "+".join(modes)
    recorded = isinstance(identities, Mapping) and any(isinstance(i, Mapping) and "precision" in i
                                                       for i in identities.values())
    return DEFAULT_PRECISION if recorded else ""


def reduced_mode(identities: Any) -> str:
    """The reduced mode a run's metrics ran in ("bf16", "tf32"), "" for fp32: what a leaderboard row is flagged with."""
    mode = run_mode(identities)
    return "" if mode in ("", DEFAULT_PRECISION) else mode


def describe(identities: Any) -> str:
    """One line for a report: the mode and, for a reduced one, the metrics it touched and their tested tolerance
    against fp32."""
    mode = run_mode(identities)
    if not mode:
        return ""
    if mode == DEFAULT_PRECISION:
        return "metric precision fp32 (full precision, the setting for published numbers)"
    parts = reduced(identities)
    bounds = ", ".join(f"{name} ≤ {tol:g}" for name, (_, tol) in parts.items())
    how = "; ".join(f"{m}: {COMPUTE.get(m, m)}" for m in sorted({m for m, _ in parts.values()}))
    tested = ("tested in bf16 on CPU with stand-in networks" if "tf32" not in mode
              else "the bf16 bound; TF32 keeps 3 more significand bits; not tested without a GPU")
    return (f"metric precision {mode} for {', '.join(parts)} ({how}), tolerance against fp32 |Δ|: {bounds} "
            f"({tested}); other metrics in full precision. Not interchangeable with fp32 scores")
