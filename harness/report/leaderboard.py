"""``leaderboard.yaml``: paper-reported rows (cited) and measured rows (added from run folders, with provenance).

Schema (``schema_version: 1``)::

    entries:
      - method: str            display name
        dataset: str
        protocol: str          harness protocol name, or the paper's own split (e.g. omega-table2)
        source: paper | measured
        metrics: {psnr, ssim, lpips, csim, dreamsim: float | null}
        # source: paper    -> paper: str, table: int | str
        # source: measured -> run: run id, run_dir, protocol_version, variant, harness_version, commit, added_at,
        #                     ci: {metric: [low, high]}

Paper-reported and measured rows are never ranked together: the site shows them in separate, labelled tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from harness.jsonio import atomic_write_bytes
from harness.report.errors import ReportInputError
from harness.report.runs import load_run
from harness.report.tables import headline_variant
from harness.scoring.precision import run_mode
from harness.scoring.statistics import summarise

SCHEMA_VERSION = 1
SOURCES = ("paper", "measured")


class LeaderboardError(ReportInputError):
    """``leaderboard.yaml`` cannot be used; the message names the file and where it goes wrong."""


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its validated content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LeaderboardError(f"missing leaderboard file {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LeaderboardError(f"leaderboard file {path} cannot be read: {err}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise LeaderboardError(f"leaderboard file {path} is not valid YAML{at}: {' '.join(str(problem).split())} "
                               "(plain YAML only: no tags such as !!python/...)") from None
    _validate(raw, path)
    return text, raw


def load(path: Path) -> list[dict[str, Any]]:
    """The entries, with each measured row's ``run_dir`` resolved against the file's folder (rows store it
    relative, so the file and its runs can move together)."""
    entries = _read(path)[1].get("entries") or []
    for entry in entries:
        if entry.get("source") == "measured" and entry.get("run_dir"):
            entry["run_dir"] = str((Path(path).resolve().parent / entry["run_dir"]).resolve())
    return entries


def _validate(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        raise LeaderboardError(f"{path}: expected schema_version: {SCHEMA_VERSION}")
    entries = raw.get("entries") or []
    if not isinstance(entries, list):
        raise LeaderboardError(f"{path}: entries must be a list, got a {type(entries).__name__}")
    for i, entry in enumerate(entries):
        where = f"{path}: entries[{i}]"
        if not isinstance(entry, dict):
            raise LeaderboardError(f"{where} must be a mapping, got a {type(entry).__name__}")
        for key in ("method", "dataset", "protocol", "source", "metrics"):
            if key not in entry:
                raise LeaderboardError(f"{where} has no {key!r}")
        if entry["source"] not in SOURCES:
            raise LeaderboardError(f"{where}.source is {entry['source']!r}, expected one of {SOURCES}")
        if entry["source"] == "paper" and ("paper" not in entry or "table" not in entry):
            raise LeaderboardError(f"{where}: a paper-reported row must cite its paper and table")
        if entry["source"] == "measured" and "run" not in entry:
            raise LeaderboardError(f"{where}: a measured row must name its run")


def measured_entry(run_dir: Path) -> dict[str, Any]:
    data = load_run(run_dir)
    variant = headline_variant(data.metrics)
    stats = summarise(data.metrics.filter(pl.col("variant") == variant))
    metrics, ci = {}, {}
    for row in stats.iter_rows(named=True):
        metrics[row["metric"]] = None if row["mean"] is None else round(row["mean"], 6)
        ci[row["metric"]] = None if row["ci_low"] is None else [round(row["ci_low"], 6), round(row["ci_high"], 6)]
    provenance = data.run.get("provenance", {})
    return {
        "method": data.method, "dataset": data.run["dataset"], "protocol": data.run["protocol"],
        "source": "measured", "metrics": metrics, "ci": ci, "variant": variant, "run": data.run_id,
        "run_dir": str(Path(run_dir).resolve()), "protocol_version": data.run.get("protocol_version"),
        "harness_version": provenance.get("harness_version", ""), "commit": provenance.get("harness_commit", ""),
        "complete": bool(stats["complete"].all()) and not data.run.get("failed_units"),
        "metric_precision": run_mode(data.metric_identities) or "unrecorded",
        "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def add(path: Path, run_dir: Path) -> tuple[dict[str, Any], bool]:
    """Append a measured row, or replace the row of the same run id; returns (entry, replaced).

    The file is edited as text: every other line (comments, the style of each entry) is kept as it was, and the
    new row is written in the file's flow style with ``run_dir`` relative to the file's folder."""
    import os

    text, raw = _read(path)
    entry = measured_entry(run_dir)
    entry["run_dir"] = os.path.relpath(Path(run_dir).resolve(), Path(path).resolve().parent)
    lines = text.splitlines()
    blocks = _entry_blocks(lines)
    replaced = False
    new_block = _flow_entry(entry)
    for (start, end), old in zip(blocks, raw.get("entries") or [], strict=False):
        if old.get("source") == "measured" and old.get("run") == entry["run"]:
            lines[start:end] = new_block
            replaced = True
            break
    if not replaced:
        end = blocks[-1][1] if blocks else len(lines)
        if not blocks and not any(line.startswith("entries:") for line in lines):
            lines.append("entries:")
            end = len(lines)
        elif not blocks:
            lines = [line if line.strip() != "entries: []" else "entries:" for line in lines]
        lines[end:end] = new_block
    new_text = "\n".join(lines) + "\n"
    check = yaml.safe_load(new_text)
    _validate(check, path)
    if [e.get("run") for e in check.get("entries") or []].count(entry["run"]) != 1:
        raise LeaderboardError(f"{path}: could not place the row of run {entry['run']} (unexpected layout); "
                               "nothing was written")
    atomic_write_bytes(Path(path), new_text.encode("utf-8"))
    return entry, replaced


def _entry_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges of the items of ``entries:`` (each starts with ``  - ``; continuation lines are
    indented deeper)."""
    blocks: list[tuple[int, int]] = []
    inside = False
    for i, line in enumerate(lines):
        if line.startswith("entries:"):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith("  - "):
            blocks.append((i, i + 1))
        elif blocks and (line.startswith("    ") or not line.strip()) and blocks[-1][1] == i:
            if line.strip():
                blocks[-1] = (blocks[-1][0], i + 1)
        elif line and not line.startswith(" ") and not line.startswith("#"):
            break
    return blocks


def _flow_entry(entry: dict[str, Any]) -> list[str]:
    """One entry in the file's style: a flow mapping after ``  - ``, continuation lines indented by 5."""
    flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=112).strip().splitlines()
    return [("  - " if i == 0 else "     ") + line.strip() for i, line in enumerate(flow)]
