"""Executors decide where units run; the driver (``harness run``) plans, waits for the units, then scores.

Built in: ``local`` (this process, one unit after another), ``workers`` (N local worker processes, one torch
thread each; ``--workers N``), ``local-gpus`` (one worker process per visible GPU) and ``slurm`` (job arrays through
submitit). Every executor yields one ``UnitOutcome`` per unit as it lands; units are committed by the workers
themselves (``harness.scaleout.work``), so a run folder is the same whichever executor filled it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.api.specs import ExecutorSpec
from harness.plugins.hookspecs import hookimpl
from harness.scaleout.work import UnitOutcome, WorkerTask


class ExecutorConfigError(ValueError):
    """An executor option that is unknown or malformed, found before anything was started or submitted."""


@dataclass
class ExecutionPlan:
    """What the driver hands an executor.

    ``task``: the run's worker task without units (``dataclasses.replace(task, units=...)`` makes one to ship);
    ``units``: the pending unit names in protocol order; ``run_dir``: the run folder (executors keep their own
    files inside it);
    ``options``: ``--executor-config`` over ``$HARNESS_HOME/config.yaml``'s section for this executor;
    ``in_process``: predicts units in the driver's own process with the method loaded there (what ``local`` uses);
    ``committed``: the seconds a committed, complete unit spent in the method, None while it is not committed;
    ``failure``: the error a worker recorded for a unit under an attempt tag, None if none (executors that watch
    the folder, like ``slurm``, use these two).
    """

    task: WorkerTask
    units: list[str]
    run_dir: Path
    options: dict[str, str]
    in_process: Callable[[list[str]], Iterator[UnitOutcome]]
    committed: Callable[[str], float | None]
    failure: Callable[[str, str], str | None]


class Executor(Protocol):
    def run(self, plan: ExecutionPlan) -> Iterator[UnitOutcome]: ...


class LocalExecutor:
    """Runs units in order in the calling process, with the method loaded there."""

    def run(self, plan: ExecutionPlan) -> Iterator[UnitOutcome]:
        if plan.options:
            raise ExecutorConfigError(f"executor local takes no options; got {', '.join(sorted(plan.options))}")
        yield from plan.in_process(plan.units)


def executor_options(name: str, given: dict[str, str]) -> dict[str, str]:
    """``$HARNESS_HOME/config.yaml``'s ``executors: {NAME: {...}}`` with ``given`` (``--executor-config``) over it."""
    import yaml

    from harness.paths import harness_home

    path = harness_home() / "config.yaml"
    base: dict[str, Any] = {}
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ExecutorConfigError(f"{path} is not valid YAML: {err}") from None
        section = (data.get("executors") or {}).get(name) if isinstance(data, dict) else None
        if section is not None and not isinstance(section, dict):
            raise ExecutorConfigError(f"{path}: executors.{name} must be a mapping of option: value")
        base = dict(section or {})
    return {str(k): str(v) for k, v in {**base, **given}.items()}


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    register(ExecutorSpec(name="local", target="harness.executors:LocalExecutor",
                          description="in this process, one unit after another"))
    register(ExecutorSpec(name="workers", target="harness.scaleout.local_workers:CpuWorkers",
                          description="N local worker processes with one torch thread each (--workers N)"))
    register(ExecutorSpec(name="local-gpus", target="harness.scaleout.local_workers:GpuWorkers",
                          description="one local worker process per visible GPU"))
    register(ExecutorSpec(name="slurm", target="harness.scaleout.slurm:SlurmExecutor",
                          description="SLURM job arrays through submitit (--executor-config partition=... gpus=...)"))
