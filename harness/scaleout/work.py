"""The worker contract: a picklable task naming a run and some of its units, and the module-level function that
runs it in any process (a local worker, a SLURM array task)."""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.runner import RunRequest


@dataclass(frozen=True)
class UnitOutcome:
    """What became of one unit: ``error`` None when it was committed; ``lost`` when its worker died or its job
    ended before it ran (nothing is recorded in ``failures/``: the next run does it)."""

    unit: str
    seconds: float = 0.0
    error: str | None = None
    lost: bool = False


@dataclass(frozen=True)
class WorkerTask:
    """A run (the request that made it and the id it must resolve to) and the names of the units to predict."""

    request: RunRequest
    run_id: str
    device: str
    units: tuple[str, ...]
    attempt: str = ""  # tags failures/ records, so a driver tells this attempt's failures from older ones
    threads: int | None = None  # CPU threads for torch in the worker (None: the harness default)

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        request = asdict(self.request)
        request["runs_dir"] = str(self.request.runs_dir)
        request["data_root"] = str(self.request.data_root) if self.request.data_root is not None else None
        return {"request": request, "run_id": self.run_id, "device": self.device, "units": list(self.units),
                "attempt": self.attempt, "threads": self.threads}

    @staticmethod
    def from_json(data: dict[str, Any]) -> WorkerTask:
        from pathlib import Path

        from harness.runner import RunRequest

        request = dict(data["request"])
        request["runs_dir"] = Path(request["runs_dir"])
        request["data_root"] = Path(request["data_root"]) if request.get("data_root") else None
        return WorkerTask(RunRequest(**request), data["run_id"], data["device"], tuple(data["units"]),
                          data.get("attempt", ""), data.get("threads"))


class WorkerSession:
    """A worker's view of the run: prepared from the request (the same expansion the driver made, checked against
    its run id) with the method loaded once, on this process's device."""

    def __init__(self, task: WorkerTask) -> None:
        from harness.plugins.registry import get_registry
        from harness.provenance import resolve_device
        from harness.runner import load_method, prepare, run_context

        self.device = resolve_device(task.device)  # "auto" is resolved where the worker runs (a GPU node)
        self.task = task
        if not self.device.startswith("cuda"):
            _set_threads(task.threads)
        registry = get_registry()
        self.prepared = prepare(task.request, registry)
        if self.prepared.run_id != task.run_id:
            raise RuntimeError(f"this worker resolves the run to {self.prepared.run_id}, the driver to {task.run_id}: "
                               "the dataset folder, protocol or plugins differ between the driver's machine and this "
                               "one; nothing was predicted")
        self.method = load_method(self.prepared.spec, self.device, self.prepared.config,
                                  run_context(self.prepared, registry))

    def predict(self, names: list[str]) -> list[UnitOutcome]:
        """Predict the named units in order. One already committed (a task re-submitted after a partial job) is
        reported done, not redone; only the named units' folders are looked at."""
        from harness.runner import needs_predicting, predict_named_units

        out: list[UnitOutcome] = []
        for name in names:
            unit = self.prepared.units_by_name.get(name)
            if unit is None:
                out.append(UnitOutcome(name, 0.0, f"unit {name} is not a unit of run {self.task.run_id}"))
            elif not needs_predicting(self.prepared, unit):
                out.append(UnitOutcome(name))
            else:
                out += predict_named_units(self.prepared, self.method, [name], self.device, self.task.attempt)
        return out


def run_task(task: WorkerTask) -> list[UnitOutcome]:
    """Predict a task's units in this process; every error comes back as an outcome, none is raised.

    Raising would make an executor treat the whole task as failed (and submitit's debug executor would stop in
    ``pdb.post_mortem``); a unit's own failure is already in ``failures/``."""
    with _stop_on_sigterm():
        try:
            return WorkerSession(task).predict(list(task.units))
        except Exception as err:
            detail = f"{type(err).__name__}: {err}"
            return [UnitOutcome(n, 0.0, f"worker failed: {detail}\n{traceback.format_exc()}") for n in task.units]


class TerminatedError(SystemExit):
    """SIGTERM reached a worker (``scancel``, a time limit): it stops at once, the unit in flight uncommitted."""


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """End the task on SIGTERM instead of letting it run on.

    submitit treats SIGTERM as a preemption warning and carries on, so a cancelled task would go on committing units
    for SLURM's KillWait after the driver was told it ended; the unit in flight is discarded (its staging folder
    removed) and nothing more is committed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise TerminatedError(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _set_threads(threads: int | None) -> None:
    from harness.threads import use_cpu_threads

    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    else:
        use_cpu_threads()
