"""From a dataset name and protocol name to an opened, protocol-prepared dataset and a parsed protocol.

A dataset's root is, in order: ``--data-root``, the dataset's environment variable (``DatasetSpec.root_env``),
the ``datasets: {NAME: {root: DIR}}`` entry of ``$HARNESS_HOME/config.yaml``, else the reader's default (the
built-in demos generate themselves; real datasets then say what to set).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from harness.api.specs import DatasetSpec, load_target
from harness.data.errors import DatasetError, ProtocolError
from harness.data.prepared import PreparedDataset
from harness.data.protocol import Protocol, load_protocol
from harness.paths import harness_home, protocols_dir
from harness.plugins.registry import UnknownNameError


def config_path() -> Path:
    return harness_home() / "config.yaml"


def _config_roots() -> dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise DatasetError(f"{path}: not valid YAML: {err}") from None
    datasets = raw.get("datasets", {}) if isinstance(raw, dict) else {}
    return datasets if isinstance(datasets, dict) else {}


def root_candidates(spec: DatasetSpec, data_root: Path | str | None) -> list[tuple[str, Path | None]]:
    """Where the dataset is looked for, in order, as (source, path or None when that source is unset)."""
    entry = _config_roots().get(spec.name) or {}
    config_root = entry.get("root") if isinstance(entry, dict) else None
    env_value = os.environ.get(spec.root_env) if spec.root_env else None
    return [
        ("--data-root", Path(data_root) if data_root else None),
        (f"${spec.root_env}" if spec.root_env else "environment (none declared)",
         Path(env_value) if env_value else None),
        (f"{config_path()} datasets.{spec.name}.root", Path(config_root).expanduser() if config_root else None),
    ]


def dataset_root(spec: DatasetSpec, data_root: Path | str | None) -> Path | None:
    for _, path in root_candidates(spec, data_root):
        if path is not None:
            return path
    return None


def open_reader(spec: DatasetSpec, data_root: Path | str | None, generate: bool = False) -> Any:
    """Open the dataset's reader. Readers never write into their root; with ``generate`` a generated dataset (the
    demos: readers with ``generate_if_needed``) is first written if it is not there. Only commands that produce
    results (run, score) generate; commands that only read (check, ls, report) never do."""
    reader_cls = load_target(spec.target)
    root = dataset_root(spec, data_root)
    if generate and hasattr(reader_cls, "generate_if_needed"):
        reader_cls.generate_if_needed(root)
    return reader_cls.open(root)


def open_dataset(spec: DatasetSpec, data_root: Path | str | None, protocol: Protocol | None = None,
                 generate: bool = False) -> PreparedDataset:
    return PreparedDataset(open_reader(spec, data_root, generate), protocol, spec.name)


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
