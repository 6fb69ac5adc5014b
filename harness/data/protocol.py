"""Versioned evaluation protocols, read from YAML files under ``datasets/``, expanded into units.

A protocol file::

    name: demo            # unique per dataset
    version: 1            # bump whenever the units or the preprocessing change
    dataset: demo
    description: ...
    subjects: ["901", "902"]
    background: [1.0, 1.0, 1.0]   # compositing colour of the masked metrics
    tasks:
      - kind: novel_view            # one unit per (subject, sequence, frame)
        sequences: [EXP-1-head]
        frames: [0, 3]
        source_cameras: ["222200037"]
        target_cameras: ["222200040", "220700191"]
      - kind: self_reenactment      # one unit per (subject, sequence): source frame(s) -> other frames
        sequences: [EXP-1-head]
        source_frame: 0             # or source_frames: [0, 40, 80], or the few-shot rule below
        source_cameras: ["222200037"]
        frames: [1, 2, 3]
        target_cameras: ["222200037", "222200040"]
      - kind: in_the_wild           # one unit per photo; reference-free metrics only
        photos: all                 # every photo the dataset holds for the protocol's subjects, or a list
        target_yaws: [-60, -30, 0, 30, 60]   # rendered on the protocol's `orbit` cameras

Optional top-level sections: ``preprocess`` (crop, resolution, compositing; see ``harness.data.preprocess``) and,
for in-the-wild protocols, ``orbit`` (``distance``, ``fov_deg``, ``pitch_deg``). A task may carry its own
``subjects`` (a subset of the protocol's), e.g. one sequence per participant. ``subjects: all`` (in-the-wild only)
takes every subject the dataset holds.

Rules resolved against the dataset (their answers are recorded in ``run.json`` as ``dataset_listing``, so
scoring and reports expand the same units): ``subjects: all``, ``sequences: all``, ``photos: all``;
``frames: {evenly_spaced: N}`` (N frames spread over the sequence's frames by the rule below, source frames
excluded); ``target_cameras: {nearest_yaws: [degrees]}`` (for each yaw, the closest not yet chosen camera, measured
around the rig's up axis from the first source camera; positive = towards the head's left).

Few-shot rule (``k_inputs: k`` with ``source_pool: [frames]`` on a self-reenactment task): the k source frames
are the pool's frames at positions ``i * (n - 1) / (k - 1)`` rounded half up, for i = 0..k-1 (k = 1: the pool's
first frame), seen from every source camera; n is the pool's size. Evenly spread, deterministic, both ends
included. Without ``source_pool`` the pool is the sequence's frames in the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from typing import Protocol as TypingProtocol

import yaml

from harness.api.types import EvalUnit, ViewRef
from harness.data.errors import ProtocolError
from harness.data.preprocess import Orbit, Preprocessing, orbit_id, parse_preprocessing
from harness.safepath import UnsafePathError, check_name

UNIT_KINDS = ("novel_view", "self_reenactment", "in_the_wild")
ALL = "all"
PHOTO_CAMERA = "photo"


class DatasetListing(TypingProtocol):
    """What expanding data-dependent parts of a protocol needs from a dataset (``all``, frame and camera rules)."""

    def subjects(self) -> list[str]: ...

    def photos(self, subject: str) -> list[str]: ...

    def sequences(self, subject: str) -> list[str]: ...

    def frames(self, subject: str, sequence: str) -> list[int]: ...

    def cameras_at_yaws(self, subject: str, reference: str, yaws: Sequence[float]) -> list[str]: ...


@dataclass(frozen=True)
class Task:
    kind: str
    sequences: tuple[str, ...] = ()
    frames: tuple[int, ...] = ()
    source_cameras: tuple[str, ...] = ()
    target_cameras: tuple[str, ...] = ()
    source_frames: tuple[int, ...] = ()
    subjects: tuple[str, ...] = ()  # empty: all of the protocol's subjects
    photos: tuple[str, ...] | None = None  # in_the_wild: None = every photo of the subject
    target_yaws: tuple[float, ...] = ()
    k_inputs: int | None = None
    frame_count: int | None = None  # frames: {evenly_spaced: N} over the sequence's frames in the dataset
    frame_rounding: str = "half_up"  # or "truncate": np.linspace(0, n - 1, N, dtype=int), as the NeRSemble paper
    camera_yaws: tuple[float, ...] = ()  # target_cameras: {nearest_yaws: [...]} relative to the first source camera


def few_shot_frames(pool: Sequence[int], k: int, rounding: str = "half_up") -> tuple[int, ...]:
    """The documented few-shot rule: k frames evenly spread over the pool, both ends included; positions rounded
    half up, or truncated (``rounding="truncate"``: ``np.linspace(0, n - 1, k, dtype=int)``, the NeRSemble paper's
    frame choice)."""
    if k < 1 or k > len(pool):
        raise ProtocolError(f"k_inputs={k} needs between 1 and {len(pool)} frames in source_pool")
    if k == 1:
        return (pool[0],)
    n = len(pool)
    if rounding == "truncate":  # numpy's own arithmetic, so a position never lands on the other side of an integer
        import numpy as np

        return tuple(pool[int(i)] for i in np.linspace(0, n - 1, k, dtype=int))
    return tuple(pool[int(i * (n - 1) / (k - 1) + 0.5)] for i in range(k))


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    dataset: str
    subjects: tuple[str, ...]
    tasks: tuple[Task, ...]
    description: str = ""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    preprocess: Preprocessing = field(default_factory=Preprocessing)
    orbit: Orbit | None = None
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def needs_dataset_listing(self) -> bool:
        return self.subjects == (ALL,) or any(
            (t.kind == "in_the_wild" and t.photos is None) or t.frame_count or t.camera_yaws or t.sequences == (ALL,)
            or (t.k_inputs and not t.source_frames) for t in self.tasks)

    def units(self, dataset: DatasetListing | None = None) -> list[EvalUnit]:
        """The protocol's units; ``dataset`` lists subjects and photos where the protocol says ``all``."""
        if self.needs_dataset_listing and dataset is None:
            raise ProtocolError(f"{self.path}: 'all' subjects or photos can only be expanded with the dataset open")
        units = list(_expand(self, dataset))
        _check_unit_names(units, self.path)
        names = [u.name for u in units]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ProtocolError(f"{self.path}: protocol yields duplicate unit names {duplicates}")
        return units

    def identity(self) -> dict[str, Any]:
        """What identifies the protocol in run ids: name, version and its full content."""
        return {"name": self.name, "version": self.version, "dataset": self.dataset, "content": self.raw}


