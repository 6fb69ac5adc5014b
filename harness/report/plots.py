"""Plots for the leaderboard pages (matplotlib, written as SVG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from harness.report.labels import kind_label
from harness.scoring.statistics import cluster_bootstrap_ci

MARKERS = ("o", "s", "^", "D", "v")
LINESTYLES = ("-", "--", ":", "-.")
DODGE = 0.008  # share of the x range between the points of neighbouring lines, so their bars do not hide each other


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def points(table: pl.DataFrame, x: str) -> pl.DataFrame:
    """Per value of ``x``: the mean over images and the 95% cluster-bootstrap interval over subjects (the
    statistics of the boards, restricted to the images at that value)."""
    rows = []
    for (at,), group in table.group_by([x], maintain_order=True):
        values, subjects = group["value"].to_numpy(), group["subject"].to_numpy()
        low, high = cluster_bootstrap_ci(values, subjects)
        rows.append({x: at, "mean": float(values.mean()), "low": low, "high": high, "n": len(values)})
    return pl.DataFrame(rows, schema={x: table.schema[x], "mean": pl.Float64, "low": pl.Float64,
                                      "high": pl.Float64, "n": pl.Int64}).sort(x)


def metric_by_group(series: dict[tuple[str, str], pl.DataFrame], x: str, title: str, ylabel: str, xlabel: str,
                    path: Path) -> Path:
    """One line per (method, unit kind): the metric's mean over images at each value of ``x`` (e.g. the target's
    yaw) with its 95% bootstrap interval over subjects as a bar. Colour: method; marker and line style: kind."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    methods = sorted({m for m, _ in series})
    kinds = sorted({k for _, k in series})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    all_x = [v for t in series.values() for v in t[x].to_list()]
    span = (max(all_x) - min(all_x)) if all_x else 0.0
    order = sorted(series)
    for i, (method, kind) in enumerate(order):
        found = points(series[(method, kind)], x)
        if found.is_empty():
            continue
        shift = (i - (len(order) - 1) / 2) * DODGE * (span or 1.0)
        xs = np.asarray(found[x].to_list(), dtype=np.float64) + shift
        means = found["mean"].to_numpy()
        low = np.where(found["low"].is_null().to_numpy(), means, found["low"].fill_null(0.0).to_numpy())
        high = np.where(found["high"].is_null().to_numpy(), means, found["high"].fill_null(0.0).to_numpy())
        k = kinds.index(kind)
        label = method if len(kinds) == 1 else f"{method}, {kind_label(kind)}"
        ax.errorbar(xs, means, yerr=[means - low, high - means], color=colours[methods.index(method) % len(colours)],
                    marker=MARKERS[k % len(MARKERS)], linestyle=LINESTYLES[k % len(LINESTYLES)], capsize=3,
                    markersize=4, linewidth=1.2, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable, selectable, smaller
        fig.savefig(path, format="svg")
    plt.close(fig)
    return path
