"""The on-disk layout of one run, and the atomic operations that make a killed run resumable.

    RUN_DIR/
      run.json                                identity, config, provenance (written at start, updated at end)
      predictions/{unit}/info.json            written last: its presence marks the unit done
      predictions/{unit}/{subject}/{sequence}/frame_{t:05d}/cam_{camera}.png
      failures/{unit}.json                    why a unit produced no predictions (retried on resume)
      scores/{unit}.parquet                   per-unit metric rows (reused while prediction hashes match)
      metrics.parquet                         the long table: every row of every unit
      images.parquet                          per image: prediction file, sha256 of prediction and ground truth
      scoring_errors.json                     images that could not be scored, with the reason
      report/index.html                       the run summary
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.api.types import ViewRef
from harness.jsonio import atomic_write_json, read_json
from harness.safepath import check_name, inside

PREDICTION_EXTENSIONS = (".png", ".npy", ".jpg")


class RunStore:
    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir)

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.parquet"

    @property
    def images_path(self) -> Path:
        return self.root / "images.parquet"

    @property
    def scoring_errors_path(self) -> Path:
        return self.root / "scoring_errors.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def unit_dir(self, unit: str) -> Path:
        return self.root / "predictions" / check_name(unit, "unit name")

    def info_path(self, unit: str) -> Path:
        return self.unit_dir(unit) / "info.json"

    def failure_path(self, unit: str) -> Path:
        return self.root / "failures" / f"{check_name(unit, 'unit name')}.json"

    def score_part(self, unit: str) -> Path:
        return self.root / "scores" / f"{check_name(unit, 'unit name')}.parquet"

    @staticmethod
    def relative_prediction(ref: ViewRef, extension: str = ".png") -> Path:
        return Path(ref.subject) / ref.sequence / f"frame_{ref.frame:05d}" / f"cam_{ref.camera}{extension}"

    def find_prediction(self, unit: str, ref: ViewRef) -> Path:
        """The prediction file of ``ref`` in ``unit`` (PNG preferred); the PNG path if none exists.

        A file or folder that links outside the run folder raises ``UnsafePathError``: scores must come from files
        of the run itself.
        """
        base = self.unit_dir(unit)
        for ext in PREDICTION_EXTENSIONS:
            candidate = base / self.relative_prediction(ref, ext)
            if candidate.exists() or candidate.is_symlink():
                return inside(self.root, candidate, "prediction")
        return base / self.relative_prediction(ref)

    def read_run(self) -> dict[str, Any]:
        return read_json(self.run_json)

    def write_run(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, data)

    def is_done(self, unit: str, unit_key: str) -> bool:
        path = self.info_path(unit)
        if not path.exists():
            return False
        try:
            return read_json(path).get("unit_key") == unit_key
        except (OSError, ValueError):
            return False

    def begin_unit(self, unit: str) -> Path:
        """A fresh staging folder for a unit's predictions; committed with ``commit_unit``."""
        staging_root = self.root / "predictions" / ".staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=staging_root, prefix=f"{check_name(unit, 'unit name')}."))

    def commit_unit(self, unit: str, staging: Path, info: dict[str, Any]) -> None:
        """Write info.json into the staging folder, then move the whole folder into place in one rename."""
        atomic_write_json(staging / "info.json", info)
        final = inside(self.root, self.unit_dir(unit), "unit folder")
        if final.exists():
            # Left by a run with another unit key; it is replaced, never merged.
            shutil.rmtree(final)
        os.replace(staging, final)
        self.failure_path(unit).unlink(missing_ok=True)

    def record_failure(self, unit: str, failure: dict[str, Any]) -> None:
        atomic_write_json(self.failure_path(unit), failure)

    def clean_staging(self) -> None:
        """Remove what a killed run left half-written."""
        shutil.rmtree(self.root / "predictions" / ".staging", ignore_errors=True)
