"""``harness run``: expand a protocol into units, let the method predict each, then score the run.

Each run lives in a folder named by a hash of what determines its results (method, method version, config,
dataset, protocol content and version, seed); running the same command again resumes it: finished units are
skipped, a unit that a kill interrupted is redone from scratch.
"""

from __future__ import annotations

import resource
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.method import Method
from harness.api.specs import MethodSpec, load_target
from harness.api.types import EvalUnit, RunContext, Target, View, ViewRef
from harness.checkpoints import checkpoint_summary
from harness.data.adapter import DatasetAdapter
from harness.data.errors import ProtocolError
from harness.data.protocol import Protocol, expand_with_dataset
from harness.data.resolve import dataset_root, open_dataset, resolve_protocol
from harness.imageio import write_png
from harness.jsonio import stable_hash
from harness.plugins.registry import Registry
from harness.provenance import collect, resolve_device
from harness.safepath import inside
from harness.scaleout.work import UnitOutcome, WorkerTask
from harness.store import RunStore
from harness.threads import use_cpu_threads

ProgressCallback = Callable[[str, int, int], None]


class RenderError(RuntimeError):
    """A method returned an image that breaks the contract (shape, NaN, ...)."""


@dataclass
class RunRequest:
    method: str
    dataset: str
    protocol: str | None = None
    data_root: Path | None = None
    runs_dir: Path = Path("runs")
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    executor: str = "local"
    executor_config: dict[str, str] = field(default_factory=dict)  # --executor-config k=v (over config.yaml)
    score_on: str = "driver"  # or "slurm": scoring runs as its own SLURM job
    strict_metrics: bool = False
    metric_precision: str = "fp32"  # fp32, tf32 or bf16 for the network metrics (harness.scoring.precision)
    wait: bool = False  # another process holds the run folder's lock: wait for it (else refuse at once)
    command: str = ""  # what started the run, written into the lock file for a second run to name


@dataclass
class PreparedRun:
    request: RunRequest
    spec: MethodSpec
    protocol: Protocol
    adapter: DatasetAdapter
    units: list[EvalUnit]
    config: dict[str, Any]
    identity: dict[str, Any]
    run_id: str
    store: RunStore
    skipped: dict[str, str] = field(default_factory=dict)  # unit -> why the method cannot take it

    def unit_key(self, unit: EvalUnit) -> str:
        return stable_hash({"run": self.identity, "unit": unit.as_dict()})

    @cached_property
    def units_by_name(self) -> dict[str, EvalUnit]:
        return {u.name: u for u in self.units}


@dataclass
class PredictSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    method_seconds: float = 0.0


def prepare(request: RunRequest, registry: Registry) -> PreparedRun:
    spec = registry.method(request.method)
    dataset_spec = registry.dataset(request.dataset)
    protocol = resolve_protocol(dataset_spec, request.protocol)
    adapter = open_dataset(dataset_spec, request.data_root, protocol, generate=True)
    config = {**spec.default_config, **request.config}
    units, listing = expand_with_dataset(protocol, adapter)
    if not units:
        where = getattr(adapter, "root", None) or dataset_root(dataset_spec, request.data_root)
        raise ProtocolError(f"protocol {protocol.label} of dataset {dataset_spec.name} gives 0 units on "
                            f"{where or 'the dataset'}: its subjects, sequences, frames or cameras match nothing "
                            f"there; nothing to run (check the folder with `harness datasets check "
                            f"{dataset_spec.name}`)")
    identity = {
        "method": spec.name,
        "method_version": spec.version,
        "config": config,
        "dataset": dataset_spec.name,
        "protocol": protocol.identity(),
        "seed": request.seed,
    }
    if listing is not None:  # units depend on the folder's contents: the run is tied to what it held
        identity["dataset_listing"] = listing
    run_id = f"{spec.name}-{stable_hash(identity, 10)}"
    store = RunStore(Path(request.runs_dir) / f"{dataset_spec.name}.{protocol.name}" / run_id)
    tracked = getattr(adapter, "tracking", None) is not None and _has_tracking(adapter, units)
    skipped = {u.name: why for u in units
               if (why := capability_skip(spec.capabilities, u, tracked)) is not None}
    if len(skipped) == len(units):
        kinds = sorted({u.kind for u in units})
        raise ProtocolError(f"method {spec.name} can take none of the {len(units)} units of protocol "
                          f"{protocol.label} ({', '.join(kinds)}): {next(iter(skipped.values()))}")
    return PreparedRun(request, spec, protocol, adapter, units, config, identity, run_id, store, skipped)


REENACTMENT_KINDS = ("self_reenactment", "cross_reenactment")


