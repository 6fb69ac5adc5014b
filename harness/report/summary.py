"""The HTML summary of one run (results table, conventions, problems), and the run report that comes with it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from harness.data.protocol import run_protocol
from harness.jsonio import read_json
from harness.plugins.registry import Registry
from harness.report.aggregate import summary_table
from harness.report.labels import REFERENCE_FREE_KINDS, Footnotes, missing_note
from harness.report.site import build_report, environment
from harness.report.wild_gallery import is_reference_free
from harness.store import RunStore


def write_summary(run_dir: Path, registry: Registry) -> Path:
    store = RunStore(run_dir)
    run = store.read_run()
    metrics = pl.read_parquet(store.metrics_path)
    problems = read_json(store.scoring_errors_path)
    protocol, units = run_protocol(run)
    expected = sum(len(u.targets) for u in units)
    failures = [read_json(p) for p in sorted((store.root / "failures").glob("*.json"))]
    checkpoints = store.recorded_checkpoints()
    specs = registry.specs.get("metrics", {})
    reference_free = bool(units) and all(u.kind in REFERENCE_FREE_KINDS for u in units)
    unavailable = [u for u in problems.get("unavailable_metrics", [])
                   if not reference_free or is_reference_free(u["metric"], specs)]
    rows = summary_table(metrics, expected, registry, unavailable)
    notes = Footnotes()
    marks = {r["metric"]: notes.mark(missing_note(str(r["metric"]), str(r["unavailable"]), specs))
             for r in rows if r["unavailable"]}
    html = environment(registry).get_template("summary.html.j2").render(
        run=run,
        rows=rows,
        marks=marks,
        footnotes=notes.notes,
        reference_free=reference_free,
        gallery=f"site/runs/{run['run_id']}/index.html",
        errors=problems["errors"],
        missing_units=problems["missing_units"],
        failures=failures,
        protocol=protocol,
        checkpoints=checkpoints,
        synthetic_demo=any(c.get("synthetic_demo") for c in checkpoints),
    )
    path = store.report_dir / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def write_run_report(run_dir: Path, registry: Registry) -> tuple[Path, Path]:
    """The run's summary page and its report site (gallery, plots, exports) under ``report/``."""
    summary = write_summary(run_dir, registry)
    return summary, build_report([run_dir], RunStore(run_dir).report_dir / "site", registry)
