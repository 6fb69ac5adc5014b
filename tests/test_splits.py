"""Training splits are disjoint from every evaluation protocol on the same people."""

from __future__ import annotations

import pytest

from harness.data.errors import ProtocolError
from harness.data.resolve import resolve_protocol
from harness.data.splits import load_split, resolve_split
from harness.paths import protocols_dir
from harness.plugins.registry import build_registry

# Datasets that hold the same people: a split on one must exclude evaluation subjects of all of them.
POOLS = {"nersemble": ("nersemble", "nersemble-v1", "nersemble-v2"), "ava256": ("ava256",)}


def _splits(registry):
    for spec in registry.specs["datasets"].values():
        for name, path in spec.splits.items():
            yield spec, name, load_split(protocols_dir() / path)


def _pool(dataset: str) -> tuple[str, ...]:
    return next(members for members in POOLS.values() if dataset in members)


def test_every_benchmark_has_a_training_split() -> None:
    datasets = {split.dataset for _, _, split in _splits(build_registry())}
    assert {"nersemble-v2", "ava256"} <= datasets


def test_splits_exclude_every_evaluation_protocol_with_named_subjects() -> None:
    registry = build_registry()
    for _, _, split in _splits(registry):
        evaluation: dict[str, set[str]] = {}
        for dataset in _pool(split.dataset):
            spec = registry.dataset(dataset)
            for protocol_name in spec.protocols:
                protocol = resolve_protocol(spec, protocol_name)
                if protocol.subjects != ("all",):
                    evaluation[f"{dataset}/{protocol_name}"] = set(protocol.subjects)
        assert set(evaluation) <= set(split.exclude_protocols), "a new evaluation protocol is missing from the split"
        everyone = sorted({s for subjects in evaluation.values() for s in subjects} | {"100", "101", "102"})
        resolved = resolve_split(split, everyone, registry)
        for protocol, subjects in evaluation.items():
            assert not subjects & set(resolved.subjects), f"{split.path} overlaps {protocol}"
        assert set(resolved.subjects) == {"100", "101", "102"}


def test_an_unlisted_all_subjects_protocol_is_recorded_as_unchecked(tmp_path) -> None:
    registry = build_registry()
    split = next(s for _, _, s in _splits(registry) if s.dataset == "nersemble-v2")
    resolved = resolve_split(split, ["100"], registry, {"nersemble": tmp_path / "absent"})
    assert resolved.unchecked == ["nersemble/svfr"] and "unchecked" in resolved.identity


def test_a_split_file_must_say_what_it_is(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nversion: 1\ndataset: ava256\nsubjects: all\nexclude_protocols: []\n")
    with pytest.raises(ProtocolError, match="train_split"):
        load_split(path)
    path.write_text("kind: train_split\nname: x\nversion: 1\ndataset: ava256\nsubjects: ['../x']\n"
                    "exclude_protocols: []\n")
    with pytest.raises(ProtocolError, match="cannot be used"):
        load_split(path)


def test_training_data_from_a_split_is_resolved_against_the_folder(tmp_path) -> None:
    from dataset_writers import write_ava

    from harness.training.loop import resolve_training_data

    write_ava(tmp_path, capture="20230405--1635--AAN112")  # an evaluation capture of the `split` protocol
    write_ava(tmp_path, capture="20990101--0000--TRAIN1")
    data = resolve_training_data("ava256:train", tmp_path)
    assert data.split.subjects == ["20990101--0000--TRAIN1"] and not data.split.unchecked
    assert data.hash == resolve_training_data("ava256:train", tmp_path).hash and len(data.hash) == 64
