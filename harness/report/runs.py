"""Run folders as the report reads them: run.json, the Parquet tables and the per-unit info files, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from harness.api.types import EvalUnit
from harness.data.protocol import Protocol, run_protocol
from harness.jsonio import read_json
from harness.report.errors import ReportInputError
from harness.report.labels import REFERENCE_FREE_KINDS
from harness.safepath import UnsafePathError, check_name
from harness.store import RunFolderError, RunStore


@dataclass
class RunData:
    root: Path
    run: dict[str, Any]
    metrics: pl.DataFrame
    images: pl.DataFrame
    units: list[dict[str, Any]]
    unavailable: dict[str, str]  # metric -> why it could not run (missing weights)
    metric_identities: dict[str, Any] = field(default_factory=dict)  # metric -> settings, weight files' sha256

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

    @cached_property  # read once: boards and pages ask per row
    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoints the predictions came from: run.json's list, else the units' own records."""
        return RunStore(self.root).recorded_checkpoints()

    @property
    def synthetic_demo(self) -> bool:
        """Whether any prediction came from a synthetic-demo stand-in model (marked wherever the run appears)."""
        return any(bool(c.get("synthetic_demo")) for c in self.checkpoints)

    @cached_property
    def expanded(self) -> tuple[Protocol, dict[str, EvalUnit]]:
        """The run's protocol and its units by name, expanded as they were when the run started."""
        protocol, units = run_protocol(self.run)
        return protocol, {u.name: u for u in units}

    @property
    def eval_units(self) -> dict[str, EvalUnit]:
        return self.expanded[1]

    @property
    def reference_free(self) -> set[str]:
        """Units scored without ground truth (against their input photo)."""
        return {name for name, unit in self.eval_units.items() if unit.kind in REFERENCE_FREE_KINDS}

    @property
    def protocol_label(self) -> str:
        return f"{self.run['protocol']}@v{self.run['protocol_version']}"


def load_run(root: Path) -> RunData:
    store = RunStore(Path(root))
    if not store.run_json.exists():
        raise ReportInputError(f"{root} is not a run folder (no run.json)")
    if not store.metrics_path.exists():
        raise ReportInputError(f"{root} has not been scored (no metrics.parquet); run `harness score {root}`")
    try:
        run = store.read_run()
    except RunFolderError as err:
        raise ReportInputError(str(err)) from None
    try:
        for key in ("run_id", "method", "dataset", "protocol"):
            check_name(str(run.get(key, "")), f"{store.run_json}: {key}")
    except UnsafePathError as err:
        raise ReportInputError(str(err)) from None
    units = [_json(p, "run the same `harness run` command again to redo that unit")
             for p in sorted(store.root.glob("predictions/*/info.json"))]
    problems = (_json(store.scoring_errors_path, f"score the run again (harness score {root})")
                if store.scoring_errors_path.exists() else {})
    try:
        unavailable = {item["metric"]: item["reason"] for item in problems.get("unavailable_metrics", [])}
    except (AttributeError, KeyError, TypeError):
        raise ReportInputError(f"{store.scoring_errors_path} is malformed; score the run again "
                               f"(harness score {root})") from None
    identities = problems.get("metric_identities") or run.get("metric_identities") or {}
    return RunData(store.root, run, _table(store.metrics_path, root),
                   _table(store.images_path, root) if store.images_path.exists() else pl.DataFrame(), units,
                   unavailable, identities if isinstance(identities, dict) else {})


def _json(path: Path, fix: str) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{path} is not readable JSON ({err}); {fix}") from None


def _table(path: Path, root: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as err:  # polars raises its own error types for a damaged file
        raise ReportInputError(f"{path} is not a readable Parquet table ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:200]}); score the run again "
                               f"(harness score {root})") from None


def load_runs(roots: list[Path]) -> list[RunData]:
    runs = [load_run(r) for r in roots]
    seen: dict[str, Path] = {}
    for data in runs:
        if data.run_id in seen and seen[data.run_id] != data.root:
            raise ReportInputError(f"two run folders share run id {data.run_id}: {seen[data.run_id]} and {data.root}")
        seen[data.run_id] = data.root
    return runs
