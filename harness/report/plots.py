"""Plots for the leaderboard pages (matplotlib, written as SVG files)."""

from __future__ import annotations

from pathlib import Path

import polars as pl


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_by_group(series: dict[str, pl.DataFrame], x: str, metric: str, direction: str, xlabel: str,
                    path: Path) -> Path:
    """One line per method: the metric's mean over images at each value of ``x`` (e.g. the target's yaw)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for label, table in series.items():
        points = table.group_by(x).agg(pl.col("value").mean()).sort(x)
        ax.plot(points[x].to_list(), points["value"].to_list(), marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} ({direction} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path
