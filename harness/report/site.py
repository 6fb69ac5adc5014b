"""The static report site: index, one leaderboard per dataset x protocol, method pages, run galleries, plots.

Every number on a page is computed here from the runs' ``metrics.parquet`` (via ``tables``), and every row links to
the run folder it came from. Templates resolve in order: the user's ``--templates`` folder, report extensions'
template folders (plugins), then the defaults in ``harness/report/templates``.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from markupsafe import Markup

import harness
from harness.api.specs import load_target
from harness.data.protocol import run_protocol
from harness.data.resolve import open_dataset
from harness.data.rig import yaw_angles
from harness.jsonio import read_json, stable_hash
from harness.plugins.registry import Registry
from harness.provenance import git_commit
from harness.report import plots
from harness.report.errormap import scale_bar
from harness.report.gallery import describe, write_gallery
from harness.report.labels import (
    PAPER_METRICS,
    UNITS,
    Footnotes,
    kind_label,
    metric_axis,
    metric_title,
    missing_note,
    variant_label,
)
from harness.report.runs import RunData, load_runs
from harness.report.tables import Board, build_board, export_rows, headline_variant, to_csv, to_json, to_latex
from harness.report.wild_gallery import applicable, write_wild_gallery
from harness.safepath import check_name, inside
from harness.scoring.precision import describe as describe_precision
from harness.scoring.precision import reduced_mode

ASSETS = ("style.css", "sort.js")
MAX_LISTED = 5  # views named in a plot's note; the rest are counted


def environment(registry: Registry, user_templates: Path | None = None) -> Environment:
    loaders: list[Any] = []
    if user_templates is not None:
        loaders.append(FileSystemLoader(str(user_templates)))
    for spec in registry.specs.get("report_extensions", {}).values():
        if spec.templates:
            package, _, folder = spec.templates.partition(":")
            loaders.append(PackageLoader(package, folder or "templates"))
    loaders.append(PackageLoader("harness", "report/templates"))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = lambda v, digits=4: "—" if v is None else f"{v:.{digits}f}"
    specs = registry.specs.get("metrics", {})
    env.filters["metric"] = lambda name: metric_title(name, specs)
    env.filters["unit"] = lambda name: f" {UNITS[name]}" if name in UNITS else ""  # after a value: "30.1 dB"
    env.filters["heading"] = lambda name: metric_title(name, specs) + (f" [{UNITS[name]}]" if name in UNITS else "")
    env.filters["variant"] = variant_label
    env.filters["kind"] = kind_label
    env.filters["metric_precision"] = describe_precision  # a run's metric_identities -> one line
    env.filters["reduced_precision"] = reduced_mode  # -> "bf16" / "tf32", "" for fp32
    env.filters["codec_note"] = codec_note  # a run's run.json -> "scores are after an H.264 crf 14 ..." or ""
    return env


def codec_note(run: dict[str, Any]) -> str:
    """What codec round trip a run's scores were taken after, for the pages that show them ("" for none)."""
    from harness.data.errors import ProtocolError
    from harness.scoring.codec import recorded_codec

    try:
        codec = recorded_codec(run)
    except ProtocolError as err:
        return f"codec round trip setting unreadable: {err}"
    return codec.describe() if codec is not None else ""


