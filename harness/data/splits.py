"""Training splits: the subjects a learned method may train on, disjoint from every evaluation protocol.

A split file (``datasets/<benchmark>/train*.yaml``) names its dataset, ``subjects: all`` (or a list) and
``exclude_protocols``: evaluation protocols (``DATASET/PROTOCOL`` names of registered datasets) whose subjects are
removed. A protocol with an explicit subject list is excluded from the file alone; one with ``subjects: all`` (e.g.
svfr) is resolved against its own dataset folder when that folder is available, and otherwise named in the
resolved split as not checked, so a split is never silently taken as disjoint from it. The resolved split (the
dataset's listing minus the excluded subjects) is what a training run records and hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.data.errors import ProtocolError
from harness.jsonio import stable_hash
from harness.safepath import UnsafePathError, check_name

ALL = "all"


@dataclass(frozen=True)
class TrainSplit:
    name: str
    version: int
    dataset: str
    subjects: tuple[str, ...]  # ("all",) or a list
    exclude_protocols: tuple[str, ...]
    sequences: tuple[str, ...] = (ALL,)
    description: str = ""
    path: str = ""


@dataclass
class ResolvedSplit:
    split: TrainSplit
    subjects: list[str]
    excluded: dict[str, list[str]]  # protocol -> its subjects that were removed
    unchecked: list[str] = field(default_factory=list)  # protocols with 'all' subjects whose folder was not read

    @property
    def identity(self) -> dict[str, Any]:
        return {"split": self.split.name, "version": self.split.version, "dataset": self.split.dataset,
                "subjects": self.subjects, "unchecked": self.unchecked}

    @property
    def hash(self) -> str:
        return stable_hash(self.identity, 64)


def load_split(path: Path) -> TrainSplit:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProtocolError(f"split file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ProtocolError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or raw.get("kind") != "train_split":
        raise ProtocolError(f"{path}: a training split file has 'kind: train_split'")
    for key in ("name", "version", "dataset", "subjects", "exclude_protocols"):
        if key not in raw:
            raise ProtocolError(f"{path}: missing required field {key!r}")
    subjects = (ALL,) if raw["subjects"] == ALL else tuple(str(s) for s in raw["subjects"])
    try:
        for subject in subjects:
            check_name(subject, "subject")
    except UnsafePathError as err:
        raise ProtocolError(f"{path}: {err}") from None
    return TrainSplit(name=str(raw["name"]), version=int(raw["version"]), dataset=str(raw["dataset"]),
                      subjects=subjects, exclude_protocols=tuple(str(p) for p in raw["exclude_protocols"]),
                      sequences=tuple(raw.get("sequences", [ALL])), description=str(raw.get("description", "")),
                      path=str(path))


def excluded_subjects(split: TrainSplit, registry: Any, data_roots: dict[str, Path | None] | None = None
                      ) -> tuple[dict[str, list[str]], list[str]]:
    """Subjects of each excluded protocol, and the protocols whose ``subjects: all`` could not be listed."""
    from harness.data.resolve import open_dataset, resolve_protocol

    excluded: dict[str, list[str]] = {}
    unchecked: list[str] = []
    for name in split.exclude_protocols:
        dataset, _, protocol_name = name.partition("/")
        spec = registry.dataset(dataset)
        protocol = resolve_protocol(spec, protocol_name)
        if protocol.subjects != (ALL,):
            excluded[name] = list(protocol.subjects)
            continue
        try:
            listing = open_dataset(spec, (data_roots or {}).get(dataset), protocol)
            excluded[name] = sorted(listing.subjects())
        except Exception:  # the dataset is not here: say so in the resolved split
            unchecked.append(name)
    return excluded, unchecked


def resolve_split(split: TrainSplit, available: list[str], registry: Any,
                  data_roots: dict[str, Path | None] | None = None) -> ResolvedSplit:
    """The split's subjects among ``available`` (the dataset's listing), minus every excluded protocol's."""
    excluded, unchecked = excluded_subjects(split, registry, data_roots)
    removed = {s for subjects in excluded.values() for s in subjects}
    wanted = available if split.subjects == (ALL,) else [s for s in split.subjects if s in available]
    return ResolvedSplit(split, sorted(s for s in wanted if s not in removed), excluded, unchecked)
