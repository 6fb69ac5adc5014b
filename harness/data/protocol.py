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
      - kind: self_reenactment      # one unit per (subject, sequence): source frame -> other frames
        sequences: [EXP-1-head]
        source_frame: 0
        source_cameras: ["222200037"]
        frames: [1, 2, 3]
        target_cameras: ["222200037", "222200040"]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.api.types import EvalUnit, ViewRef
from harness.data.errors import ProtocolError

UNIT_KINDS = ("novel_view", "self_reenactment")


@dataclass(frozen=True)
class Task:
    kind: str
    sequences: tuple[str, ...]
    frames: tuple[int, ...]
    source_cameras: tuple[str, ...]
    target_cameras: tuple[str, ...]
    source_frame: int | None = None


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    dataset: str
    subjects: tuple[str, ...]
    tasks: tuple[Task, ...]
    description: str = ""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def units(self) -> list[EvalUnit]:
        units = list(_expand(self))
        names = [u.name for u in units]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ProtocolError(f"{self.path}: protocol yields duplicate unit names {duplicates}")
        return units

    def identity(self) -> dict[str, Any]:
        """What identifies the protocol in run ids: name, version and its full content."""
        return {"name": self.name, "version": self.version, "dataset": self.dataset, "content": self.raw}


def _expand(protocol: Protocol) -> Iterator[EvalUnit]:
    for subject in protocol.subjects:
        for task in protocol.tasks:
            for sequence in task.sequences:
                if task.kind == "novel_view":
                    for frame in task.frames:
                        yield EvalUnit(
                            name=f"{subject}.{sequence}.novel_view.f{frame:05d}",
                            kind=task.kind,
                            subject=subject,
                            sources=tuple(ViewRef(subject, sequence, frame, c) for c in task.source_cameras),
                            targets=tuple(ViewRef(subject, sequence, frame, c) for c in task.target_cameras),
                        )
                else:
                    src = task.source_frame if task.source_frame is not None else 0
                    yield EvalUnit(
                        name=f"{subject}.{sequence}.self_reenactment.f{src:05d}",
                        kind=task.kind,
                        subject=subject,
                        sources=tuple(ViewRef(subject, sequence, src, c) for c in task.source_cameras),
                        targets=tuple(
                            ViewRef(subject, sequence, f, c) for f in task.frames for c in task.target_cameras
                        ),
                    )


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


def parse_protocol(raw: Any, path: str = "<protocol>") -> Protocol:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: a protocol file must be a mapping")
    for key in ("name", "version", "dataset", "subjects", "tasks"):
        if key not in raw:
            raise ProtocolError(f"{path}: missing required field {key!r}")
    tasks = []
    for i, task in enumerate(raw["tasks"] or []):
        where = f"{path}: tasks[{i}]"
        if not isinstance(task, dict):
            raise ProtocolError(f"{where} must be a mapping")
        kind = task.get("kind")
        if kind not in UNIT_KINDS:
            raise ProtocolError(f"{where}.kind is {kind!r}; expected one of {list(UNIT_KINDS)}")
        tasks.append(Task(
            kind=kind,
            sequences=_str_tuple(task.get("sequences"), f"{where}.sequences"),
            frames=_int_tuple(task.get("frames"), f"{where}.frames"),
            source_cameras=_str_tuple(task.get("source_cameras"), f"{where}.source_cameras"),
            target_cameras=_str_tuple(task.get("target_cameras"), f"{where}.target_cameras"),
            source_frame=int(task["source_frame"]) if task.get("source_frame") is not None else None,
        ))
    if not tasks:
        raise ProtocolError(f"{path}: 'tasks' is empty")
    background = tuple(float(v) for v in raw.get("background", (1.0, 1.0, 1.0)))
    if len(background) != 3:
        raise ProtocolError(f"{path}: background must have 3 values")
    return Protocol(
        name=str(raw["name"]),
        version=int(raw["version"]),
        dataset=str(raw["dataset"]),
        subjects=_str_tuple(raw["subjects"], f"{path}: subjects"),
        tasks=tuple(tasks),
        description=str(raw.get("description", "")),
        background=background,  # type: ignore[arg-type]
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
