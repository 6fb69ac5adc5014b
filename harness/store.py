"""The on-disk layout of one run, and the atomic operations that make a killed run resumable.

    RUN_DIR/
      run.json                                identity, config, provenance (written at start, updated at end)
      .lock                                   flock'ed by the one run that works in the folder (holder inside)
      predictions/{unit}/info.json            written last: with every file it lists, marks the unit done
      predictions/{unit}/{subject}/{sequence}/frame_{t:05d}/cam_{camera}.png
      failures/{unit}.json                    why a unit produced no predictions (retried on resume)
      scores/{unit}.parquet                   per-unit metric rows (reused while prediction hashes match)
      metrics.parquet                         the long table: every row of every unit
      images.parquet                          per image: prediction file, sha256 of prediction and ground truth
      scoring_errors.json                     images that could not be scored, with the reason
      report/index.html                       the run summary
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.api.types import ViewRef
from harness.jsonio import atomic_write_json, read_json
from harness.safepath import check_name, inside

PREDICTION_EXTENSIONS = (".png", ".npy", ".jpg")
LOCK_FILE = ".lock"


class RunFolderError(ValueError):
    """A run folder's own file (run.json, a table) is unreadable or malformed; the message names the file."""


class RunLockedError(RunFolderError):
    """Another process holds the run folder's lock; the message names the holder (pid, host, start time)."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (started {info.get('started', '?')}: "
                f"{info.get('command') or 'harness'})")
    except (OSError, ValueError, AttributeError):
        return "another process (its details are not written yet)"


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

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    @contextmanager
    def lock(self, wait: bool = False, command: str = "",
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the run folder's exclusive lock (``fcntl.flock`` on ``.lock``) for the length of the block.

        The holder's pid, host and start time are written into the lock file. If another process holds it, raise
        ``RunLockedError`` naming that holder, or with ``wait`` tell ``on_wait`` who holds it and block until it is
        released. The lock goes with the process: a killed run never leaves a stale lock behind.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = _holder(self.lock_path)
                if not wait:
                    raise RunLockedError(f"run folder {self.root} is in use by {holder}; wait for it to finish, "
                                         "or pass --wait to wait for it") from None
                if on_wait is not None:
                    on_wait(f"run folder {self.root} is in use by {holder}; waiting for it to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock; the file stays (removing it would let two processes lock two files)

    def read_run(self) -> dict[str, Any]:
        try:
            data = read_json(self.run_json)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{self.run_json} is not readable JSON ({err}); it is the run's record: restore "
                                 "it, or delete the run folder and run again") from None
        if not isinstance(data, dict):
            raise RunFolderError(f"{self.run_json} holds a {type(data).__name__}, not the run's record (a mapping)")
        return data

    def checkpoints_used(self) -> list[dict[str, Any]]:
        """The distinct checkpoints the run's units were predicted with (from their ``info.json``)."""
        seen: dict[str, dict[str, Any]] = {}
        for path in sorted(self.root.glob("predictions/*/info.json")):
            try:
                summary = read_json(path).get("checkpoint")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(summary, dict) and summary.get("sha256"):
                seen.setdefault(str(summary["sha256"]), summary)
        return list(seen.values())

    def recorded_checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoints ``run.json`` records, else (a run scored but never finished by ``harness run``) the
        units' own records."""
        try:
            recorded = self.read_run().get("checkpoints") if self.run_json.exists() else None
        except RunFolderError:
            recorded = None
        if isinstance(recorded, list):
            return [c for c in recorded if isinstance(c, dict)]
        return self.checkpoints_used()

    def write_run(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, data)

    def is_done(self, unit: str, unit_key: str, targets: Sequence[ViewRef] | None = None) -> bool:
        """Whether ``unit`` is committed for ``unit_key`` and complete: every file its info.json lists (and, with
        ``targets``, exactly one prediction per target) is present as a file. A unit missing any is redone."""
        path = self.info_path(unit)
        if not path.exists():
            return False
        try:
            info = read_json(path)
        except (OSError, ValueError):
            return False
        if not isinstance(info, dict) or info.get("unit_key") != unit_key:
            return False
        listed = info.get("files")
        if listed is not None and (not isinstance(listed, list) or not all(isinstance(f, str) for f in listed)):
            return False
        base = self.unit_dir(unit)
        if targets is not None:
            expected = sorted(self.relative_prediction(ref).as_posix() for ref in targets)
            if listed is not None and sorted(listed) != expected:
                return False
            listed = expected
        for name in listed or []:
            try:
                if not inside(self.root, base / name, "prediction").is_file():
                    return False
            except ValueError:
                return False
        return True

    def begin_unit(self, unit: str) -> Path:
        """A fresh staging folder for a unit's predictions; committed with ``commit_unit``.

        What a killed attempt at the same unit left half-written is removed first. Only the unit's own leftovers:
        workers of one run (local processes, SLURM tasks) stage different units side by side, and each unit is
        given to one worker at a time."""
        staging_root = self.root / "predictions" / ".staging" / check_name(unit, "unit name")
        shutil.rmtree(staging_root, ignore_errors=True)
        staging_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=staging_root))

    def commit_unit(self, unit: str, staging: Path, info: dict[str, Any]) -> None:
        """Write info.json into the staging folder, then move the whole folder into place in one rename."""
        atomic_write_json(staging / "info.json", info)
        final = inside(self.root, self.unit_dir(unit), "unit folder")
        if final.exists():
            # Left by a run with another unit key; it is replaced, never merged.
            shutil.rmtree(final)
        os.replace(staging, final)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # the unit's own staging folder, empty now
        self.failure_path(unit).unlink(missing_ok=True)

    def record_failure(self, unit: str, failure: dict[str, Any]) -> None:
        atomic_write_json(self.failure_path(unit), failure)

    def clean_staging(self) -> None:
        """Remove everything a killed run left half-written (only while no worker of the run is running)."""
        shutil.rmtree(self.root / "predictions" / ".staging", ignore_errors=True)
