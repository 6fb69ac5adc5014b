"""``--executor slurm``: a run's units as a SLURM job array, submitted through submitit.

Each array task runs ``harness.scaleout.work.run_task`` on a chunk of units (``units_per_task``, default 1) and
commits them in the run folder, which must be on a filesystem the nodes share. The driver records the jobs in
``slurm_jobs.json`` inside the run folder before and after submitting, follows units as they land (the folder is
the truth, polled every ``poll`` seconds; ``sacct`` is asked for job states every ``state_every`` seconds), and
reports every task that ended before its units were committed with its SLURM state and log path; those units are
left for the next run. The same command after the driver was killed re-attaches to the jobs still queued or running
instead of submitting their units again.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.executors import ExecutionPlan, ExecutorConfigError
from harness.jsonio import atomic_write_json, read_json
from harness.scaleout.work import UnitOutcome, WorkerTask, run_task

JOBS_FILE = "slurm_jobs.json"
KILL_GRACE_S = 2.0
OPTIONS = {
    "cluster": "slurm (default), or submitit's `local` / `debug` executors (no SLURM; for testing)",
    "partition": "SLURM partition",
    "time": "time limit per array task: minutes, M:S, H:M:S or D-H:M:S (as sbatch)",
    "gpus": "GPUs per task (--gpus-per-node)",
    "cpus": "CPUs per task; also the worker's torch thread count",
    "mem": "memory per task in GB",
    "array_parallelism": "array tasks running at once",
    "account": "SLURM account",
    "qos": "SLURM QOS",
    "sbatch": "extra sbatch flags, e.g. \"--constraint=a100 --exclusive\"",
    "units_per_task": "units per array task (default 1)",
    "name": "job name (default harness-<attempt>)",
    "poll": "seconds between looks at the run folder (default 1)",
    "state_every": "seconds between sacct calls for job states (default 5)",
}
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
               "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "UNKNOWN", "READY"}


@dataclass
class SlurmSettings:
    cluster: str = "slurm"
    parameters: dict[str, Any] = field(default_factory=dict)
    units_per_task: int = 1
    name: str = ""
    poll: float = 1.0
    state_every: float = 5.0
    threads: int = 1


def _minutes(value: str) -> int:
    """A SLURM time limit in whole minutes (rounded up), in any of sbatch's formats: M, M:S, H:M:S, D-H, D-H:M,
    D-H:M:S."""
    days, dash, clock = value.strip().partition("-")
    if not dash:
        days, clock = "0", days
    try:
        numbers = [int(p) for p in clock.split(":")]
        whole_days = int(days)
    except ValueError:
        numbers, whole_days = [], 0
    if not numbers or len(numbers) > 3 or min(numbers) < 0 or whole_days < 0:
        raise ExecutorConfigError(f"executor option time={value!r}: give minutes, M:S, H:M:S or D-H:M:S (as sbatch)")
    if dash:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = [*numbers, 0, 0][:3]
    elif len(numbers) == 3:  # H:M:S
        hours, minutes, seconds = numbers
    else:  # M, M:S
        hours, minutes, seconds = 0, numbers[0], (numbers[1:] or [0])[0]
    total = ((whole_days * 24 + hours) * 60 + minutes) * 60 + seconds
    return max(1, -(-total // 60))


def _number(key: str, value: str, kind: type = int, minimum: float = 1) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise ExecutorConfigError(f"executor option {key}={value!r} is not a number") from None
    if number < minimum:
        raise ExecutorConfigError(f"executor option {key}={value!r} must be at least {minimum}")
    return number


def _sbatch_flags(text: str) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for token in shlex.split(text):
        if not token.startswith("--") or len(token) < 3:
            raise ExecutorConfigError(f"executor option sbatch: {token!r} is not a long sbatch flag (--name[=value])")
        key, sep, value = token[2:].partition("=")
        flags[key.replace("-", "_")] = value if sep else True
    return flags


def parse_settings(options: dict[str, str]) -> SlurmSettings:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ExecutorConfigError(f"executor slurm has no option {', '.join(unknown)}. Its options: {known}")
    settings = SlurmSettings(cluster=options.get("cluster", "slurm"))
    if settings.cluster not in ("slurm", "local", "debug"):
        raise ExecutorConfigError(f"executor option cluster={settings.cluster!r}: one of slurm, local, debug")
    p = settings.parameters
    if "time" in options:
        p["timeout_min"] = _minutes(options["time"])
    if "gpus" in options:
        p["gpus_per_node"] = _number("gpus", options["gpus"], minimum=0)
    if "cpus" in options:
        p["cpus_per_task"] = settings.threads = _number("cpus", options["cpus"])
    if "mem" in options:
        p["mem_gb"] = _number("mem", options["mem"], float, minimum=0.01)
    slurm_only = {"partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos"}
    for key, name in slurm_only.items():
        if key in options:
            p[name] = options[key]
    if "array_parallelism" in options:
        p["slurm_array_parallelism"] = _number("array_parallelism", options["array_parallelism"])
    if "sbatch" in options:
        p["slurm_additional_parameters"] = _sbatch_flags(options["sbatch"])
    if settings.cluster != "slurm":
        for key in ("partition", "account", "qos", "array_parallelism", "sbatch"):
            if key in options:
                raise ExecutorConfigError(f"executor option {key} is a SLURM option; cluster={settings.cluster} "
                                          "has no SLURM")
        if settings.cluster == "debug":
            p.pop("gpus_per_node", None)  # the debug executor runs in this process, on its devices
    settings.units_per_task = _number("units_per_task", options.get("units_per_task", "1"))
    settings.poll = _number("poll", options.get("poll", "1"), float, minimum=0.01)
    settings.state_every = _number("state_every", options.get("state_every", "5"), float, minimum=0.1)
    settings.name = options.get("name", "")
    return settings


def _executor(folder: Path, settings: SlurmSettings, name: str) -> Any:
    try:
        import submitit
    except ImportError:
        raise ExecutorConfigError("executor slurm needs submitit (pip install submitit)") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=settings.cluster)
    try:
        executor.update_parameters(name=name, **settings.parameters)
    except (ValueError, TypeError) as err:
        raise ExecutorConfigError(f"executor slurm: {err}") from None
    return executor


def check_with_sbatch(executor: Any, folder: Path) -> None:
    """Refuse an unknown sbatch flag, partition, account, QOS or an impossible request before anything is submitted:
    the batch script submitit would write is given to ``sbatch --test-only``, which validates and submits nothing."""
    from submitit.slurm.slurm import _make_sbatch_string

    parameters = dict(executor._executor.parameters)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        script = Path(scratch) / "check.sh"
        script.write_text(_make_sbatch_string(command="true", folder=scratch, **parameters))
        try:
            result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True,
                                    timeout=60)
        except FileNotFoundError:
            raise ExecutorConfigError("executor slurm: sbatch is not on PATH (is this a SLURM login node?); "
                                      "nothing was submitted") from None
        except subprocess.TimeoutExpired:
            raise ExecutorConfigError("executor slurm: `sbatch --test-only` did not answer in 60 s (is slurmctld "
                                      "up?); nothing was submitted") from None
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split()) or f"exit status {result.returncode}"
        raise ExecutorConfigError(f"SLURM refused the job request ({said}); nothing was submitted. Check "
                                  "--executor-config (partition, account, qos, sbatch flags)")


class _Jobs:
    """``slurm_jobs.json``: every array task this run submitted, its units, attempt tag and last known state."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JOBS_FILE
        self.entries: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                data = read_json(self.path)
                self.entries = [e for e in data.get("tasks", []) if isinstance(e, dict)]
            except (OSError, ValueError, AttributeError):
                self.entries = []

    def save(self) -> None:
        atomic_write_json(self.path, {"tasks": self.entries})