def extension_sections(registry: Registry, page: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    sections = []
    for spec in registry.specs.get("report_extensions", {}).values():
        if spec.sections:
            for section in load_target(spec.sections)(page, context) or []:
                sections.append({"title": str(section["title"]), "html": Markup(section["html"]), "by": spec.name})
    return sections


def provenance(runs: list[RunData]) -> dict[str, Any]:
    return {
        "harness_version": harness.__version__,
        "commit": git_commit(Path(harness.__file__).resolve().parent) or "unknown",
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "protocols": sorted({f"{r.board[0]}/{r.protocol_label}" for r in runs}),
        "runs": [{"id": r.run_id, "recorded_at": r.run.get("provenance", {}).get("recorded_at", ""),
                  "commit": r.run.get("provenance", {}).get("harness_commit", "")} for r in runs],
        "weights": metric_weight_files(runs),
        "metric_precision": sorted({describe_precision(r.metric_identities) for r in runs} - {""}),
        "codec": sorted({codec_note(r.run) for r in runs} - {""}),
    }


def metric_weight_files(runs: list[RunData]) -> list[dict[str, str]]:
    """Every metric weight file the runs were scored with: (file, sha256), one entry per distinct pair."""
    seen: dict[tuple[str, str], None] = {}
    for data in runs:
        for identity in data.metric_identities.values():
            weights = identity.get("weights", {}) if isinstance(identity, dict) else {}
            for relpath, sha in sorted(weights.items()) if isinstance(weights, dict) else []:
                seen[(str(relpath), str(sha))] = None
    return [{"file": f, "sha256": sha} for f, sha in seen]


def board_headline(board: Board) -> dict[str, Any]:
    """What the index shows of a board: its headline metric (the first it has: PSNR before the others), the
    number of images scored, and per method that metric's mean and interval."""
    metric = board.metrics[0] if board.metrics else ""
    images = max((c.n for r in board.rows for m, c in r.cells.items() if m == metric), default=0)
    cells = {r.run.method: r.cells.get(metric) for r in board.rows}
    return {"metric": metric, "direction": board.directions.get(metric, ""), "images": images, "cells": cells,
            "variant": board.rows[0].variant if board.rows else ""}


def _by_kind(series: dict[str, pl.DataFrame], metric: str) -> dict[tuple[str, str], pl.DataFrame]:
    """One table per (method, unit kind) of one metric's values."""
    out = {}
    for method, table in series.items():
        own = table.filter(pl.col("metric") == metric)
        for (kind,), part in own.group_by(["kind"], maintain_order=True):
            out[(method, str(kind))] = part
    return out


def failed_units(data: RunData) -> list[dict[str, str]]:
    """Units that produced no predictions: run.json's ``failed_units`` and ``failures/*.json``, one entry per unit.

    ``failures/`` also holds units of an earlier, interrupted invocation that run.json does not list (yet).
    """
    found: dict[str, dict[str, str]] = {}
    for entry in data.run.get("failed_units") or []:
        if isinstance(entry, dict) and entry.get("unit"):
            found[str(entry["unit"])] = {"unit": str(entry["unit"]), "error": str(entry.get("error", "")),
                                         "traceback": ""}
    for path in sorted((data.root / "failures").glob("*.json")):
        try:
            record = read_json(path)
            unit, error = str(record.get("unit") or path.stem), str(record.get("error", ""))
            traceback = str(record.get("traceback", ""))
        except (OSError, ValueError, AttributeError) as err:
            unit, error, traceback = path.stem, f"failure record {path} is unreadable: {err}", ""
        entry = found.setdefault(unit, {"unit": unit, "error": error, "traceback": ""})
        entry["error"] = entry["error"] or error
        entry["traceback"] = traceback
    return [found[u] for u in sorted(found)]


class SiteBuilder:
    def __init__(self, runs: list[RunData], out: Path, registry: Registry, user_templates: Path | None = None,
                 paper_rows: list[dict[str, Any]] | None = None) -> None:
        self.metric_specs = registry.specs.get("metrics", {})
        self.runs, self.out, self.registry = [applicable(r, self.metric_specs) for r in runs], Path(out), registry
        self.env = environment(registry, user_templates)
        self.paper_rows = paper_rows or []
        self.footer = provenance(runs)
        self.directions = {name: spec.direction for name, spec in self.metric_specs.items()}
        self._adapters: dict[tuple[str, str, str], Any] = {}

    def adapter(self, data: RunData) -> tuple[Any, str]:
        key = (data.run["dataset"], str(data.run.get("data_root") or ""), stable_hash(data.run["protocol_content"]))
        if key not in self._adapters:
            try:
                protocol = run_protocol(data.run)[0]
                self._adapters[key] = (open_dataset(self.registry.dataset(key[0]), key[1] or None, protocol), "")
            except Exception as err:  # the site is still built; the page says why images are missing
                self._adapters[key] = (None, f"dataset {key[0]} not readable here ({type(err).__name__}: {err})")
        return self._adapters[key]

    def write(self, relative: str, template: str, **context: Any) -> Path:
        depth = relative.count("/")
        html = self.env.get_template(template).render(root="../" * depth, footer=self.footer, **context)
        path = inside(self.out, self.out / relative, "report page")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        return path

    def build(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        assets = self.out / "assets"
        assets.mkdir(exist_ok=True)
        for name in ASSETS:
            shutil.copyfile(Path(__file__).parent / "static" / name, assets / name)
        grouped: dict[tuple[str, str], list[RunData]] = defaultdict(list)
        for data in self.runs:
            grouped[data.board].append(data)
        training = {name: spec.training_data for name, spec in self.registry.specs.get("methods", {}).items()}
        boards = [build_board(d, p, runs, list(self.metric_specs), self.directions, training)
                  for (d, p), runs in sorted(grouped.items())]
        for board in boards:
            self.board_page(board)
        for data in self.runs:
            self.run_page(data)
        methods = sorted({r.method for r in self.runs})
        for method in methods:
            self.method_page(method, boards)
        paper_boards = self.paper_boards()
        headline = {b.slug: board_headline(b) for b in boards}
        notes = Footnotes()
        marks = {(b.slug, r.run.method): notes.mark(self._missing_text(r.run, headline[b.slug]["metric"]))
                 for b in boards for r in b.rows
                 if headline[b.slug]["metric"] and r.cells.get(headline[b.slug]["metric"]) is None}
        return self.write("index.html", "index.html.j2", boards=boards, methods=methods,
                          matrix={(b.slug, r.run.method): r for b in boards for r in b.rows},
                          headline=headline, paper_boards=paper_boards, marks=marks, footnotes=notes.notes,
                          is_index=True)

    def _missing_text(self, data: RunData, metric: str) -> str:
        """The footnote of a metric a run has no value for: why it could not run and the fix."""
        if metric in data.unavailable:
            return missing_note(metric, data.unavailable[metric], self.metric_specs)
        return (f"{metric_title(metric, self.metric_specs)}: not scored in run {data.run_id}; score it again "
                f"(harness score {data.root})")

    def paper_boards(self) -> list[dict[str, Any]]:
        """One labelled page per (dataset, protocol) of paper-reported rows: numbers as printed, never measured
        or ranked here."""
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in self.paper_rows:
            grouped[(str(row.get("dataset")), str(row.get("protocol")))].append(row)
        pages = []
        for (dataset, protocol), rows in sorted(grouped.items()):
            slug = f"paper.{dataset}.{protocol}"
            check_name(slug, "paper board")
            metrics = [m for m in PAPER_METRICS
                       if any(r.get("metrics", {}).get(m) is not None for r in rows)]
            self.write(f"boards/{slug}.html", "paper.html.j2", dataset=dataset, protocol=protocol, rows=rows,
                       metrics=metrics, directions=self.directions,
                       citations=sorted({f"{r.get('paper')}, table {r.get('table')}" for r in rows}))
            pages.append({"slug": slug, "dataset": dataset, "protocol": protocol, "rows": len(rows),
                          "citations": sorted({f"{r.get('paper')}, table {r.get('table')}" for r in rows})})
        return pages

    def board_page(self, board: Board) -> None:
        records = export_rows(board)
        exports = self.out / "exports"
        exports.mkdir(exist_ok=True)
        (exports / f"{board.slug}.csv").write_text(to_csv(records), encoding="utf-8")
        (exports / f"{board.slug}.json").write_text(to_json(board, records), encoding="utf-8")
        headings = {m: self.env.filters["heading"](m) for m in board.metrics}
        (exports / f"{board.slug}.tex").write_text(to_latex(board, headings), encoding="utf-8")
        figures = self.board_plots(board)
        paper = [p for p in self.paper_rows if p.get("dataset") == board.dataset]
        notes = Footnotes()
        marks = {(row.run.run_id, m): notes.mark(self._missing_text(row.run, m))
                 for row in board.rows for m in board.metrics if m not in row.cells}
        self.write(f"boards/{board.slug}.html", "board.html.j2", board=board, figures=figures, paper=paper,
                   metric_specs=self.metric_specs, marks=marks, footnotes=notes.notes, paper_metrics=PAPER_METRICS)

    def board_plots(self, board: Board) -> list[dict[str, str]]:
        yaw_series: dict[str, pl.DataFrame] = {}
        input_series: dict[str, pl.DataFrame] = {}
        notes = []
        for row in board.rows:
            data = row.run
            table = data.metrics.filter((pl.col("variant") == row.variant) & (pl.col("status") == "ok"))
            if table.is_empty():
                continue
            units = data.eval_units
            inputs = pl.DataFrame({"unit": list(units), "inputs": [len(u.sources) for u in units.values()]})
            input_series[data.method] = table.join(inputs, on="unit")
            adapter, why = self.adapter(data)
            if adapter is None:
                notes.append(f"{data.method}: no yaw plot, {why}")
                continue
            yaws, left_out = self._yaws(adapter, units, set(table["unit"].unique().to_list()))
            yaw_series[data.method] = table.join(yaws, on=["unit", "camera", "frame"])
            if left_out:
                shown = "; ".join(left_out[:MAX_LISTED])
                more = f" (and {len(left_out) - MAX_LISTED} more)" if len(left_out) > MAX_LISTED else ""
                notes.append(f"{data.method}: {len(left_out)} view(s) left out of the yaw plot, their camera "
                             f"cannot be read: {shown}{more}")
        figures = []
        counts = {c for t in input_series.values() for c in t["inputs"].unique().to_list()}
        variants = sorted({r.variant for r in board.rows})
        shown_variant = ", ".join(variant_label(v) for v in variants)
        for metric in board.metrics:
            direction = board.directions[metric]
            if not any(t.filter(pl.col("metric") == metric).height for t in input_series.values()):
                continue  # a metric no run could compute has no plot (its cells say why)
            title = metric_title(metric, self.metric_specs)
            ylabel = metric_axis(metric, self.metric_specs, direction)
            if yaw_series:
                path = plots.metric_by_group(
                    _by_kind(yaw_series, metric), "yaw",
                    f"{title} ({shown_variant}) against target yaw, {board.dataset} / {board.protocol}", ylabel,
                    "target yaw relative to the source camera (deg)",
                    self.out / "plots" / f"{board.slug}.{metric}.yaw.svg")
                figures.append({"file": f"plots/{path.name}", "caption": f"{title} against target yaw: mean over "
                                f"images, bars the 95% bootstrap interval over subjects; one line per method and "
                                f"unit kind"})
            if len(counts) > 1:
                path = plots.metric_by_group(
                    _by_kind(input_series, metric), "inputs",
                    f"{title} ({shown_variant}) against input views, {board.dataset} / {board.protocol}", ylabel,
                    "number of input views", self.out / "plots" / f"{board.slug}.{metric}.inputs.svg")
                figures.append({"file": f"plots/{path.name}", "caption": f"{title} against the number of input "
                                f"views: mean over images, bars the 95% bootstrap interval over subjects"})
        if len(counts) <= 1:
            notes.append("one input-view count in this protocol: no plot against the number of inputs")
        return figures + [{"file": "", "caption": n} for n in notes]

    @staticmethod
    def _yaws(adapter: Any, units: dict[str, Any], scored: set[str]) -> tuple[pl.DataFrame, list[str]]:
        """Target yaw of every scored view, and the views left out because a camera cannot be read (why)."""
        rows, left_out = [], []
        for unit in units.values():
            if unit.name not in scored:
                continue  # failed units have no rows to plot; the run page lists them
            cameras, broken = {}, {}
            for ref in (*unit.sources, *unit.targets):
                if ref.camera in cameras:
                    continue
                try:
                    cameras[ref.camera] = adapter.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
                    broken.pop(ref.camera, None)
                except Exception as err:  # the plot is still drawn from the views that can be read
                    broken[ref.camera] = describe(err)
            source = unit.sources[0]
            if source.camera in broken:
                left_out.append(f"{unit.name} (all {len(unit.targets)} targets; source camera {source.camera}: "
                                f"{broken[source.camera]})")
                continue
            angles = dict.fromkeys(cameras, 0.0) if len(cameras) < 2 else yaw_angles(cameras, source.camera)
            for t in unit.targets:
                if t.camera in broken:
                    left_out.append(f"{unit.name} camera {t.camera} frame {t.frame}: {broken[t.camera]}")
                else:
                    rows.append({"unit": unit.name, "camera": t.camera, "frame": t.frame,
                                 "yaw": round(angles[t.camera], 1) + 0.0})
        return pl.DataFrame(rows, schema={"unit": pl.String, "camera": pl.String, "frame": pl.Int64,
                                          "yaw": pl.Float64}), left_out

    def run_page(self, data: RunData) -> None:
        folder = self.out / "runs" / data.run_id
        adapter, why = self.adapter(data)
        wild = data.reference_free
        variant = headline_variant(data.metrics.filter(~pl.col("unit").is_in(sorted(wild))))
        titles = {name: metric_title(name, self.metric_specs) for name in self.metric_specs}
        items = write_gallery(data, adapter, folder, variant, self.directions, titles)
        notes = Footnotes()
        wild_units, wild_metrics = (write_wild_gallery(data, adapter, folder, self.directions, self.metric_specs,
                                                       notes) if wild else ([], []))
        missing = {m: notes.mark(missing_note(m, reason, self.metric_specs))
                   for m, reason in sorted(data.unavailable.items())}
        context = {"run": data.run, "units": data.units, "root_path": str(data.root)}
        self.write(f"runs/{data.run_id}/index.html", "run.html.j2", data=data, items=items, gallery_note=why,
                   variant=variant, failed=failed_units(data), wild_units=wild_units, wild_metrics=wild_metrics,
                   has_ground_truth=len(wild) < len(data.eval_units), missing=missing, footnotes=notes.notes,
                   scale=scale_bar(), sections=extension_sections(self.registry, "run", context))

    def method_page(self, method: str, boards: list[Board]) -> None:
        spec = self.registry.specs.get("methods", {}).get(method)
        measured = [(b, r) for b in boards for r in b.rows if r.run.method == method]
        names = {method, spec.title if spec else method}
        paper = [p for p in self.paper_rows if p.get("method") in names]
        timing = []
        for _, row in measured:
            units = row.run.units
            if units:
                seconds = [sum(u.get("timings_s", {}).values()) for u in units]
                memory = [max(u.get("memory", {}).values(), default=0.0) for u in units]
                timing.append({"run": row.run.run_id, "units": len(units), "mean_s": sum(seconds) / len(seconds),
                               "max_s": max(seconds), "peak_mb": max(memory)})
        context = {"method": method, "spec": spec}
        self.write(f"methods/{method}.html", "method.html.j2", method=method, spec=spec, measured=measured,
                   paper=paper, timing=timing, paper_metrics=PAPER_METRICS,
                   sections=extension_sections(self.registry, "method", context))


def build_report(run_dirs: list[Path], out: Path, registry: Registry, user_templates: Path | None = None,
                 paper_rows: list[dict[str, Any]] | None = None) -> Path:
    return SiteBuilder(load_runs(run_dirs), out, registry, user_templates, paper_rows).build()
