"""From a dataset name and protocol name to an opened adapter and a parsed protocol."""

from __future__ import annotations

import os
from pathlib import Path

from harness.api.specs import DatasetSpec, load_target
from harness.data.adapter import DatasetAdapter
from harness.data.errors import ProtocolError
from harness.data.protocol import Protocol, load_protocol
from harness.paths import protocols_dir
from harness.plugins.registry import UnknownNameError


def dataset_root(spec: DatasetSpec, data_root: Path | str | None) -> Path | None:
    if data_root:
        return Path(data_root)
    if spec.root_env and os.environ.get(spec.root_env):
        return Path(os.environ[spec.root_env])
    return None


def open_dataset(spec: DatasetSpec, data_root: Path | str | None) -> DatasetAdapter:
    adapter_cls = load_target(spec.target)
    return adapter_cls.open(dataset_root(spec, data_root))


def resolve_protocol(spec: DatasetSpec, name_or_path: str | None) -> Protocol:
    name = name_or_path or spec.default_protocol
    if not name:
        raise ProtocolError(f"dataset {spec.name!r} defines no protocol yet; pass --protocol PATH.yaml")
    if name in spec.protocols:
        path = Path(spec.protocols[name])
        protocol = load_protocol(path if path.is_absolute() else protocols_dir() / path)
    elif name.endswith((".yaml", ".yml")) or Path(name).is_file():
        protocol = load_protocol(Path(name))
    else:
        raise UnknownNameError("protocols", name, spec.protocols)
    if protocol.dataset != spec.name:
        raise ProtocolError(f"{protocol.path}: protocol is for dataset {protocol.dataset!r}, not {spec.name!r}")
    return protocol