def _check_unit_names(units: list[EvalUnit], where: str) -> None:
    """Every name that becomes a path component (unit, subject, sequence, camera), whether the protocol file or the
    dataset's listing supplied it, is checked here, once, before anything is written."""
    try:
        for unit in units:
            for ref in (*unit.sources, *unit.targets):
                check_name(ref.subject, "subject")
                check_name(ref.sequence, "sequence")
                check_name(ref.camera, "camera")
            check_name(unit.name, "unit name")
    except UnsafePathError as err:
        raise ProtocolError(f"{where}: {err}") from None


def _subjects(protocol: Protocol, dataset: DatasetListing | None) -> tuple[str, ...]:
    if protocol.subjects == (ALL,):
        assert dataset is not None
        return tuple(sorted(dataset.subjects()))
    return protocol.subjects


def _expand(protocol: Protocol, dataset: DatasetListing | None) -> Iterator[EvalUnit]:
    for subject in _subjects(protocol, dataset):
        for task in protocol.tasks:
            if task.subjects and subject not in task.subjects:
                continue
            if task.kind == "in_the_wild":
                yield from _wild_units(task, subject, dataset)
                continue
            sequences = task.sequences
            if sequences == (ALL,):
                assert dataset is not None
                sequences = tuple(dataset.sequences(subject))
            for sequence in sequences:
                frames, target_cameras, source_frames = task.frames, task.target_cameras, task.source_frames
                if task.k_inputs and not source_frames:
                    assert dataset is not None
                    source_frames = few_shot_frames(dataset.frames(subject, sequence), task.k_inputs)
                if task.frame_count:
                    assert dataset is not None
                    pool = [f for f in dataset.frames(subject, sequence) if f not in source_frames]
                    frames = few_shot_frames(pool, task.frame_count, task.frame_rounding)
                if task.camera_yaws:
                    assert dataset is not None
                    target_cameras = tuple(dataset.cameras_at_yaws(subject, task.source_cameras[0],
                                                                   task.camera_yaws))
                if task.kind == "novel_view":
                    for frame in frames:
                        yield EvalUnit(
                            name=f"{subject}.{sequence}.novel_view.f{frame:05d}",
                            kind=task.kind,
                            subject=subject,
                            sources=tuple(ViewRef(subject, sequence, frame, c) for c in task.source_cameras),
                            targets=tuple(ViewRef(subject, sequence, frame, c) for c in target_cameras),
                        )
                else:
                    tag = f"k{task.k_inputs}" if task.k_inputs else f"f{source_frames[0]:05d}"
                    yield EvalUnit(
                        name=f"{subject}.{sequence}.self_reenactment.{tag}",
                        kind=task.kind,
                        subject=subject,
                        sources=tuple(ViewRef(subject, sequence, f, c) for f in source_frames
                                      for c in task.source_cameras),
                        targets=tuple(ViewRef(subject, sequence, f, c) for f in frames for c in target_cameras),
                    )


