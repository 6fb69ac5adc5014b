"""Statistics behind every table, derived from the long metrics table (Parquet) only.

Conventions:
- A value row has ``status`` ok (a value), undefined (the metric has no value for that pair, e.g. no face found:
  excluded from means, counted), missing (no usable prediction) or skipped (a unit the method's capabilities
  exclude: counted apart, neither a value nor a failure). A group with any missing row is incomplete and
  gets no mean: never a mean over incomplete rows.
- Standard error clustered by subject (images of one subject are not independent):
  ``SE^2 = G/(G-1) * sum_g (sum_{i in g} (x_i - mean))^2 / N^2`` for N values in G subjects; undefined for G < 2.
- 95% interval: percentile bootstrap over subjects (a cluster bootstrap), ``n_boot`` resamples from a seeded
  generator, vectorised: each resample weights the subjects' sums and counts.
- Paired comparison: differences A - B on identical (unit, kind, subject, sequence, camera, frame) keys where both runs
  have a value; paired cluster bootstrap interval of the mean difference; Wilcoxon signed-rank test on the
  per-subject mean differences (two-sided, exact where scipy uses it); Holm correction across the metrics compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

GROUP = ["method", "dataset", "protocol", "metric", "variant"]
PAIR_KEYS = ["unit", "kind", "subject", "sequence", "camera", "frame"]  # unit: one image can serve several units
N_BOOT = 2000
SEED = 0


def clustered_se(values: np.ndarray, clusters: np.ndarray) -> float | None:
    """Standard error of the mean of ``values``, clustered by ``clusters`` (None with fewer than 2 clusters)."""
    values = np.asarray(values, dtype=np.float64)
    labels, index = np.unique(clusters, return_inverse=True)
    g, n = len(labels), len(values)
    if g < 2 or n == 0:
        return None
    residual_sums = np.bincount(index, weights=values - values.mean(), minlength=g)
    return float(np.sqrt(g / (g - 1) * np.sum(residual_sums**2) / n**2))


def cluster_bootstrap_ci(values: np.ndarray, clusters: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED,
                         level: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """Percentile interval of the mean from resampling whole clusters with replacement."""
    values = np.asarray(values, dtype=np.float64)
    labels, index = np.unique(clusters, return_inverse=True)
    g = len(labels)
    if g == 0:
        return None, None
    sums = np.bincount(index, weights=values, minlength=g)
    counts = np.bincount(index, minlength=g).astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(np.float64)
    means = (weights @ sums) / (weights @ counts)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None entries are left out of the family and stay None)."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def summarise(metrics: pl.DataFrame, n_boot: int = N_BOOT, seed: int = SEED) -> pl.DataFrame:
    """Per (method, dataset, protocol, metric, variant): mean, clustered SE, bootstrap 95% interval, counts."""
    rows = []
    for key, group in metrics.group_by(GROUP, maintain_order=True):
        ok = group.filter(pl.col("status") == "ok")
        missing = group.filter(pl.col("status") == "missing").height
        complete = missing == 0
        values, subjects = ok["value"].to_numpy(), ok["subject"].to_numpy()
        mean = se = low = high = None
        if complete and len(values):
            mean = float(values.mean())
            se = clustered_se(values, subjects)
            low, high = cluster_bootstrap_ci(values, subjects, n_boot, seed)
        rows.append({
            **dict(zip(GROUP, key, strict=True)), "mean": mean, "se": se, "ci_low": low, "ci_high": high,
            "n": len(values), "undefined": group.filter(pl.col("status") == "undefined").height, "missing": missing,
            "subjects": int(ok["subject"].n_unique()), "complete": complete,
            "skipped": group.filter(pl.col("status") == "skipped").height,
        })
    schema = {**{c: pl.String for c in GROUP}, "mean": pl.Float64, "se": pl.Float64, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "n": pl.Int64, "undefined": pl.Int64, "missing": pl.Int64,
              "subjects": pl.Int64, "complete": pl.Boolean, "skipped": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


class NoSharedUnitsError(ValueError):
    pass


@dataclass(frozen=True)
class Comparison:
    table: pl.DataFrame
    method_a: str
    method_b: str


def _wilcoxon(subject_means: np.ndarray) -> float | None:
    if len(subject_means) < 2:
        return None
    if np.allclose(subject_means, 0.0):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(subject_means, alternative="two-sided").pvalue)


def compare(a: pl.DataFrame, b: pl.DataFrame, n_boot: int = N_BOOT, seed: int = SEED,
            variants: Sequence[str] | None = None) -> Comparison:
    """Paired differences A - B per (metric, variant) on the keys both runs scored."""
    def values(frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.filter(pl.col("status") == "ok")
        if variants:
            frame = frame.filter(pl.col("variant").is_in(list(variants)))
        return frame.select([*PAIR_KEYS, "metric", "variant", "value"])

    joined = values(a).join(values(b), on=[*PAIR_KEYS, "metric", "variant"], suffix="_b", how="inner")
    if joined.is_empty():
        raise NoSharedUnitsError(
            "the runs share no scored (unit, kind, subject, sequence, camera, frame) for a common metric and variant: "
            "were they made on the same dataset and protocol?")
    rows = []
    for (metric, variant), group in joined.group_by(["metric", "variant"], maintain_order=True):
        diff = (group["value"] - group["value_b"]).to_numpy()
        subjects = group["subject"].to_numpy()
        low, high = cluster_bootstrap_ci(diff, subjects, n_boot, seed)
        labels, index = np.unique(subjects, return_inverse=True)
        subject_means = np.bincount(index, weights=diff) / np.bincount(index)
        rows.append({"metric": metric, "variant": variant, "n_pairs": len(diff), "subjects": len(labels),
                     "mean_a": float(group["value"].mean()), "mean_b": float(group["value_b"].mean()),
                     "diff": float(diff.mean()), "ci_low": low, "ci_high": high,
                     "p_wilcoxon": _wilcoxon(subject_means)})
    table = pl.DataFrame(rows).sort(["metric", "variant"])
    table = table.with_columns(pl.Series("p_holm", holm(table["p_wilcoxon"].to_list()), dtype=pl.Float64))
    method_a = a["method"][0] if a.height else "A"
    method_b = b["method"][0] if b.height else "B"
    return Comparison(table, method_a, method_b)
