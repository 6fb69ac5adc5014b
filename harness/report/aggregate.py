"""Summaries derived from the long metrics table only."""

from __future__ import annotations

import polars as pl

from harness.plugins.registry import Registry


def summary_table(metrics: pl.DataFrame, expected_images: int, registry: Registry) -> list[dict[str, object]]:
    """One row per (metric, variant): mean over images, image count, completeness and direction."""
    if metrics.is_empty():
        return []
    grouped = (metrics.group_by(["metric", "variant"])
               .agg(pl.col("value").mean().alias("mean"), pl.len().alias("images"),
                    pl.col("unit").n_unique().alias("units"))
               .sort(["metric", "variant"]))
    rows = []
    for row in grouped.iter_rows(named=True):
        spec = registry.specs["metrics"].get(row["metric"])
        rows.append({
            **row,
            "title": spec.title if spec else row["metric"],
            "direction": spec.direction if spec else "",
            "settings": spec.settings if spec else "",
            "expected": expected_images,
            "complete": row["images"] == expected_images,
        })
    return rows
