"""The minimal HTML summary of one run: results table, conventions and a few ground truth / prediction pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from harness.api.types import ViewRef
from harness.data.protocol import parse_protocol
from harness.data.resolve import open_dataset
from harness.imageio import read_image, write_png
from harness.jsonio import read_json
from harness.plugins.registry import Registry
from harness.report.aggregate import summary_table
from harness.store import RunStore

EXAMPLES = 6


def environment() -> Environment:
    return Environment(loader=PackageLoader("harness", "report/templates"),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def _examples(store: RunStore, run: dict[str, Any], images: pl.DataFrame, registry: Registry) -> list[dict[str, str]]:
    """Copy a few ground truth / prediction pairs (the first image of units spread over the run) into the report."""
    if images.is_empty():
        return []
    adapter = open_dataset(registry.dataset(run["dataset"]), run.get("data_root") or None)
    firsts = images.group_by("unit", maintain_order=True).first()
    step = max(1, firsts.height // EXAMPLES)
    out = []
    for row in firsts[::step].head(EXAMPLES).iter_rows(named=True):
        ref = ViewRef(row["subject"], row["sequence"], row["frame"], row["camera"])
        stem = f"{row['unit']}.cam_{row['camera']}.f{row['frame']:05d}"
        gt = adapter.load_view(ref)
        pred, _ = read_image(store.root / row["prediction"])
        gt_file = Path("images") / f"{stem}.gt.png"
        pred_file = Path("images") / f"{stem}.pred.png"
        err_file = Path("images") / f"{stem}.err.png"
        write_png(store.report_dir / gt_file, gt.image)
        write_png(store.report_dir / pred_file, pred)
        error = np.abs(pred - gt.image).mean(axis=-1, keepdims=True).repeat(3, axis=-1) * 4.0
        write_png(store.report_dir / err_file, error)
        out.append({"unit": row["unit"], "camera": row["camera"], "frame": str(row["frame"]),
                    "gt": gt_file.as_posix(), "pred": pred_file.as_posix(), "err": err_file.as_posix()})
    return out


def write_summary(run_dir: Path, registry: Registry) -> Path:
    store = RunStore(run_dir)
    run = store.read_run()
    metrics = pl.read_parquet(store.metrics_path)
    images = pl.read_parquet(store.images_path)
    problems = read_json(store.scoring_errors_path)
    protocol = parse_protocol(run["protocol_content"])
    expected = sum(len(u.targets) for u in protocol.units())
    failures = [read_json(p) for p in sorted((store.root / "failures").glob("*.json"))]
    html = environment().get_template("summary.html.j2").render(
        run=run,
        rows=summary_table(metrics, expected, registry, problems.get("unavailable_metrics", [])),
        examples=_examples(store, run, images, registry),
        errors=problems["errors"],
        missing_units=problems["missing_units"],
        failures=failures,
        protocol=protocol,
    )
    path = store.report_dir / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