def _wild_units(task: Task, subject: str, dataset: DatasetListing | None) -> Iterator[EvalUnit]:
    if task.photos is None:
        assert dataset is not None
        photos: Sequence[str] = dataset.photos(subject)
    else:
        photos = task.photos
    for photo in photos:
        yield EvalUnit(
            name=f"{subject}.{photo}.in_the_wild",
            kind=task.kind,
            subject=subject,
            sources=(ViewRef(subject, photo, 0, PHOTO_CAMERA),),
            targets=tuple(ViewRef(subject, photo, 0, orbit_id(y)) for y in task.target_yaws),
        )


class RecordedListing:
    """Answers a dataset gave while a run's units were expanded, kept in ``run.json`` (``dataset_listing``) so
    scoring and reports expand the very same units later, whatever the folder holds by then."""

    def __init__(self, record: dict[str, Any], dataset: DatasetListing | None = None) -> None:
        self.record = record
        self.dataset = dataset  # when given, unanswered questions go to it and are recorded

    def _ask(self, key: str, question: Any) -> Any:
        if key not in self.record:
            if self.dataset is None:
                raise ProtocolError(f"run.json's dataset_listing has no answer for {key}")
            self.record[key] = question()
        return self.record[key]

    def subjects(self) -> list[str]:
        return list(self._ask("subjects", lambda: sorted(self.dataset.subjects())))  # type: ignore[union-attr]

    def sequences(self, subject: str) -> list[str]:
        return list(self._ask(f"sequences/{subject}", lambda: sorted(self.dataset.sequences(subject))))  # type: ignore[union-attr]

    def photos(self, subject: str) -> list[str]:
        return list(self._ask(f"photos/{subject}", lambda: sorted(self.dataset.photos(subject))))  # type: ignore[union-attr]

    def frames(self, subject: str, sequence: str) -> list[int]:
        return list(self._ask(f"frames/{subject}/{sequence}",
                              lambda: [int(f) for f in self.dataset.frames(subject, sequence)]))  # type: ignore[union-attr]

    def cameras_at_yaws(self, subject: str, reference: str, yaws: Sequence[float]) -> list[str]:
        key = f"cameras/{subject}/{reference}/{','.join(f'{y:g}' for y in yaws)}"
        return list(self._ask(key, lambda: list(self.dataset.cameras_at_yaws(subject, reference, yaws))))  # type: ignore[union-attr]


