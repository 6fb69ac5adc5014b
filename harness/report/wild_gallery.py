"""The gallery of units without ground truth (one input photo, rendered on an orbit): per unit the input photo, every
rendered view with its reference-free values (against the photo), and the values across rendered views."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from harness.api.specs import load_target
from harness.imageio import ImageReadError, read_image, write_png
from harness.report.gallery import FIXED_FRAMES, WORST_K, describe
from harness.report.labels import Footnotes, metric_title, missing_note
from harness.report.runs import RunData
from harness.safepath import check_name, inside

PER_VIEW, ACROSS = "against_photo", "cross_view"  # the scorer's reference-free variants


@dataclass
class Value:
    """One metric's cell for a view: a value, or a short marked state with a footnote number."""

    value: float | None
    state: str = "ok"  # ok | undefined | missing
    footnote: int | None = None


@dataclass
class WildView:
    camera: str
    label: str
    image: str | None
    values: dict[str, Value]
    note: str = ""


@dataclass
class WildUnit:
    unit: str
    subject: str
    reason: str
    photo: str | None
    views: list[WildView]
    across: dict[str, str] = field(default_factory=dict)  # metric -> "0.93 (mean of 21 pairs, 3 undefined)"
    note: str = ""


def is_reference_free(name: str, specs: Mapping[str, Any]) -> bool:
    """Whether a metric has a reference-free form (a spec of that kind, or a target with ``against_photo``)."""
    spec = specs.get(name)
    if spec is None:
        return False
    if spec.kind == "reference_free":
        return True
    try:
        return hasattr(load_target(spec.target), "against_photo")
    except Exception:  # a metric whose code does not load here cannot be shown as applicable
        return False


def applicable(data: RunData, specs: Mapping[str, Any]) -> RunData:
    """The run with only the unavailable metrics that apply to it: a run whose units all lack ground truth is not
    missing a metric that has no reference-free form (PSNR, LPIPS)."""
    wild = data.reference_free
    if not data.unavailable or not wild or len(wild) < len(data.eval_units):
        return data
    return replace(data, unavailable={m: why for m, why in data.unavailable.items() if is_reference_free(m, specs)})


def reference_free_metrics(data: RunData, specs: Mapping[str, Any]) -> list[str]:
    """The metrics of this run's reference-free gallery: those with reference-free rows, and those that could not
    run (missing weights) but would have one; in the registry's order."""
    wild = data.metrics.filter(pl.col("variant").is_in([PER_VIEW, ACROSS]))
    present = set(wild["metric"].unique().to_list())
    present |= {m for m in data.unavailable if is_reference_free(m, specs)}
    return [m for m in specs if m in present] + sorted(present - set(specs))


def view_label(camera: str) -> str:
    match = re.fullmatch(r"orbit_yaw([+-]\d+)", camera)
    return f"yaw {int(match.group(1)):+d}°" if match else f"cam {camera}"