def _has_tracking(adapter: Any, units: list[EvalUnit]) -> bool:
    """Whether the dataset ships head tracking for the reenactment units' targets (asked of one target)."""
    reenactment = [u for u in units if u.kind in REENACTMENT_KINDS and u.targets]
    if not reenactment:
        return True
    ref = reenactment[0].targets[0]
    try:
        return adapter.tracking(ref.subject, ref.sequence, ref.frame) is not None
    except Exception:  # unreadable tracking is the unit's own failure, reported when it runs
        return True


def capability_skip(capabilities: Any, unit: EvalUnit, tracked: bool = True) -> str | None:
    """Why a method with ``capabilities`` cannot take ``unit`` (it is skipped and reported so), or None.

    ``tracked``: whether the dataset has head tracking to drive reenactment targets with."""
    if capabilities.floor_baseline:
        return None
    if unit.kind in REENACTMENT_KINDS and capabilities.animatable and not tracked:
        return ("skipped: reenactment drives the avatar with the dataset's head tracking, and this dataset ships "
                "none for these frames")
    if unit.kind in REENACTMENT_KINDS and not capabilities.animatable:
        return f"skipped: {unit.kind.replace('_', '-')} needs an animatable method; this one is static"
    if capabilities.inputs == "one" and len(unit.sources) > 1:
        return f"skipped: a one-shot method takes one source view; this unit has {len(unit.sources)}"
    return None


def run_record(prepared: PreparedRun, registry: Registry, device: str) -> dict[str, Any]:
    plugin_versions = {p.name: p.version for p in registry.plugins}
    request = prepared.request
    root = dataset_root(registry.dataset(request.dataset), request.data_root)
    return {
        "run_id": prepared.run_id,
        "method": prepared.spec.name,
        "method_version": prepared.spec.version,
        "method_plugin": registry.owner("methods", prepared.spec.name),
        "config": prepared.config,
        "dataset": request.dataset,
        "data_root": str(getattr(prepared.adapter, "root", root or "")),
        "protocol": prepared.protocol.name,
        "protocol_version": prepared.protocol.version,
        "protocol_content": prepared.protocol.raw,
        "dataset_listing": prepared.identity.get("dataset_listing"),
        "seed": request.seed,
        "units": len(prepared.units),
        "skipped_units": prepared.skipped,
        # where the units ran; not part of the run's identity: every executor gives the same table
        "executor": {"name": request.executor, "options": request.executor_config, "score_on": request.score_on},
        "provenance": collect(device, plugin_versions),
    }


