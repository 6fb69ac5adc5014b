"""Per-run gallery of the units with ground truth: input(s) | ground truth | prediction | error, written as files.

Units without ground truth (in-the-wild photos) have their own gallery (``wild_gallery``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.api.types import ViewRef
from harness.data.errors import DatasetError
from harness.imageio import ImageReadError, read_image, write_png
from harness.report.errormap import error_map
from harness.report.runs import RunData
from harness.safepath import check_name, inside

FIXED_FRAMES = 4
WORST_K = 4


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
    sources: list[tuple[str, str]] = field(default_factory=list)  # (image file or "", caption) per input view
    kind: str = ""


def describe(err: BaseException) -> str:
    """An error as one line for a page: dataset and image errors name their file already."""
    if isinstance(err, (DatasetError, ImageReadError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _over(image: np.ndarray, alpha: np.ndarray | None, background: np.ndarray) -> np.ndarray:
    return image if alpha is None else image * alpha[..., None] + background * (1.0 - alpha[..., None])


def choose_images(data: RunData, variant: str, directions: Mapping[str, str],
                  titles: Mapping[str, str] | None = None) -> list[tuple[dict[str, Any], str]]:
    """Fixed frames (first target of units spread over the run) and the worst-k images per metric; an image chosen
    for several reasons is listed once, with all of them ("worst PSNR, worst SSIM")."""
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
                choose(match.row(0, named=True), f"worst {(titles or {}).get(metric, metric)}")
    return [(row, ", ".join(reasons)) for row, reasons in chosen.values()]


def _image_stem(ref: ViewRef) -> str:
    return check_name(f"{ref.subject}.{ref.sequence}.cam_{ref.camera}.f{ref.frame:05d}", "gallery image")


def write_sources(data: RunData, adapter: Any, unit: str, out: Path,
                  written: dict[ViewRef, tuple[str, str]]) -> list[tuple[str, str]]:
    """The unit's input views as files (each written once per page), as (file or "", caption with the reason)."""
    shown = []
    eval_unit = data.eval_units.get(unit)
    for ref in eval_unit.sources if eval_unit is not None else ():
        if ref not in written:
            caption = f"cam {ref.camera}, frame {ref.frame}"
            if adapter is None:
                written[ref] = ("", f"{caption}: not shown, the dataset is not readable here")
            else:
                try:
                    view = adapter.load_view(ref)
                except Exception as err:  # the page is still built; the caption says why the input is missing
                    written[ref] = ("", f"{caption}: not shown, {describe(err)}")
                else:
                    name = f"img/input.{_image_stem(ref)}.png"
                    write_png(out / name, view.image)
                    written[ref] = (name, caption)
        shown.append(written[ref])
    return shown


def write_gallery(data: RunData, adapter: Any, out: Path, variant: str, directions: Mapping[str, str],
                  titles: Mapping[str, str] | None = None) -> list[GalleryItem]:
    """Write the images under ``out/img`` and return what the page shows; ground truth needs the dataset.

    The page is built from what was scored: a view whose ground truth (camera or image) or prediction cannot be
    read here is still listed, without the images that could not be made and with the reason.
    """
    wild = data.reference_free
    if wild:
        data = RunData(data.root, data.run, data.metrics.filter(~pl.col("unit").is_in(sorted(wild))),
                       data.images.filter(~pl.col("unit").is_in(sorted(wild))) if not data.images.is_empty()
                       else data.images, data.units, data.unavailable, data.metric_identities)
    items: list[GalleryItem] = []
    written: dict[str, tuple[str | None, str | None, str | None, str]] = {}
    inputs: dict[ViewRef, tuple[str, str]] = {}
    values = data.metrics.filter(pl.col("variant") == variant)
    for row, reason in choose_images(data, variant, directions, titles):
        ref = ViewRef(row["subject"], row["sequence"], row["frame"], row["camera"])
        stem = check_name(f"{row['unit']}.cam_{ref.camera}.f{ref.frame:05d}", "gallery image")
        if stem not in written:
            written[stem] = _write_images(data, adapter, ref, row["prediction"], out, stem, variant)
        gt_file, pred_file, err_file, note = written[stem]
        own = values.filter((pl.col("unit") == row["unit"]) & (pl.col("camera") == ref.camera)
                            & (pl.col("frame") == ref.frame) & (pl.col("status") == "ok"))
        unit = data.eval_units.get(row["unit"])
        items.append(GalleryItem(ref, row["unit"], reason, gt_file, pred_file, err_file,
                                 dict(zip(own["metric"].to_list(), own["value"].to_list(), strict=True)), note,
                                 write_sources(data, adapter, row["unit"], out, inputs),
                                 unit.kind if unit is not None else ""))
    return items


def _write_images(data: RunData, adapter: Any, ref: ViewRef, prediction: str, out: Path, stem: str,
                  variant: str) -> tuple[str | None, str | None, str | None, str]:
    """(ground truth, prediction, error) files of one view, each None when it cannot be made, and why."""
    notes = []
    background = np.asarray(data.expanded[0].background, dtype=np.float32)
    try:
        pred, pred_alpha = read_image(inside(data.root, data.root / prediction, "prediction"))
    except ImageReadError as err:
        pred = None
        notes.append(f"prediction not shown: {err}")
    else:  # an RGBA prediction is shown over the protocol background, as the masked scores see it
        pred = _over(pred, pred_alpha, background)
    gt_img: np.ndarray | None = None
    alpha: np.ndarray | None = None
    if adapter is not None and not ref.camera.startswith("orbit_yaw"):  # orbit views have no truth
        try:
            view = adapter.load_view(ref)
        except Exception as err:  # the page is still built; it says why the truth is missing
            notes.append(f"ground truth not shown: {describe(err)}")
        else:
            alpha = view.alpha if variant == "masked" else None
            gt_img = _over(view.image, alpha, background)
    gt_file = pred_file = err_file = None
    if gt_img is not None:
        gt_file = f"img/{stem}.gt.png"
        write_png(out / gt_file, gt_img)
    if pred is not None:
        if gt_img is not None and pred.shape != gt_img.shape:
            notes.append(f"no error map: the prediction is {pred.shape[1]}x{pred.shape[0]}, the ground truth "
                         f"{gt_img.shape[1]}x{gt_img.shape[0]}")
            alpha = gt_img = None
        shown = _over(pred, alpha, background)
        if gt_img is not None:
            err_file = f"img/{stem}.err.png"
            write_png(out / err_file, error_map(shown, gt_img))
        pred_file = f"img/{stem}.pred.png"
        write_png(out / pred_file, shown)
    return gt_file, pred_file, err_file, "; ".join(notes)
