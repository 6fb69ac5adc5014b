"""Summaries derived from the long metrics table only."""

from __future__ import annotations

import polars as pl

from harness.plugins.registry import Registry
from harness.scoring.statistics import summarise


def summary_table(metrics: pl.DataFrame, expected_images: int, registry: Registry,
                  unavailable: list[dict[str, str]] | None = None) -> list[dict[str, object]]:
    """One row per (metric, variant): mean with clustered SE and bootstrap 95% interval over the images where the
    metric is defined, how many were undefined (e.g. no face detected), completeness and direction. An incomplete
    row has no mean. Metrics that could not run at all (missing weights) get a row with the reason instead."""
    rows: list[dict[str, object]] = []

    def described(name: str) -> dict[str, object]:
        spec = registry.specs["metrics"].get(name)
        return {"title": spec.title if spec else name, "direction": spec.direction if spec else "",
                "settings": spec.settings if spec else ""}

    for item in unavailable or []:
        rows.append({"metric": item["metric"], "variant": "-", "mean": None, "se": None, "ci_low": None,
                     "ci_high": None, "images": 0, "units": 0, "undefined": 0, **described(item["metric"]),
                     "expected": expected_images, "complete": False, "unavailable": item["reason"]})
    if metrics.is_empty():
        return rows
    units = metrics.group_by(["metric", "variant"]).agg(pl.col("unit").n_unique().alias("units"))
    stats = summarise(metrics).join(units, on=["metric", "variant"]).sort(["metric", "variant"])
    for row in stats.iter_rows(named=True):
        rows.append({
            "metric": row["metric"], "variant": row["variant"], "mean": row["mean"], "se": row["se"],
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "images": row["n"] + row["undefined"],
            "undefined": row["undefined"], "units": row["units"], **described(row["metric"]),
            "expected": row["n"] + row["undefined"] + row["missing"], "complete": row["complete"],
            "unavailable": "",
        })
    return rows
