"""Leaderboard tables computed from the runs' long metric tables (and nothing else), with their exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from harness.report.runs import RunData
from harness.scoring.precision import run_mode
from harness.scoring.statistics import summarise

HEADLINE_VARIANT = "masked"
REFERENCE_FREE_VARIANT = "against_photo"  # the headline of units without ground truth


@dataclass
class Cell:
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    undefined: int
    missing: int
    complete: bool


@dataclass
class BoardRow:
    run: RunData
    variant: str
    cells: dict[str, Cell]
    subjects: dict[str, dict[str, float | None]]
    failed_units: int
    overlap: bool
    rank: int | None = None
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.failed_units == 0 and all(c.complete for c in self.cells.values())


@dataclass
class Board:
    dataset: str
    protocol: str
    protocol_versions: list[int]
    metrics: list[str]
    directions: dict[str, str]
    rows: list[BoardRow]

    @property
    def slug(self) -> str:
        return f"{self.dataset}.{self.protocol}"


def headline_variant(metrics: pl.DataFrame, default: str = HEADLINE_VARIANT) -> str:
    """``masked`` where the table has it, else its first variant; ``default`` for a table without rows."""
    variants = set(metrics["variant"].unique().to_list()) if not metrics.is_empty() else set()
    if not variants:
        return default
    return HEADLINE_VARIANT if HEADLINE_VARIANT in variants else sorted(variants)[0]


def subject_means(metrics: pl.DataFrame, variant: str) -> dict[str, dict[str, float | None]]:
    """Per subject, per metric: the mean over that subject's defined values, or None when any row is missing."""
    table = metrics.filter(pl.col("variant") == variant)
    out: dict[str, dict[str, float | None]] = {}
    if table.is_empty():
        return out
    grouped = table.group_by(["subject", "metric"]).agg(
        pl.col("value").filter(pl.col("status") == "ok").mean().alias("mean"),
        (pl.col("status") == "missing").any().alias("has_missing"))
    for row in grouped.sort(["subject", "metric"]).iter_rows(named=True):
        out.setdefault(row["subject"], {})[row["metric"]] = None if row["has_missing"] else row["mean"]
    return out


def _rank(values: dict[int, float], direction: str) -> dict[int, int]:
    """Competition ranking (1, 2, 2, 4) of row index -> value; the best is 1."""
    sign = -1.0 if direction == "higher" else 1.0
    ordered = sorted(values.items(), key=lambda kv: sign * kv[1])
    ranks: dict[int, int] = {}
    for position, (index, value) in enumerate(ordered):
        tied = [i for i, v in ordered[:position] if v == value]
        ranks[index] = ranks[tied[0]] if tied else position + 1
    return ranks


def build_board(dataset: str, protocol: str, runs: list[RunData], metric_order: list[str],
                directions: dict[str, str], training_data: dict[str, tuple[str, ...]]) -> Board:
    rows = []
    present: set[str] = set()
    for data in runs:
        wild_only = bool(data.eval_units) and len(data.reference_free) == len(data.eval_units)
        variant = headline_variant(data.metrics, REFERENCE_FREE_VARIANT if wild_only else HEADLINE_VARIANT)
        stats = summarise(data.metrics.filter(pl.col("variant") == variant)) if not data.metrics.is_empty() else None
        cells = {}
        if stats is not None:
            for s in stats.iter_rows(named=True):
                cells[s["metric"]] = Cell(s["mean"], s["ci_low"], s["ci_high"], s["n"], s["undefined"], s["missing"],
                                          s["complete"])
        present |= set(cells) | set(data.unavailable)
        rows.append(BoardRow(run=data, variant=variant, cells=cells, subjects=subject_means(data.metrics, variant),
                             failed_units=len(data.run.get("failed_units") or []),
                             overlap=dataset in training_data.get(data.method, ())))
    metrics = [m for m in metric_order if m in present] + sorted(present - set(metric_order))
    for metric in metrics:
        values = {i: r.cells[metric].mean for i, r in enumerate(rows)
                  if r.complete and metric in r.cells and r.cells[metric].mean is not None}
        for i, rank in _rank(values, directions.get(metric, "higher")).items():
            rows[i].ranks[metric] = rank
    # Overall rank: mean of the per-metric ranks over the metrics every complete row has (a metric missing for one
    # run, e.g. for lack of weights, does not decide the order of the others).
    complete_rows = [r for r in rows if r.complete]
    shared = [m for m in metrics if complete_rows and all(m in r.ranks for r in complete_rows)]
    overall = {i: float(np.mean([r.ranks[m] for m in shared])) for i, r in enumerate(rows)
               if r.complete and shared}
    for i, rank in _rank(overall, "lower").items():
        rows[i].rank = rank
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.run.method))
    versions = sorted({int(r.run.run.get("protocol_version", 0)) for r in rows})
    return Board(dataset, protocol, versions, metrics, {m: directions.get(m, "higher") for m in metrics}, rows)


def export_rows(board: Board) -> list[dict[str, Any]]:
    out = []
    for row in board.rows:
        record: dict[str, Any] = {"method": row.run.method, "run": row.run.run_id, "variant": row.variant,
                                  "rank": row.rank, "complete": row.complete, "training_overlap": row.overlap,
                                  "synthetic_demo_model": row.run.synthetic_demo,
                                  "metric_precision": run_mode(row.run.metric_identities)}
        for metric in board.metrics:
            cell = row.cells.get(metric)
            record[f"{metric}_mean"] = cell.mean if cell else None
            record[f"{metric}_ci_low"] = cell.ci_low if cell else None
            record[f"{metric}_ci_high"] = cell.ci_high if cell else None
        out.append(record)
    return out


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()


def to_json(board: Board, records: list[dict[str, Any]]) -> str:
    return json.dumps({"dataset": board.dataset, "protocol": board.protocol,
                       "protocol_versions": board.protocol_versions, "directions": board.directions,
                       "rows": records}, indent=2)


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                       ("^", r"\textasciicircum{}")):
        text = text.replace(char, repl)
    return text


def to_latex(board: Board, headings: Mapping[str, str] | None = None) -> str:
    """The board as a LaTeX tabular; ``headings`` names each metric's column (e.g. "PSNR [dB]"), else its id."""
    arrows = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}
    named = headings or {}
    header = " & ".join(["Method", *[f"{_latex_escape(named.get(m, m))} {arrows[board.directions[m]]}"
                                     for m in board.metrics]])
    lines = [r"\begin{tabular}{l" + "c" * len(board.metrics) + "}", r"\toprule", header + r" \\", r"\midrule"]
    for row in board.rows:
        cells = []
        for metric in board.metrics:
            cell = row.cells.get(metric)
            cells.append("--" if cell is None or cell.mean is None else f"{cell.mean:.4f}")
        lines.append(" & ".join([_latex_escape(row.run.method), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
