"""Local worker processes: ``workers`` (N CPU processes, one torch thread each) and ``local-gpus`` (one process per
visible GPU). Units are handed out one at a time as workers become free, so a worker that dies (killed, out of
memory) loses only the unit it was predicting; the others finish the rest."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.executors import ExecutionPlan, ExecutorConfigError
from harness.scaleout.work import UnitOutcome


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[str]
    log: Path
    unit: str | None = None
    ready: bool = False
    alive: bool = True
    fatal: str | None = None

    def send(self, line: str) -> None:
        """One line to the worker; a worker that died is noticed by its end of output, not here."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()


def _read(worker: _Worker, messages: queue.Queue[tuple[int, dict[str, Any] | None]]) -> None:
    assert worker.process.stdout is not None
    for line in worker.process.stdout:
        try:
            messages.put((worker.index, json.loads(line)))
        except ValueError:
            continue
    messages.put((worker.index, None))


def _died(worker: _Worker, doing: str = "") -> str:
    code = worker.process.wait()
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return f"worker {worker.index} (pid {worker.process.pid}) {how}{doing} (its log: {worker.log})"


class _WorkerPool(ABC):
    device: str | None = None  # the device every worker uses (None: the run's own)

    @abstractmethod
    def slots(self, plan: ExecutionPlan) -> list[dict[str, str]]:
        """The environment of each worker; one per slot."""

    def run(self, plan: ExecutionPlan) -> Iterator[UnitOutcome]:
        envs = self.slots(plan)
        logs = plan.run_dir / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        messages: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        task = replace(plan.task, units=(), device=self.device or plan.task.device)
        workers: list[_Worker] = []
        for index, extra in enumerate(envs):
            log = logs / f"worker-{index}.log"
            handle = log.open("a")
            process = subprocess.Popen([sys.executable, "-m", "harness.scaleout.worker"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle, text=True,
                                       env={**os.environ, **extra})
            handle.close()
            worker = _Worker(index, process, log)
            worker.send(json.dumps(task.as_json()))
            threading.Thread(target=_read, args=(worker, messages), daemon=True).start()
            workers.append(worker)
        todo = list(plan.units)
        try:
            yield from self._dispatch(workers, todo, messages)
        finally:
            for worker in workers:
                if worker.process.poll() is None and worker.process.stdin is not None:
                    with contextlib.suppress(OSError):
                        worker.process.stdin.close()  # end of input: the worker exits
            for worker in workers:
                try:
                    worker.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()

    def _dispatch(self, workers: list[_Worker], todo: list[str],
                  messages: queue.Queue[tuple[int, dict[str, Any] | None]]) -> Iterator[UnitOutcome]:
        def give(worker: _Worker) -> None:
            if todo and worker.alive and worker.ready:
                worker.unit = todo.pop(0)
                worker.send(worker.unit)

        while any(w.alive for w in workers) and (todo or any(w.unit for w in workers)):
            index, message = messages.get()
            worker = workers[index]
            if message is None:
                worker.alive = False
                if worker.unit is not None:
                    yield UnitOutcome(worker.unit, 0.0, _died(worker, " while predicting this unit; the unit is "
                                                              "left for the next run"), lost=True)
                    worker.unit = None
                elif not worker.ready:
                    worker.fatal = worker.fatal or _died(worker)
                continue
            if "fatal" in message:
                worker.fatal = f"worker {index} could not start: {message['fatal']} (log: {worker.log})"
            elif "ready" in message:
                worker.ready = True
                give(worker)
            elif "unit" in message:
                outcome = UnitOutcome(**message)
                if outcome.unit == worker.unit:
                    worker.unit = None
                yield outcome
                give(worker)
        reasons = sorted({w.fatal for w in workers if w.fatal}) or ["every worker ended"]
        for name in todo:
            yield UnitOutcome(name, 0.0, f"not run: {reasons[0]}", lost=True)


def _int_option(options: dict[str, str], key: str, default: int) -> int:
    try:
        value = int(options.get(key, default))
    except ValueError:
        raise ExecutorConfigError(f"executor option {key} must be a whole number, got {options[key]!r}") from None
    if value < 1:
        raise ExecutorConfigError(f"executor option {key} must be at least 1, got {value}")
    return value


def _check_options(name: str, options: dict[str, str], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ExecutorConfigError(f"executor {name} has no option {', '.join(unknown)}; it takes "
                                  f"{', '.join(sorted(known))}")


class CpuWorkers(_WorkerPool):
    """``workers``: N CPU worker processes (option ``workers``, default 2), each with ``threads`` torch threads
    (default 1, or ``HARNESS_THREADS``)."""

    def slots(self, plan: ExecutionPlan) -> list[dict[str, str]]:
        _check_options("workers", plan.options, {"workers", "threads"})
        count = _int_option(plan.options, "workers", 2)
        threads = _int_option(plan.options, "threads", int(os.environ.get("HARNESS_THREADS") or 1))
        return [{"HARNESS_THREADS": str(threads)} for _ in range(min(count, len(plan.units)))]


class GpuWorkers(_WorkerPool):
    """``local-gpus``: one worker per GPU (option ``gpus``: comma-separated device indices, default every visible
    GPU), each seeing only its own device (``CUDA_VISIBLE_DEVICES``)."""

    device = "cuda"

    def slots(self, plan: ExecutionPlan) -> list[dict[str, str]]:
        _check_options("local-gpus", plan.options, {"gpus"})
        if plan.task.device == "cpu":
            raise ExecutorConfigError("executor local-gpus runs on GPUs; this run asked for --device cpu "
                                      "(use --workers N for CPU worker processes)")
        if "gpus" in plan.options:
            ids = [g.strip() for g in plan.options["gpus"].split(",") if g.strip()]
        else:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible is not None:
                ids = [g.strip() for g in visible.split(",") if g.strip()]
            else:
                import torch

                ids = [str(i) for i in range(torch.cuda.device_count())]
        if not ids:
            raise ExecutorConfigError("executor local-gpus found no GPU (CUDA_VISIBLE_DEVICES is empty or torch sees "
                                      "no CUDA device); use --workers N for CPU worker processes")
        return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in ids[:len(plan.units)]]
