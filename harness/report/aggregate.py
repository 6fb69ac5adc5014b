"""Summaries derived from the long metrics table only."""

from __future__ import annotations

import polars as pl

from harness.plugins.registry import Registry


def summary_table(metrics: pl.DataFrame, expected_images: int, registry: Registry,
                  unavailable: list[dict[str, str]] | None = None) -> list[dict[str, object]]:
    """One row per (metric, variant): mean over the images where the metric is defined, image count, how many
    were undefined (e.g. no face detected), completeness and direction. Metrics that could not run at all (missing
    weights) get a row with no mean and the reason."""
    rows: list[dict[str, object]] = []
    for item in unavailable or []:
        spec = registry.specs["metrics"].get(item["metric"])
        rows.append({"metric": item["metric"], "variant": "-", "mean": None, "images": 0, "units": 0,
                     "undefined": 0, "title": spec.title if spec else item["metric"],
                     "direction": spec.direction if spec else "", "settings": spec.settings if spec else "",
                     "expected": expected_images, "complete": False, "unavailable": item["reason"]})
    if metrics.is_empty():
        return rows
    grouped = (metrics.group_by(["metric", "variant"])
               .agg(pl.col("value").mean().alias("mean"), pl.len().alias("images"),
                    pl.col("value").null_count().alias("undefined"),
                    pl.col("unit").n_unique().alias("units"))
               .sort(["metric", "variant"]))
    for row in grouped.iter_rows(named=True):
        spec = registry.specs["metrics"].get(row["metric"])
        rows.append({
            **row,
            "title": spec.title if spec else row["metric"],
            "direction": spec.direction if spec else "",
            "settings": spec.settings if spec else "",
            "expected": expected_images,
            "complete": row["images"] == expected_images,
            "unavailable": "",
        })
    return rows
