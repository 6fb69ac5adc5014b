"""Run folders as the report reads them: run.json, the Parquet tables and the per-unit info files, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from harness.jsonio import read_json
from harness.report.errors import ReportInputError
from harness.safepath import UnsafePathError, check_name
from harness.store import RunStore


@dataclass
class RunData:
    root: Path
    run: dict[str, Any]
    metrics: pl.DataFrame
    images: pl.DataFrame
    units: list[dict[str, Any]]
    unavailable: dict[str, str]  # metric -> why it could not run (missing weights)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def method(self) -> str:
        return str(self.run["method"])

    @property
    def board(self) -> tuple[str, str]:
        """(dataset, protocol): which leaderboard this run belongs to."""
        return str(self.run["dataset"]), str(self.run["protocol"])

    @property
    def protocol_label(self) -> str:
        return f"{self.run['protocol']}@v{self.run['protocol_version']}"


def load_run(root: Path) -> RunData:
    store = RunStore(Path(root))
    if not store.run_json.exists():
        raise ReportInputError(f"{root} is not a run folder (no run.json)")
    if not store.metrics_path.exists():
        raise ReportInputError(f"{root} has not been scored (no metrics.parquet); run `harness score {root}`")
    run = store.read_run()
    try:
        for key in ("run_id", "method", "dataset", "protocol"):
            check_name(str(run.get(key, "")), f"{store.run_json}: {key}")
    except UnsafePathError as err:
        raise ReportInputError(str(err)) from None
    units = [read_json(p) for p in sorted(store.root.glob("predictions/*/info.json"))]
    problems = read_json(store.scoring_errors_path) if store.scoring_errors_path.exists() else {}
    unavailable = {item["metric"]: item["reason"] for item in problems.get("unavailable_metrics", [])}
    return RunData(store.root, run, pl.read_parquet(store.metrics_path),
                   pl.read_parquet(store.images_path) if store.images_path.exists() else pl.DataFrame(), units,
                   unavailable)


def load_runs(roots: list[Path]) -> list[RunData]:
    runs = [load_run(r) for r in roots]
    seen: dict[str, Path] = {}
    for data in runs:
        if data.run_id in seen and seen[data.run_id] != data.root:
            raise ReportInputError(f"two run folders share run id {data.run_id}: {seen[data.run_id]} and {data.root}")
        seen[data.run_id] = data.root
    return runs