def choose_units(data: RunData, units: list[str], metrics: list[str],
                 directions: Mapping[str, str], specs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Fixed units spread over the run, then the worst-k units per metric by their mean against the photo; a unit
    chosen for several reasons is listed once with all of them."""
    chosen: dict[str, list[str]] = {}
    step = max(1, len(units) // FIXED_FRAMES)
    for name in units[::step][:FIXED_FRAMES]:
        chosen.setdefault(name, []).append("fixed")
    ok = data.metrics.filter((pl.col("variant") == PER_VIEW) & (pl.col("status") == "ok")
                             & pl.col("unit").is_in(units))
    for metric in metrics:
        means = ok.filter(pl.col("metric") == metric).group_by("unit").agg(pl.col("value").mean())
        worst = means.sort(["value", "unit"], descending=[directions.get(metric) == "lower", False])
        for name in worst["unit"].head(WORST_K).to_list():
            chosen.setdefault(name, []).append(f"worst {metric_title(metric, specs)}")
    return [(name, ", ".join(reasons)) for name, reasons in chosen.items()]


def write_wild_gallery(data: RunData, adapter: Any, out: Path, directions: Mapping[str, str],
                       specs: Mapping[str, Any], notes: Footnotes) -> tuple[list[WildUnit], list[str]]:
    """Write the photos and rendered views under ``out/img``; return the units shown and the metric columns."""
    wild = data.reference_free
    units = [name for name in data.eval_units if name in wild]
    metrics = reference_free_metrics(data, specs)
    files = {} if data.images.is_empty() else {
        (r["unit"], r["camera"], r["frame"]): r["prediction"]
        for r in data.images.filter(pl.col("unit").is_in(units)).iter_rows(named=True)}
    rows = data.metrics.filter(pl.col("unit").is_in(units) & pl.col("variant").is_in([PER_VIEW, ACROSS]))
    failed = {str(f.get("unit")): str(f.get("error", "")) for f in data.run.get("failed_units") or []
              if isinstance(f, dict)}
    shown = []
    for name, reason in choose_units(data, units, metrics, directions, specs):
        unit = data.eval_units[name]
        stem = check_name(name, "gallery image")
        photo, note = _write_photo(adapter, unit, out, stem)
        own = rows.filter(pl.col("unit") == name)
        views = []
        for ref in unit.targets:
            per_view = own.filter((pl.col("variant") == PER_VIEW) & (pl.col("camera") == ref.camera)
                                  & (pl.col("frame") == ref.frame))
            image, why = _write_view(data, files.get((name, ref.camera, ref.frame)), out,
                                     f"{stem}.cam_{ref.camera}.f{ref.frame:05d}", failed.get(name))
            views.append(WildView(ref.camera, view_label(ref.camera), image,
                                  {m: _cell(m, per_view, data, specs, notes) for m in metrics}, why))
        shown.append(WildUnit(name, unit.subject, reason, photo, views,
                              _across(own.filter(pl.col("variant") == ACROSS), metrics), note))
    return shown, metrics


def _cell(metric: str, rows: pl.DataFrame, data: RunData, specs: Mapping[str, Any], notes: Footnotes) -> Value:
    if metric in data.unavailable:
        return Value(None, "missing", notes.mark(missing_note(metric, data.unavailable[metric], specs)))
    row = rows.filter(pl.col("metric") == metric)
    if row.is_empty():
        return Value(None, "missing", notes.mark(f"{metric_title(metric, specs)}: no value recorded for this view "
                                                 f"(score the run again: harness score {data.root})"))
    status, value, why = row["status"][0], row["value"][0], row["note"][0]
    if status == "ok":
        return Value(float(value))
    label = "undefined" if status == "undefined" else "missing"
    return Value(None, label, notes.mark(f"{metric_title(metric, specs)} {label}: {why or 'no reason recorded'}"))


def _across(rows: pl.DataFrame, metrics: list[str]) -> dict[str, str]:
    out = {}
    for metric in metrics:
        own = rows.filter(pl.col("metric") == metric)
        if own.is_empty():
            continue
        ok = own.filter(pl.col("status") == "ok")["value"]
        undefined = own.filter(pl.col("status") == "undefined").height
        if not ok.len():
            out[metric] = f"undefined for all {own.height} pairs of views"
            continue
        out[metric] = f"{ok.mean():.4f} (mean of {ok.len()} pairs of views" + (
            f"; undefined for {undefined} more)" if undefined else ")")
    return out


def _write_photo(adapter: Any, unit: Any, out: Path, stem: str) -> tuple[str | None, str]:
    if adapter is None:
        return None, "input photo not shown: the dataset is not readable here"
    try:
        view = adapter.load_view(unit.sources[0])
    except Exception as err:  # the page is still built; it says why the photo is missing
        return None, f"input photo not shown: {describe(err)}"
    name = f"img/{stem}.photo.png"
    write_png(out / name, view.image)
    return name, ""


def _write_view(data: RunData, prediction: str | None, out: Path, stem: str,
                failure: str | None) -> tuple[str | None, str]:
    if prediction is None:
        return None, f"no prediction: {failure}" if failure else "no prediction scored for this view"
    try:
        rgb, _ = read_image(inside(data.root, data.root / prediction, "prediction"))
    except ImageReadError as err:
        return None, f"prediction not shown: {err}"
    name = f"img/{stem}.pred.png"
    write_png(out / name, rgb)  # RGB as scored: the reference-free metrics ignore a prediction's alpha
    return name, ""