def expand_with_dataset(protocol: Protocol, dataset: DatasetListing) -> tuple[list[EvalUnit], dict[str, Any] | None]:
    """The protocol's units and, when they depend on the dataset's contents, the record of what it answered.

    Views the release lacks (a dataset whose reader has ``missing_views``: Ava-256's dropped frames) are dropped
    here, as the official loaders skip them: a missing target leaves its unit, a missing source drops the unit. What
    was dropped is recorded (``dropped_views``) so the run's units are replayed exactly."""
    recorder = RecordedListing({}, dataset)
    units = protocol.units(recorder) if protocol.needs_dataset_listing else protocol.units()
    check = getattr(dataset, "missing_views", None)
    if check is not None:
        refs = sorted({ref for u in units for ref in (*u.sources, *u.targets)})
        missing = check(refs)
        if missing:
            recorder.record["dropped_views"] = [{**ref.as_dict(), "why": why} for ref, why in sorted(missing.items())]
            units = drop_views(units, set(missing))
    return units, (recorder.record if recorder.record else None)


def drop_views(units: list[EvalUnit], missing: set[ViewRef]) -> list[EvalUnit]:
    out = []
    for unit in units:
        if any(ref in missing for ref in unit.sources):
            continue
        targets = tuple(ref for ref in unit.targets if ref not in missing)
        if targets:
            out.append(replace(unit, targets=targets) if len(targets) != len(unit.targets) else unit)
    return out


def run_protocol(run: dict[str, Any], where: str = "run.json") -> tuple[Protocol, list[EvalUnit]]:
    """A run record's protocol and units, expanded as they were when the run started."""
    protocol = parse_protocol(run["protocol_content"], f"{where} (protocol_content)")
    listing = run.get("dataset_listing")
    units = protocol.units(RecordedListing(listing) if listing is not None and protocol.needs_dataset_listing
                           else None)
    dropped = (listing or {}).get("dropped_views") or []
    if dropped:
        units = drop_views(units, {ViewRef(d["subject"], d["sequence"], int(d["frame"]), d["camera"])
                                   for d in dropped})
    return protocol, units


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ProtocolError(f"{where} must be a non-empty list")
    return tuple(str(v) for v in value)


