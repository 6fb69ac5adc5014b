"""Scoring predictions made elsewhere: give a bare predictions folder the run record the scorer reads."""

from __future__ import annotations

from pathlib import Path

from harness.data.protocol import expand_with_dataset
from harness.data.resolve import dataset_root, open_dataset, resolve_protocol
from harness.jsonio import stable_hash
from harness.plugins.registry import Registry
from harness.provenance import collect
from harness.store import RunStore


def prepare_external_run(run_dir: Path, registry: Registry, dataset: str | None, protocol: str | None,
                         data_root: str | None, method_name: str) -> None:
    """Write ``run.json`` for a folder holding ``predictions/{unit}/...`` and nothing else.

    A folder that already has a ``run.json`` (a harness run) is left as it is.
    """
    store = RunStore(run_dir)
    if store.run_json.exists():
        return
    if not (run_dir / "predictions").is_dir():
        raise FileNotFoundError(f"{run_dir} has neither run.json nor a predictions/ folder")
    if not dataset or not protocol:
        raise SystemExit(f"harness: {run_dir} has no run.json; pass --dataset and --protocol")
    dataset_spec = registry.dataset(dataset)
    parsed = resolve_protocol(dataset_spec, protocol)
    root = dataset_root(dataset_spec, data_root)
    units, listing = (expand_with_dataset(parsed, open_dataset(dataset_spec, data_root, parsed, generate=True))
                      if parsed.needs_dataset_listing else (parsed.units(), None))
    identity = {"method": method_name, "dataset": dataset, "protocol": parsed.identity()}
    if listing is not None:  # as in `harness run`: units that depend on the folder tie the id to what it held
        identity["dataset_listing"] = listing
    store.write_run({
        "run_id": f"{method_name}-{stable_hash(identity, 10)}",
        "method": method_name,
        "method_version": "",
        "config": {},
        "dataset": dataset,
        "data_root": str(root) if root else "",
        "protocol": parsed.name,
        "protocol_version": parsed.version,
        "protocol_content": parsed.raw,
        "dataset_listing": listing,
        "seed": None,
        "units": len(units),
        "external": True,
        "provenance": collect("cpu", {p.name: p.version for p in registry.plugins}),
    })