def _state(job: Any) -> str:
    state = str(job.state or "UNKNOWN")
    return state.split()[0]  # "CANCELLED by 0" -> "CANCELLED"


def _find_submitted(name: str) -> str | None:
    """The array id of a job submitted under ``name`` whose id the driver did not live to record."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--name", name, "-o", "%A %F"], capture_output=True,
                             text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[1] if len(out) >= 2 else None


def _chunked_tasks(plan: ExecutionPlan, settings: SlurmSettings, units: list[str],
                   attempt: str) -> tuple[list[list[str]], list[WorkerTask]]:
    """The units in chunks of ``units_per_task``, and a worker task for each. The device is the one the user asked
    for (``auto`` is resolved on the node, which may have the GPU the driver lacks)."""
    size = settings.units_per_task
    chunks = [units[i:i + size] for i in range(0, len(units), size)]
    tasks = [replace(plan.task, device=plan.task.request.device, units=tuple(chunk), attempt=attempt,
                     threads=settings.threads) for chunk in chunks]
    return chunks, tasks


class SlurmExecutor:
    def run(self, plan: ExecutionPlan) -> Iterator[UnitOutcome]:
        settings = parse_settings(plan.options)
        folder = plan.run_dir / "submitit"
        folder.mkdir(parents=True, exist_ok=True)
        jobs = _Jobs(plan.run_dir)
        if settings.cluster == "debug":
            yield from self._debug(plan, settings, folder)
            return
        import submitit

        job_class = submitit.SlurmJob if settings.cluster == "slurm" else submitit.LocalJob
        pending = set(plan.units)
        live: dict[str, tuple[Any, dict[str, Any]]] = {}  # job id -> (job, entry)
        for entry in jobs.entries:
            if entry.get("state") not in LIVE_STATES | {"SUBMITTING"}:
                continue
            job_id = entry.get("job_id")
            if job_id is None and settings.cluster == "slurm":  # killed between sbatch and writing the id
                array = _find_submitted(entry["name"])
                job_id = f"{array}_{entry['index']}" if array is not None else None
            if job_id is None:
                entry["state"] = "NOT_SUBMITTED"
                continue
            entry["job_id"] = job_id
            job = job_class(folder=folder, job_id=job_id)
            live[job_id] = (job, entry)
        self._refresh(live, job_class, settings)
        for job_id in list(live):
            state = _state(live[job_id][0])
            live[job_id][1]["state"] = state
            if state not in LIVE_STATES:
                live.pop(job_id)
        attached = {u for _, entry in live.values() for u in entry["units"] if u in pending}
        if attached:
            print(f"harness: re-attached to {len(live)} SLURM task(s) still queued or running "
                  f"({len(attached)} unit(s)); not submitting those again", file=sys.stderr)
        to_submit = [u for u in plan.units if u not in attached]
        if to_submit:
            live.update(self._submit(plan, settings, folder, jobs, to_submit))
        jobs.save()
        try:
            yield from self._follow(plan, settings, jobs, live, job_class)
        except KeyboardInterrupt:
            self._interrupted(live)
            raise

    def _submit(self, plan: ExecutionPlan, settings: SlurmSettings, folder: Path, jobs: _Jobs,
                units: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
        attempt = uuid.uuid4().hex[:12]
        name = settings.name or f"harness-{attempt}"
        executor = _executor(folder, settings, name)
        if settings.cluster == "slurm":
            check_with_sbatch(executor, folder)
        chunks, tasks = _chunked_tasks(plan, settings, units, attempt)
        entries = [{"index": i, "units": chunk, "attempt": attempt, "name": name, "job_id": None,
                    "state": "SUBMITTING", "submitted": datetime.now(UTC).isoformat(timespec="seconds")}
                   for i, chunk in enumerate(chunks)]
        jobs.entries = [e for e in jobs.entries if e.get("state") in LIVE_STATES] + entries
        jobs.save()  # before sbatch: a driver killed during submission finds its jobs by name
        submitted = executor.map_array(run_task, tasks)
        out = {}
        for entry, job in zip(entries, submitted, strict=True):
            entry["job_id"], entry["state"] = job.job_id, "PENDING"
            out[job.job_id] = (job, entry)
        jobs.save()
        print(f"harness: submitted {len(chunks)} SLURM task(s) for {len(units)} unit(s) as job "
              f"{submitted[0].job_id.split('_')[0]}; logs in {folder}", file=sys.stderr)
        return out

    @staticmethod
    def _refresh(live: dict[str, tuple[Any, dict[str, Any]]], job_class: Any, settings: SlurmSettings) -> None:
        if live and settings.cluster == "slurm":
            job_class.watcher.update()  # one sacct call for every job this process watches

    def _follow(self, plan: ExecutionPlan, settings: SlurmSettings, jobs: _Jobs,
                live: dict[str, tuple[Any, dict[str, Any]]], job_class: Any) -> Iterator[UnitOutcome]:
        unit_tag = {u: entry["attempt"] for _, entry in live.values() for u in entry["units"]}
        order = {u: i for i, u in enumerate(plan.units)}
        waiting = {u for u in plan.units if u in unit_tag}
        last_state, started, first = 0.0, time.monotonic(), True
        while waiting:
            for name in sorted(waiting, key=order.__getitem__):
                seconds = plan.committed(name)
                error = None if seconds is not None else plan.failure(name, unit_tag[name])
                if seconds is not None or error is not None:
                    waiting.discard(name)
                    if first:
                        first = False
                        print(f"harness: first unit landed {time.monotonic() - started:.1f} s after the jobs were "
                              "submitted or re-attached", file=sys.stderr)
                    yield UnitOutcome(name, seconds or 0.0, error)
            if not waiting:
                break
            now = time.monotonic()
            if now - last_state >= settings.state_every:
                last_state = now
                self._refresh(live, job_class, settings)
                ended = [live.pop(job_id) for job_id, (job, _) in list(live.items()) if job.done()]
                for job, entry in ended:
                    entry["state"] = _state(job) if settings.cluster == "slurm" else "COMPLETED"
                if any(e["state"] != "COMPLETED" and set(e["units"]) & waiting for _, e in ended):
                    time.sleep(KILL_GRACE_S)  # sacct says CANCELLED at once; the process may take a moment to end
                for job, entry in ended:
                    yield from self._ended(plan, job, entry, waiting)
                if ended:
                    jobs.save()
            time.sleep(settings.poll)
        if settings.cluster == "slurm":  # record the tasks' last states (they may still be finishing)
            self._refresh(live, job_class, settings)
            for job, entry in live.values():
                entry["state"] = _state(job)
        jobs.save()

    def _ended(self, plan: ExecutionPlan, job: Any, entry: dict[str, Any],
               waiting: set[str]) -> Iterator[UnitOutcome]:
        """A task ended: its units not yet seen committed or failed are reported from its result, else as lost."""
        left = [u for u in entry["units"] if u in waiting]
        state = entry["state"]
        results: dict[str, UnitOutcome] = {}
        if state == "COMPLETED":
            try:
                results = {o.unit: o for o in job.result()}
            except Exception as err:  # the task itself failed (submitit's own error, with the log)
                state = f"FAILED ({' '.join(str(err).split())[:300]})"
        for name in left:
            waiting.discard(name)
            seconds = plan.committed(name)
            if seconds is not None:
                yield UnitOutcome(name, seconds)
            elif name in results and results[name].error is not None:
                yield results[name]
            else:
                yield UnitOutcome(name, 0.0, f"SLURM task {job.job_id} ended {state} before this unit was committed; "
                                  f"its log: {job.paths.stderr}; the unit is left for the next run", lost=True)

    def _debug(self, plan: ExecutionPlan, settings: SlurmSettings, folder: Path) -> Iterator[UnitOutcome]:
        """submitit's debug executor runs each task in this process when its result is asked for."""
        executor = _executor(folder, settings, settings.name or "harness-debug")
        _, tasks = _chunked_tasks(plan, settings, plan.units, uuid.uuid4().hex[:12])
        for job in executor.map_array(run_task, tasks):
            yield from job.result()

    @staticmethod
    def _interrupted(live: dict[str, tuple[Any, dict[str, Any]]]) -> None:
        running = [job for job, entry in live.values() if entry.get("state") in LIVE_STATES]
        if not running:
            return
        ids = sorted({job.job_id.split("_")[0] for job in running})
        answer = ""
        if sys.stdin is not None and sys.stdin.isatty():
            try:
                answer = input(f"\ncancel the {len(running)} SLURM task(s) still queued or running (job "
                               f"{', '.join(ids)})? [y/N] ").strip().lower()
            except (EOFError, KeyboardInterrupt):
                answer = ""
        if answer in ("y", "yes"):
            subprocess.run(["scancel", *ids], check=False)
            print(f"harness: cancelled SLURM job {', '.join(ids)}", file=sys.stderr)
        else:
            print(f"harness: SLURM job {', '.join(ids)} left queued/running; the same command re-attaches to it",
                  file=sys.stderr)


