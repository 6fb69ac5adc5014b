"""Where a dataset is looked for, whether it is there, and a full check of a folder against a protocol."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from harness.api.specs import DatasetSpec, load_target
from harness.data.adapter import Inventory
from harness.data.errors import DatasetError, ProtocolError
from harness.data.prepared import PreparedDataset
from harness.data.protocol import Protocol, expand_with_dataset
from harness.data.resolve import root_candidates
from harness.paths import harness_home


@dataclass
class Location:
    found: bool
    root: Path | None
    looked: list[str]


def locate(spec: DatasetSpec, data_root: Path | str | None = None) -> Location:
    """Where the dataset is looked for (without opening it: the demos would generate themselves)."""
    looked: list[str] = []
    for source, path in root_candidates(spec, data_root):
        looked.append(f"{source}: {path if path is not None else 'not set'}")
        if path is not None:
            return Location(path.is_dir(), path, looked)
    if spec.default_root:  # declared in the spec, so listing never imports a reader (or torch through it)
        path = harness_home() / spec.default_root
        looked.append(f"default: {path}")
        return Location(path.is_dir(), path, looked)
    return Location(False, None, looked)


def check_dataset(spec: DatasetSpec, data_root: Path | str | None, protocol: Protocol | None,
                  deep: bool = False) -> Inventory:
    """Everything ``harness datasets check`` reports: the layout's own inventory plus, with a protocol, every
    view its units need (calibrated camera, source files present), all problems at once, each once.

    Files are checked from their headers (and a PNG's end); ``deep`` decodes every frame, for readers whose
    ``check`` takes ``deep`` (``found["deep"]`` says when one does not).
    """
    inventory = _check(spec, data_root, protocol, deep)
    inventory.problems = list(dict.fromkeys(inventory.problems))  # one line per problem, in the order found
    return inventory


def _check(spec: DatasetSpec, data_root: Path | str | None, protocol: Protocol | None, deep: bool) -> Inventory:
    reader_cls = load_target(spec.target)
    location = locate(spec, data_root)
    try:
        reader = reader_cls.open(location.root)
    except DatasetError as err:
        return Inventory(location.root or Path("."), spec.name, problems=[str(err)])
    subjects = None
    if protocol is not None and protocol.subjects != ("all",):
        subjects = list(protocol.subjects)
    if not deep:
        inventory = reader.check(subjects)
    elif "deep" in inspect.signature(reader.check).parameters:
        inventory = reader.check(subjects, deep=True)
    else:
        inventory = reader.check(subjects)
        inventory.found["deep"] = f"not supported by {reader_cls.__name__}: files checked from their headers"
    if protocol is None:
        return inventory
    dataset = PreparedDataset(reader, protocol, spec.name)
    try:
        units, _ = expand_with_dataset(protocol, dataset)
    except (DatasetError, ProtocolError) as err:
        inventory.problems.append(f"protocol {protocol.label}: cannot expand its units: {err}")
        return inventory
    seen: set[str] = set()
    refs = {ref for unit in units for ref in (*unit.sources, *unit.targets) if not ref.camera.startswith("orbit_")}
    files = getattr(reader, "source_files", None)
    for ref in sorted(refs):
        problem = None
        try:
            if ref.camera != "photo":
                reader.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
            elif files is None or not files(ref)[0].is_file():
                problem = f"missing photo for {ref.subject}/{ref.sequence}"
        except DatasetError as err:
            problem = str(err)
        if problem is not None and problem not in seen:
            seen.add(problem)
            inventory.problems.append(problem)
    inventory.found["protocol"] = {"name": protocol.label, "units": len(units), "views": len(refs)}
    return inventory
