"""The synthetic corpus: deterministic, disjoint from every evaluation subject, resumable, and its ground truth
agrees with its renders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import CorpusError
from harness.heads.template import head_template
from harness.jsonio import RefusedFolderError
from harness.synth.corpus import Corpus, CorpusConfig, generate_corpus, render_sample
from harness.synth.streams import (
    MIN_IDENTITY_DISTANCE,
    evaluation_subjects,
    identity_distances,
    training_identity,
)

TINY = CorpusConfig(identities=2, expressions_per_identity=2, resolution=24, uv_resolution=32, camera_set="orbit",
                    num_gaussians=1500, shard_size=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "c"
    generate_corpus(root, TINY, workers=1)
    return root


def test_training_identities_never_come_near_evaluation_subjects() -> None:
    model = head_template()
    evaluation = evaluation_subjects(model)
    assert {e.dataset for e in evaluation} == {"demo", "demo-wild", "demo-sweep"}
    for seed in (0, 1):
        for index in range(150):
            identity, _ = training_identity(model, seed, index)
            distances = identity_distances(identity, model)
            assert len(distances) == len(evaluation)
            assert min(distances.values()) >= MIN_IDENTITY_DISTANCE
            assert all(not np.array_equal(identity.shape, e.identity.shape) for e in evaluation)


def test_the_demo_subjects_are_the_evaluation_stream() -> None:
    from harness.data.demo import SUBJECTS, subject_identity

    model = head_template()
    demo = [e for e in evaluation_subjects(model) if e.dataset == "demo"]
    assert [e.subject for e in demo] == list(SUBJECTS)
    for index, e in enumerate(demo):
        assert np.array_equal(e.identity.shape, subject_identity(0, index).shape)


def test_manifest_records_distances_to_every_evaluation_subject(corpus: Path) -> None:
    manifest = json.loads((corpus / "manifest.json").read_text())
    names = {f"{e.dataset}/{e.subject}" for e in evaluation_subjects(head_template())}
    assert len(manifest["identities"]) == TINY.identities
    for entry in manifest["identities"]:
        assert set(entry["distances"]) == names
        assert entry["nearest_distance"] == min(entry["distances"].values()) >= MIN_IDENTITY_DISTANCE
    assert manifest["head_model"] == head_template().name and len(manifest["uv_layout"]) == 16


def test_samples_are_deterministic_and_shards_reproduce_bitwise(corpus: Path, tmp_path: Path) -> None:
    a, b = render_sample(TINY, 3), render_sample(TINY, 3)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    again = tmp_path / "again"
    generate_corpus(again, TINY, workers=2)  # other processes, other order: the same bytes
    first = json.loads((corpus / "manifest.json").read_text())["shards"]
    second = json.loads((again / "manifest.json").read_text())["shards"]
    assert [s["sha256"] for s in first] == [s["sha256"] for s in second]


def test_reading_back_a_sample(corpus: Path) -> None:
    data = Corpus(corpus)
    assert len(data) == 4
    sample = data.sample(3)
    views = 12
    assert sample["rgb"].shape == (views, 24, 24, 3) and sample["rgb"].dtype == np.uint8
    assert sample["alpha"].shape == (views, 24, 24) and sample["depth"].shape == (views, 24, 24)
    assert sample["uv_albedo"].shape == (32, 32, 3) and int(sample["identity_index"]) == 1
    assert int(sample["expression_index"]) == 1
    assert data.batch([0, 3])["shape"].shape == (2, head_template().num_shape)
    with pytest.raises(IndexError):
        data.sample(4)


def test_normals_face_the_camera_and_depth_is_the_head_distance(corpus: Path) -> None:
    sample = Corpus(corpus).sample(0)
    seen = sample["alpha"] > 200
    normals = sample["normal"].astype(np.float32)[seen]
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1, atol=2e-3)
    assert (normals[:, 2] < 0).mean() > 0.9  # OpenCV camera space: a surface seen from the front has z < 0
    depth = sample["depth"].astype(np.float32)[seen]
    assert depth.min() > 0.85 and depth.max() < 1.15  # cameras at 1 m from a head about 0.25 m across
    assert np.all(sample["depth"][sample["alpha"] == 0] == 0)


def test_uv_ground_truth_matches_the_head_model(corpus: Path) -> None:
    import torch

    from harness.geometry.attributes import sample_uv_map_at_vertices

    model = head_template()
    data = Corpus(corpus)
    sample = data.sample(1)  # identity 0, a non-neutral expression
    mask = torch.as_tensor(data.uv_mask)
    expected_identity = np.einsum("vcs,s->vc", model.shapedirs, sample["shape"])
    expected_expression = np.einsum("vce,e->vc", model.exprdirs, sample["expression"])
    for key, expected in (("uv_identity_offset", expected_identity), ("uv_expression_offset", expected_expression)):
        uv_map = torch.as_tensor(sample[key]).permute(2, 0, 1)
        back = sample_uv_map_at_vertices(uv_map, model, mask).numpy()
        scale = np.abs(expected).max()
        assert scale > 1e-4
        assert np.median(np.abs(back - expected)) < 0.05 * scale
    assert np.all(sample["uv_albedo"][~data.uv_mask] == 0) and sample["uv_albedo"][data.uv_mask].mean() > 0.1


def test_a_killed_generation_resumes_and_redoes_only_what_is_broken(corpus: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").unlink()  # killed before the manifest
    (copy / "shards" / "shard_00001.npz").write_bytes(b"cut short")  # and in the middle of a shard
    kept = (copy / "shards" / "shard_00000.npz").stat().st_mtime_ns
    seen = []
    resumed = generate_corpus(copy, TINY, workers=1, progress=lambda done, total: seen.append(done))
    assert seen[0] == 2  # the intact shard counted as done
    assert (copy / "shards" / "shard_00000.npz").stat().st_mtime_ns == kept
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in manifest["shards"]]


def test_corpus_refuses_a_user_folder_and_another_config(corpus: Path, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(RefusedFolderError):
        generate_corpus(user, TINY, workers=1)
    assert [p.name for p in user.iterdir()] == ["notes.txt"]
    from dataclasses import replace

    with pytest.raises(CorpusError, match="another configuration"):
        generate_corpus(corpus, replace(TINY, seed=5), workers=1)
    with pytest.raises(CorpusError, match="not a finished corpus"):
        Corpus(tmp_path)


@pytest.mark.parametrize("name", ["rig", "synshot", "orbit"])
def test_camera_sets_look_at_the_head(name: str) -> None:
    from harness.synth.cameras import TARGET, camera_set

    cameras, angles = camera_set(name, 32)
    assert len(cameras) == {"rig": 16, "synshot": 28, "orbit": 12}[name] == len(angles)
    for camera in cameras:
        uv, depth = camera.project(TARGET[None])
        assert np.allclose(uv, 16, atol=1e-6) and depth[0] > 0.9
    if name == "orbit":
        assert any(abs(abs(yaw) - 180) < 1e-6 for yaw, _ in angles)  # a back view
