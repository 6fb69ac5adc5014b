"""`harness train` end to end with a tiny trainer registered by a test plugin: the loss goes down, a run killed
with SIGKILL resumes to the checkpoint an uninterrupted run gives, corrupt files are refused with their path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, write_plugin_dist

from harness.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from harness.errors import CheckpointError, TrainingError
from harness.heads.template import head_template
from harness.synth.corpus import CorpusConfig, generate_corpus
from harness.training.loop import TrainRequest, train

CONFIG = CorpusConfig(identities=4, expressions_per_identity=2, resolution=16, uv_resolution=16, camera_set="orbit",
                      num_gaussians=800, shard_size=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train_corpus") / "c"
    generate_corpus(root, CONFIG, workers=1)
    return root


@pytest.fixture(scope="module")
def trainer_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_plugin_dist(tmp_path_factory.mktemp("trainer_site"), "harness-test-trainer",
                             {"test-trainer": "harness_test_trainer"}, [FIXTURES / "harness_test_trainer.py"])


@pytest.fixture(scope="module")
def tiny_spec(trainer_site: Path):
    sys.path.insert(0, str(trainer_site))
    import harness_test_trainer

    from harness.plugins.registry import build_registry

    registry = build_registry(eps=[], extra_modules=[("test-trainer", harness_test_trainer)])
    yield registry.trainer("tiny")
    sys.path.remove(str(trainer_site))


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state"]


def test_loss_goes_down_and_the_run_folder_is_complete(corpus: Path, tiny_spec, tmp_path: Path) -> None:
    result = train(TrainRequest("tiny", corpus, runs_dir=tmp_path, steps=40, checkpoint_every=10,
                                command="harness train tiny"), tiny_spec)
    rows = [json.loads(line) for line in (result.root / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(40))
    first, last = sum(r["loss"] for r in rows[:5]) / 5, sum(r["loss"] for r in rows[-5:]) / 5
    assert last < 0.5 * first
    assert (result.root / "loss.svg").read_text().lstrip().startswith("<?xml")
    record = json.loads((result.root / "train.json").read_text())
    assert record["finished"] and record["model_sha256"] == result.sha256 and len(record["identity"]["data"]) == 64
    checkpoint = load_checkpoint(result.model, "tiny", head_model=head_template().name)
    assert checkpoint.provenance["command"] == "harness train tiny" and checkpoint.provenance["seed"] == 0
    assert checkpoint.provenance["data_manifest_sha256"] == record["identity"]["data"]
    assert checkpoint.synthetic_demo and checkpoint.sha256 == result.sha256
    assert len(list((result.root / "state").glob("*.pt"))) == 2  # the two latest kept


def test_kill_and_resume_gives_the_checkpoint_of_an_uninterrupted_run(corpus: Path, trainer_site: Path,
                                                                      tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(trainer_site),
                                                                      os.environ.get("PYTHONPATH", "")]))}
    args = ["tiny", "--data", str(corpus), "--steps", "30", "--checkpoint-every", "5"]

    def command(runs: Path) -> list[str]:
        return [sys.executable, "-m", "harness.cli", "train", *args, "--runs-dir", str(runs)]

    killed = subprocess.Popen(command(tmp_path / "killed"), env={**env, "HARNESS_TEST_TRAIN_SLEEP": "0.15"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "killed").glob("train/*/state/step_0000010.pt")):
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run_dir = next((tmp_path / "killed" / "train").iterdir())
    assert not (run_dir / "model.pt").exists()
    resumed = subprocess.run(command(tmp_path / "killed"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 1" in " ".join(resumed.stdout.split())  # step 10, 15 or later, never 0
    straight = subprocess.run(command(tmp_path / "straight"), env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    a, b = _state(run_dir / "model.pt"), _state(next((tmp_path / "straight" / "train").iterdir()) / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [[(r["step"], r["loss"]) for r in map(json.loads, (d / "losses.jsonl").read_text().splitlines())]
              for d in (run_dir, next((tmp_path / "straight" / "train").iterdir()))]
    assert losses[0] == losses[1]


def test_a_corrupt_training_state_is_refused_with_its_path(corpus: Path, tiny_spec, tmp_path: Path) -> None:
    request = TrainRequest("tiny", corpus, runs_dir=tmp_path, steps=10, checkpoint_every=5)
    result = train(request, tiny_spec)
    latest = sorted((result.root / "state").glob("*.pt"))[-1]
    latest.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match=str(latest)):
        train(request, tiny_spec)


def test_training_needs_a_corpus_manifest(tiny_spec, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"manifest\.json"):
        train(TrainRequest("tiny", tmp_path, runs_dir=tmp_path / "runs", steps=2), tiny_spec)


def _checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint("tiny", {"width": 4}, {"w": torch.ones(2)}, head_model="open-head-template",
                               uv_layout="abc123", provenance={"synthetic_demo": True}), path)
    return path


def test_checkpoint_round_trip_and_mismatches(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    loaded = load_checkpoint(path, "tiny", head_model="open-head-template", uv_layout="abc123")
    assert torch.equal(loaded.state["w"], torch.ones(2)) and loaded.architecture == {"width": 4}
    assert "synthetic-demo stand-in" in loaded.describe()
    with pytest.raises(CheckpointError, match=r"head model .open-head-template.*flame2023"):
        load_checkpoint(path, "tiny", head_model="flame2023")
    with pytest.raises(CheckpointError, match="UV layout"):
        load_checkpoint(path, "tiny", head_model="open-head-template", uv_layout="other")
    with pytest.raises(CheckpointError, match="of method 'tiny', not 'synshot'"):
        load_checkpoint(path, "synshot")


def test_corrupt_or_code_carrying_checkpoints_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    rng = np.random.default_rng(0)
    # Random bytes that happen to parse as a legacy pickle fail deep in the unpickler with IndexError, KeyError
    # and the like; every one must still come out as a CheckpointError naming the file.
    for _ in range(200):
        garbage.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 400)), dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match=str(garbage)):
            load_checkpoint(garbage, "tiny")
    valid = tmp_path / "valid.pt"
    save_checkpoint(Checkpoint("tiny", {}, {"w": torch.ones(1)}, head_model="open-head-template"), valid)
    truncated = tmp_path / "truncated.pt"
    for cut in (1, 17, 100, len(valid.read_bytes()) // 2, len(valid.read_bytes()) - 1):
        truncated.write_bytes(valid.read_bytes()[:cut])
        with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
            load_checkpoint(truncated, "tiny")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "harness-method-checkpoint", "state": {"x": Payload()}}, hostile)
    with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
        load_checkpoint(hostile, "tiny")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt", "tiny")


def test_weights_status_lists_method_checkpoints(tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.cli import main

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")
    folder = tmp_path / "weights" / "checkpoints" / "tiny"
    folder.mkdir(parents=True)
    sha = save_checkpoint(Checkpoint("tiny", {}, {"w": torch.ones(1)}, head_model="open-head-template",
                                     provenance={"synthetic_demo": True}), folder / "model.pt")
    (folder / "broken.pt").write_bytes(b"\x00" * 10)
    main(["weights", "status"])
    out = " ".join(capsys.readouterr().out.split())
    assert "synthetic-demo stand-in" in out and sha[:16] in out and "unusable" in out