def score_as_job(run_dir: Path, options: dict[str, str], device: str, score_options: dict[str, Any]) -> str:
    """Score a run as its own SLURM job (``--score-on slurm``) and wait for it; returns the job id.

    ``score_options``: keyword arguments of ``score_run`` (strict, metric precision)."""
    settings = parse_settings(options)
    folder = run_dir / "submitit"
    folder.mkdir(parents=True, exist_ok=True)
    executor = _executor(folder, settings, settings.name or f"harness-score-{run_dir.name}")
    if settings.cluster == "slurm":
        check_with_sbatch(executor, folder)
    job = executor.submit(score_task, str(run_dir), device, settings.threads, score_options)
    print(f"harness: scoring as SLURM job {job.job_id}; log {job.paths.stderr}", file=sys.stderr)
    try:
        job.result()
    except Exception as err:
        raise ExecutorConfigError(f"the scoring job {job.job_id} failed: {' '.join(str(err).split())[:500]} "
                                  f"(log: {job.paths.stderr})") from None
    return str(job.job_id)


def score_task(run_dir: str, device: str, threads: int, score_options: dict[str, Any]) -> None:
    """What a scoring job runs: the scorer on the run folder (the driver then reads the cached scores)."""
    import torch

    from harness.plugins.registry import get_registry
    from harness.provenance import resolve_device
    from harness.scoring.scorer import score_run

    resolved = resolve_device(device)
    if not resolved.startswith("cuda"):
        torch.set_num_threads(max(1, threads))
    score_run(Path(run_dir), get_registry(), device=resolved, **score_options)