def unit_seed(seed: int, unit: EvalUnit) -> int:
    """A per-unit seed that depends on the unit, not on the order units happen to run in."""
    return int(stable_hash({"seed": seed, "unit": unit.name}, 8), 16)


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _peak_memory_mb(device: str) -> dict[str, float]:
    import torch

    out = {"process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.startswith("cuda") and torch.cuda.is_available():
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def check_render(image: Any, target: Target, unit: str) -> np.ndarray:
    where = f"unit {unit}, target {target.ref.subject}/{target.ref.sequence}/frame {target.ref.frame}/" \
            f"camera {target.ref.camera}"
    array = np.asarray(image, dtype=np.float32)
    expected = (target.camera.height, target.camera.width)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[:2] != expected:
        raise RenderError(f"{where}: rendered shape {array.shape}, expected {(*expected, 3)} or "
                          f"{(*expected, 4)}")
    if not np.isfinite(array).all():
        raise RenderError(f"{where}: rendered image contains NaN or infinite values")
    return np.clip(array, 0.0, 1.0)


def frame_tracking(adapter: Any, ref: ViewRef) -> dict[str, Any] | None:
    """Head parameters of a view's frame, when the dataset ships tracking (an adapter's optional ``tracking``)."""
    tracking = getattr(adapter, "tracking", None)
    return tracking(ref.subject, ref.sequence, ref.frame) if tracking is not None else None


def with_tracking(view: View, adapter: Any) -> View:
    if view.tracking is None:
        view.tracking = frame_tracking(adapter, view.ref)
    return view


def predict_unit(prepared: PreparedRun, method: Method, unit: EvalUnit, device: str) -> float:
    """Run the method on one unit and commit its predictions; returns seconds spent inside the method."""
    import torch

    store, adapter = prepared.store, prepared.adapter
    seed = unit_seed(prepared.request.seed, unit)
    _seed_everything(seed)
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    sources = [with_tracking(adapter.load_view(ref), adapter) for ref in unit.sources]
    targets = [Target(ref, adapter.camera(ref.subject, ref.sequence, ref.frame, ref.camera),
                      driving=frame_tracking(adapter, ref)) for ref in unit.targets]
    if prepared.spec.capabilities.needs_tracking:
        untracked = [v.ref for v in sources if v.tracking is None] + [t.ref for t in targets if t.driving is None]
        if untracked:
            raise RenderError(f"unit {unit.name}: method {prepared.spec.name} needs head tracking, which the dataset "
                              f"does not provide for {untracked[0]} ({len(untracked)} views)")
    staging = store.begin_unit(unit.name)
    try:
        t0 = time.perf_counter()
        avatar = method.reconstruct(sources)
        t1 = time.perf_counter()
        images = method.render(avatar, targets)
        t2 = time.perf_counter()
        if len(images) != len(targets):
            raise RenderError(f"unit {unit.name}: method returned {len(images)} images for {len(targets)} targets")
        written = []
        for target, image in zip(targets, images, strict=True):
            array = check_render(image, target, unit.name)
            alpha = array[..., 3] if array.shape[2] == 4 else None
            relative = RunStore.relative_prediction(target.ref)
            write_png(inside(staging, staging / relative, "prediction"), array[..., :3], alpha)
            written.append(relative.as_posix())
        info = {
            "unit": unit.name,
            "unit_key": prepared.unit_key(unit),
            "method": prepared.spec.name,
            "method_version": prepared.spec.version,
            "config": prepared.config,
            "seed": seed,
            "checkpoint_sha256": getattr(method, "checkpoint_sha256", None)
            or getattr(getattr(method, "checkpoint", None), "sha256", None),
            "checkpoint": checkpoint_summary(getattr(method, "checkpoint", None)),
            "timings_s": {"reconstruct": t1 - t0, "render": t2 - t1},
            "memory": _peak_memory_mb(device),
            "targets": len(targets),
            "files": written,  # resume counts the unit done only while every one of these is present
        }
        store.commit_unit(unit.name, staging, info)
        return t2 - t0
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_method(spec: MethodSpec, device: str, config: Mapping[str, Any],
                context: RunContext | None = None) -> Method:
    """Construct and load a method; ``context`` (which dataset and protocol) is set as ``run_context`` first."""
    method = load_target(spec.target)()
    if context is not None:
        method.run_context = context
    method.load(device, config)
    return method


def run_context(prepared: PreparedRun, registry: Registry) -> RunContext:
    dataset = registry.dataset(prepared.request.dataset)
    return RunContext(dataset=dataset.name, protocol=prepared.protocol.name,
                      synthetic_subjects=dataset.synthetic_subjects)


def predict_named_units(prepared: PreparedRun, method: Method, names: list[str], device: str,
                        attempt: str = "") -> Iterator[UnitOutcome]:
    """Predict the named units one after another with a loaded method; a unit's failure is recorded in
    ``failures/`` (tagged with ``attempt``) and yielded, never raised. This is the loop every executor runs."""
    for name in names:
        unit = prepared.units_by_name[name]
        try:
            yield UnitOutcome(name, predict_unit(prepared, method, unit, device))
        except Exception as err:
            message = str(err) if isinstance(err, RenderError) else f"{type(err).__name__}: {err}"
            prepared.store.record_failure(name, {"unit": name, "error": message, "attempt": attempt,
                                                 "traceback": traceback.format_exc()})
            yield UnitOutcome(name, 0.0, message)


def needs_predicting(prepared: PreparedRun, unit: EvalUnit) -> bool:
    """Neither skipped by the method's capabilities nor committed and complete."""
    return unit.name not in prepared.skipped and not prepared.store.is_done(unit.name, prepared.unit_key(unit),
                                                                            unit.targets)


def pending_units(prepared: PreparedRun) -> list[EvalUnit]:
    return [u for u in prepared.units if needs_predicting(prepared, u)]


def predict(prepared: PreparedRun, registry: Registry, device: str,
            progress: ProgressCallback | None = None) -> PredictSummary:
    from harness.executors import ExecutionPlan, executor_options

    request, store = prepared.request, prepared.store
    executor_spec = registry.executor(request.executor)
    summary = PredictSummary()
    pending = pending_units(prepared)
    summary.skipped = len(prepared.units) - len(pending)
    if progress:
        progress("predict", summary.skipped, len(prepared.units))
    if not pending:
        return summary
    executor = load_target(executor_spec.target)()
    loaded: list[Method] = []

    def in_process(names: list[str]) -> Iterator[UnitOutcome]:
        if not loaded:
            t0 = time.perf_counter()
            loaded.append(load_method(prepared.spec, device, prepared.config, run_context(prepared, registry)))
            summary.method_seconds += time.perf_counter() - t0
        yield from predict_named_units(prepared, loaded[0], names, device)

    plan = ExecutionPlan(
        task=WorkerTask(request=request, run_id=prepared.run_id, device=device, units=()),
        units=[u.name for u in pending], run_dir=store.root,
        options=executor_options(executor_spec.name, request.executor_config),
        in_process=in_process, committed=lambda name: _committed_seconds(prepared, name),
        failure=lambda name, attempt: _recorded_failure(prepared, name, attempt))
    for outcome in executor.run(plan):
        summary.method_seconds += outcome.seconds
        if outcome.error is None:
            summary.done += 1
        else:
            summary.failed.append((outcome.unit, outcome.error))
        if progress:
            progress("predict", summary.skipped + summary.done + len(summary.failed), len(prepared.units))
    return summary


def _committed_seconds(prepared: PreparedRun, name: str) -> float | None:
    from harness.jsonio import read_json

    unit = prepared.units_by_name[name]
    if not prepared.store.is_done(name, prepared.unit_key(unit), unit.targets):
        return None
    try:
        timings = read_json(prepared.store.info_path(name)).get("timings_s") or {}
        return float(sum(float(v) for v in timings.values()))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def _recorded_failure(prepared: PreparedRun, name: str, attempt: str) -> str | None:
    from harness.jsonio import read_json

    try:
        record = read_json(prepared.store.failure_path(name))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("attempt") != attempt:
        return None
    return str(record.get("error") or "failed")


def run(request: RunRequest, registry: Registry, progress: ProgressCallback | None = None,
        notify: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Predict every unit, score the run, write its summary; returns what the CLI prints.

    The whole run, scoring included, holds the run folder's lock: a second run of the same command is refused
    with the holder named (``RunLockedError``), or waits for it with ``request.wait`` (``notify`` is told whom it
    waits for).
    """
    wall0 = time.perf_counter()
    import torch  # noqa: F401  (timed on its own: a fixed start-up cost, not per-unit overhead)

    startup = time.perf_counter() - wall0
    device = resolve_device(request.device)
    threads = use_cpu_threads() if device == "cpu" else None
    prepared = prepare(request, registry)
    asked = time.perf_counter()
    with prepared.store.lock(wait=request.wait, command=request.command, on_wait=notify):
        waited = time.perf_counter() - asked  # time spent waiting for another run is not this run's time
        return _run_locked(prepared, registry, device, progress, wall0 + waited, startup, threads)


def _run_locked(prepared: PreparedRun, registry: Registry, device: str, progress: ProgressCallback | None,
                wall0: float, startup: float, threads: Any) -> dict[str, Any]:
    from harness.report.summary import write_run_report, write_summary
    from harness.scoring.scorer import score_run

    request, store = prepared.request, prepared.store
    record = run_record(prepared, registry, device)
    store.write_run(record)
    predicted = predict(prepared, registry, device, progress)
    if request.score_on == "slurm":  # the job fills the score cache; the driver's pass below then reads it
        from harness.executors import executor_options
        from harness.scaleout.slurm import score_as_job

        score_as_job(store.root, executor_options("slurm", request.executor_config), request.device,
                     {"strict": request.strict_metrics, "metric_precision": request.metric_precision})
    scored = score_run(store.root, registry, device=device, adapter=prepared.adapter, progress=progress,
                       strict=request.strict_metrics, metric_precision=request.metric_precision)
    record["failed_units"] = [{"unit": u, "error": e} for u, e in predicted.failed]
    record["metric_identities"] = scored.metric_identities  # incl. the sha256 of every metric weight file
    record["checkpoints"] = store.checkpoints_used()
    record["synthetic_demo"] = any(c.get("synthetic_demo") for c in record["checkpoints"])
    store.write_run(record)
    report, site = write_run_report(store.root, registry)
    wall = time.perf_counter() - wall0
    compute = predicted.method_seconds + scored.metric_seconds
    other = wall - startup - compute
    record["timing"] = {
        "wall_s": wall,
        "torch_import_s": startup,
        "method_s": predicted.method_seconds,
        "metrics_s": scored.metric_seconds,
        "other_s": other,
        "other_share": other / wall if wall > 0 else 0.0,
        "cpu_threads": threads,
        "units_predicted": predicted.done,
        "units_skipped": predicted.skipped,
    }
    store.write_run(record)
    write_summary(store.root, registry)  # again, now that the run's time split is known (a page, no site)
    return {"prepared": prepared, "predicted": predicted, "scored": scored, "report": report, "site": site,
            "record": record}
