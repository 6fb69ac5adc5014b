"""Per-run gallery images (ground truth | prediction | error), written as files, and target-camera yaw angles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.api.types import ViewRef
from harness.imageio import read_image, write_png
from harness.report.runs import RunData
from harness.safepath import check_name, inside

FIXED_FRAMES = 4
WORST_K = 4
ERROR_GAIN = 4.0  # error maps show 4 x the mean absolute error per pixel, clipped at 1


@dataclass
class GalleryItem:
    ref: ViewRef
    unit: str
    reason: str
    gt: str | None
    pred: str
    err: str | None
    values: dict[str, float]


def _on_white(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return image if alpha is None else image * alpha[..., None] + (1.0 - alpha[..., None])


def choose_images(data: RunData, variant: str, directions: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    """Fixed frames (first target of units spread over the run) and the worst-k images per metric."""
    picks: list[tuple[dict[str, Any], str]] = []
    if data.images.is_empty():
        return picks
    firsts = data.images.group_by("unit", maintain_order=True).first()
    step = max(1, firsts.height // FIXED_FRAMES)
    picks += [(row, "fixed") for row in firsts[::step].head(FIXED_FRAMES).iter_rows(named=True)]
    ok = data.metrics.filter((pl.col("variant") == variant) & (pl.col("status") == "ok"))
    for metric in sorted(ok["metric"].unique().to_list()):
        worst = ok.filter(pl.col("metric") == metric).sort("value", descending=directions.get(metric) == "lower")
        for row in worst.head(WORST_K).iter_rows(named=True):
            match = data.images.filter((pl.col("unit") == row["unit"]) & (pl.col("camera") == row["camera"])
                                       & (pl.col("frame") == row["frame"]))
            if match.height:
                picks.append((match.row(0, named=True), f"worst {metric}"))
    return picks


def write_gallery(data: RunData, adapter: Any, out: Path, variant: str,
                  directions: dict[str, str]) -> list[GalleryItem]:
    """Write the images under ``out/img`` and return what the page shows; ground truth needs the dataset."""
    items: list[GalleryItem] = []
    written: dict[str, tuple[str | None, str, str | None]] = {}
    values = data.metrics.filter(pl.col("variant") == variant)
    for row, reason in choose_images(data, variant, directions):
        ref = ViewRef(row["subject"], row["sequence"], row["frame"], row["camera"])
        stem = check_name(f"{row['unit']}.cam_{ref.camera}.f{ref.frame:05d}", "gallery image")
        if stem not in written:
            pred, _ = read_image(inside(data.root, data.root / row["prediction"], "prediction"))
            gt_file = err_file = None
            alpha = None
            if adapter is not None and not ref.camera.startswith("orbit_yaw"):  # orbit views have no truth
                view = adapter.load_view(ref)
                alpha = view.alpha if variant == "masked" else None
                gt_img = _on_white(view.image, alpha)
                gt_file = f"img/{stem}.gt.png"
                write_png(out / gt_file, gt_img)
                error = np.clip(np.abs(_on_white(pred, alpha) - gt_img).mean(-1) * ERROR_GAIN, 0, 1)
                err_file = f"img/{stem}.err.png"
                write_png(out / err_file, np.repeat(error[..., None], 3, -1))
            pred_file = f"img/{stem}.pred.png"
            write_png(out / pred_file, _on_white(pred, alpha))
            written[stem] = (gt_file, pred_file, err_file)
        gt_file, pred_file, err_file = written[stem]
        own = values.filter((pl.col("unit") == row["unit"]) & (pl.col("camera") == ref.camera)
                            & (pl.col("frame") == ref.frame) & (pl.col("status") == "ok"))
        items.append(GalleryItem(ref, row["unit"], reason, gt_file, pred_file, err_file,
                                 dict(zip(own["metric"].to_list(), own["value"].to_list(), strict=True))))
    return items
