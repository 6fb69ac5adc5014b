"""Per-run gallery images (ground truth | prediction | error), written as files, and target-camera yaw angles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.api.types import ViewRef
from harness.data.errors import DatasetError
from harness.imageio import ImageReadError, read_image, write_png
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
    pred: str | None
    err: str | None
    values: dict[str, float]
    note: str = ""  # why ground truth, prediction or error is not shown


def describe(err: BaseException) -> str:
    """An error as one line for a page: dataset and image errors name their file already."""
    if isinstance(err, (DatasetError, ImageReadError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _on_white(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return image if alpha is None else image * alpha[..., None] + (1.0 - alpha[..., None])


def choose_images(data: RunData, variant: str, directions: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    """Fixed frames (first target of units spread over the run) and the worst-k images per metric; an image chosen
    for several reasons is listed once, with all of them ("worst psnr, worst ssim")."""
    if data.images.is_empty():
        return []
    chosen: dict[tuple[Any, ...], tuple[dict[str, Any], list[str]]] = {}

    def choose(row: dict[str, Any], reason: str) -> None:
        key = (row["unit"], row["subject"], row["sequence"], row["frame"], row["camera"])
        chosen.setdefault(key, (row, []))[1].append(reason)

    firsts = data.images.group_by("unit", maintain_order=True).first()
    step = max(1, firsts.height // FIXED_FRAMES)
    for row in firsts[::step].head(FIXED_FRAMES).iter_rows(named=True):
        choose(row, "fixed")
    ok = data.metrics.filter((pl.col("variant") == variant) & (pl.col("status") == "ok"))
    for metric in sorted(ok["metric"].unique().to_list()):
        worst = ok.filter(pl.col("metric") == metric).sort("value", descending=directions.get(metric) == "lower")
        for row in worst.head(WORST_K).iter_rows(named=True):
            match = data.images.filter((pl.col("unit") == row["unit"]) & (pl.col("camera") == row["camera"])
                                       & (pl.col("frame") == row["frame"]))
            if match.height:
                choose(match.row(0, named=True), f"worst {metric}")
    return [(row, ", ".join(reasons)) for row, reasons in chosen.values()]


def write_gallery(data: RunData, adapter: Any, out: Path, variant: str,
                  directions: dict[str, str]) -> list[GalleryItem]:
    """Write the images under ``out/img`` and return what the page shows; ground truth needs the dataset.

    The page is built from what was scored: a view whose ground truth (camera or image) or prediction cannot be
    read here is still listed, without the images that could not be made and with the reason.
    """
    items: list[GalleryItem] = []
    written: dict[str, tuple[str | None, str | None, str | None, str]] = {}
    values = data.metrics.filter(pl.col("variant") == variant)
    for row, reason in choose_images(data, variant, directions):
        ref = ViewRef(row["subject"], row["sequence"], row["frame"], row["camera"])
        stem = check_name(f"{row['unit']}.cam_{ref.camera}.f{ref.frame:05d}", "gallery image")
        if stem not in written:
            written[stem] = _write_images(data, adapter, ref, row["prediction"], out, stem, variant)
        gt_file, pred_file, err_file, note = written[stem]
        own = values.filter((pl.col("unit") == row["unit"]) & (pl.col("camera") == ref.camera)
                            & (pl.col("frame") == ref.frame) & (pl.col("status") == "ok"))
        items.append(GalleryItem(ref, row["unit"], reason, gt_file, pred_file, err_file,
                                 dict(zip(own["metric"].to_list(), own["value"].to_list(), strict=True)), note))
    return items


def _write_images(data: RunData, adapter: Any, ref: ViewRef, prediction: str, out: Path, stem: str,
                  variant: str) -> tuple[str | None, str | None, str | None, str]:
    """(ground truth, prediction, error) files of one view, each None when it cannot be made, and why."""
    notes = []
    try:
        pred: np.ndarray | None = read_image(inside(data.root, data.root / prediction, "prediction"))[0]
    except ImageReadError as err:
        pred = None
        notes.append(f"prediction not shown: {err}")
    gt_img = alpha = None
    if adapter is not None and not ref.camera.startswith("orbit_yaw"):  # orbit views have no truth
        try:
            view = adapter.load_view(ref)
        except Exception as err:  # the page is still built; it says why the truth is missing
            notes.append(f"ground truth not shown: {describe(err)}")
        else:
            alpha = view.alpha if variant == "masked" else None
            gt_img = _on_white(view.image, alpha)
    gt_file = pred_file = err_file = None
    if gt_img is not None:
        gt_file = f"img/{stem}.gt.png"
        write_png(out / gt_file, gt_img)
    if pred is not None:
        if gt_img is not None and pred.shape != gt_img.shape:
            notes.append(f"no error map: the prediction is {pred.shape[1]}x{pred.shape[0]}, the ground truth "
                         f"{gt_img.shape[1]}x{gt_img.shape[0]}")
            alpha = gt_img = None
        shown = _on_white(pred, alpha)
        if gt_img is not None:
            error = np.clip(np.abs(shown - gt_img).mean(-1) * ERROR_GAIN, 0, 1)
            err_file = f"img/{stem}.err.png"
            write_png(out / err_file, np.repeat(error[..., None], 3, -1))
        pred_file = f"img/{stem}.pred.png"
        write_png(out / pred_file, shown)
    return gt_file, pred_file, err_file, "; ".join(notes)