def _int_tuple(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ProtocolError(f"{where} must be a non-empty list of integers")
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{where} must be a non-empty list of integers") from None


def _parse_task(task: Any, where: str, subjects: tuple[str, ...]) -> Task:
    if not isinstance(task, dict):
        raise ProtocolError(f"{where} must be a mapping")
    kind = task.get("kind")
    if kind not in UNIT_KINDS:
        raise ProtocolError(f"{where}.kind is {kind!r}; expected one of {list(UNIT_KINDS)}")
    own_subjects = _str_tuple(task["subjects"], f"{where}.subjects") if task.get("subjects") is not None else ()
    if subjects != (ALL,):
        stray = [s for s in own_subjects if s not in subjects]
        if stray:
            raise ProtocolError(f"{where}.subjects {stray} are not among the protocol's subjects")
    if kind == "in_the_wild":
        photos = task.get("photos", ALL)
        return Task(kind=kind, subjects=own_subjects,
                    photos=None if photos == ALL else _str_tuple(photos, f"{where}.photos"),
                    target_yaws=tuple(float(y) for y in _str_tuple(task.get("target_yaws"),
                                                                    f"{where}.target_yaws")))
    common: dict[str, Any] = {
        "kind": kind,
        "subjects": own_subjects,
        "sequences": (ALL,) if task.get("sequences") == ALL else _str_tuple(task.get("sequences"),
                                                                              f"{where}.sequences"),
        "source_cameras": _str_tuple(task.get("source_cameras"), f"{where}.source_cameras"),
    }
    frames, targets = task.get("frames"), task.get("target_cameras")
    if isinstance(frames, dict):
        if (not {"evenly_spaced"} <= set(frames) <= {"evenly_spaced", "rounding"} or int(frames["evenly_spaced"]) < 1
                or frames.get("rounding", "half_up") not in ("half_up", "truncate")):
            raise ProtocolError(f"{where}.frames must be a list or {{evenly_spaced: N, rounding: half_up|truncate}} "
                                "with N >= 1")
        common["frame_count"] = int(frames["evenly_spaced"])
        common["frame_rounding"] = str(frames.get("rounding", "half_up"))
    else:
        common["frames"] = _int_tuple(frames, f"{where}.frames")
    if isinstance(targets, dict):
        if set(targets) != {"nearest_yaws"}:
            raise ProtocolError(f"{where}.target_cameras must be a list or {{nearest_yaws: [degrees]}}")
        common["camera_yaws"] = tuple(float(y) for y in _str_tuple(targets["nearest_yaws"],
                                                                   f"{where}.target_cameras.nearest_yaws"))
    else:
        common["target_cameras"] = _str_tuple(targets, f"{where}.target_cameras")
    if kind == "novel_view":
        return Task(**common)
    k = task.get("k_inputs")
    if k is not None and task.get("source_pool") is None:
        if int(k) < 1:
            raise ProtocolError(f"{where}: k_inputs must be >= 1")
        return Task(**common, k_inputs=int(k))  # the pool is the sequence's frames in the dataset
    if k is not None:
        pool = _int_tuple(task.get("source_pool"), f"{where}.source_pool")
        try:
            chosen = few_shot_frames(pool, int(k))
        except ProtocolError as err:
            raise ProtocolError(f"{where}: {err}") from None
        return Task(**common, source_frames=chosen, k_inputs=int(k))
    if task.get("source_frames") is not None:
        return Task(**common, source_frames=_int_tuple(task["source_frames"], f"{where}.source_frames"))
    return Task(**common, source_frames=(int(task.get("source_frame", 0)),))


def _parse_orbit(raw: Any, where: str) -> Orbit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: 'orbit' must be a mapping")
    try:
        return Orbit(**{k: float(v) for k, v in raw.items()})
    except TypeError as err:
        raise ProtocolError(f"{where}: orbit: {err}") from None


def parse_protocol(raw: Any, path: str = "<protocol>") -> Protocol:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: a protocol file must be a mapping")
    for key in ("name", "version", "dataset", "subjects", "tasks"):
        if key not in raw:
            raise ProtocolError(f"{path}: missing required field {key!r}")
    subjects = (ALL,) if raw["subjects"] == ALL else _str_tuple(raw["subjects"], f"{path}: subjects")
    tasks = [_parse_task(task, f"{path}: tasks[{i}]", subjects) for i, task in enumerate(raw["tasks"] or [])]
    if not tasks:
        raise ProtocolError(f"{path}: 'tasks' is empty")
    background = tuple(float(v) for v in raw.get("background", (1.0, 1.0, 1.0)))
    if len(background) != 3:
        raise ProtocolError(f"{path}: background must have 3 values")
    preprocess = parse_preprocessing(raw.get("preprocess"), path)
    orbit = _parse_orbit(raw.get("orbit"), path)
    wild = any(t.kind == "in_the_wild" for t in tasks)
    if wild and (orbit is None or preprocess.resolution is None):
        raise ProtocolError(f"{path}: in_the_wild tasks need an 'orbit' section and preprocess.resolution")
    try:
        check_name(str(raw["name"]), "protocol name")
        check_name(str(raw["dataset"]), "dataset name")
    except UnsafePathError as err:
        raise ProtocolError(f"{path}: {err}") from None
    return Protocol(
        name=str(raw["name"]),
        version=int(raw["version"]),
        dataset=str(raw["dataset"]),
        subjects=subjects,
        tasks=tuple(tasks),
        description=str(raw.get("description", "")),
        background=background,  # type: ignore[arg-type]
        preprocess=preprocess,
        orbit=orbit,
        path=path,
        raw=raw,
    )


def load_protocol(path: Path) -> Protocol:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProtocolError(f"protocol file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ProtocolError(f"{path}: not valid YAML: {err}") from None
    return parse_protocol(raw, str(path))
