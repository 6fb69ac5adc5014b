"""Which checkpoint a learned method runs with: the synthetic-demo stand-in only on synthetic data (or when asked),
a full checkpoint from the weights cache elsewhere, a clear refusal otherwise; and every report marks a run whose
predictions came from a stand-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES

from harness.api import MissingWeightsError, RunContext
from harness.checkpoints import Checkpoint, save_checkpoint, select_checkpoint

HEAD, LAYOUT = "open-head-template", "abc123"
SYNTHETIC = RunContext(dataset="demo", protocol="demo", synthetic_subjects=True)
REAL = RunContext(dataset="nersemble", protocol="nvs", synthetic_subjects=False)


def _save(path: Path, demo: bool, value: float = 1.0, head: str = HEAD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(Checkpoint("checkpointed", {}, {"w": torch.full((2,), value)}, head_model=head,
                               uv_layout=LAYOUT, provenance={"synthetic_demo": demo, "command": "harness train x",
                                                             "seed": 3}), path)
    return path


def _select(choice: str, demo: Path, context: RunContext | None):
    return select_checkpoint("checkpointed", choice, demo, context, HEAD, LAYOUT, "harness train checkpointed ...")


def test_the_demo_stand_in_runs_on_synthetic_data_and_only_when_asked_elsewhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    demo = _save(tmp_path / "demo.pt", demo=True)
    assert _select("auto", demo, SYNTHETIC).synthetic_demo
    for context in (REAL, None):  # outside the runner the data counts as real
        with pytest.raises(MissingWeightsError) as err:
            _select("auto", demo, context)
        message = str(err.value)
        assert "harness train checkpointed" in message and "checkpoint=demo" in message
        assert str(tmp_path / "home" / "weights" / "checkpoints" / "checkpointed") in message
    assert _select("demo", demo, REAL).synthetic_demo


def test_auto_takes_the_newest_full_checkpoint_of_the_right_head_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    demo = _save(tmp_path / "demo.pt", demo=True)
    folder = tmp_path / "home" / "weights" / "checkpoints" / "checkpointed"
    _save(folder / "stand-in.pt", demo=True, value=5.0)  # a demo checkpoint in the cache is not a full one
    _save(folder / "other-head.pt", demo=False, value=6.0, head="flame2023")
    old = _save(folder / "old.pt", demo=False, value=2.0)
    new = _save(folder / "new.pt", demo=False, value=3.0)
    os.utime(old, (1_000, 1_000))
    chosen = _select("auto", demo, REAL)
    assert chosen.path == new and float(chosen.state["w"][0]) == 3.0 and not chosen.synthetic_demo
    assert _select(str(old), demo, REAL).path == old


@pytest.fixture
def registry(monkeypatch, tmp_path: Path):
    monkeypatch.syspath_prepend(str(FIXTURES))
    import harness_test_methods

    from harness.data import plugin as datasets_plugin
    from harness.plugins.registry import build_registry
    from harness.scoring import plugin as metrics_plugin

    monkeypatch.setenv("HARNESS_TEST_DEMO_CHECKPOINT", str(_save(tmp_path / "shipped" / "demo.pt", demo=True)))
    return build_registry(eps=[], extra_modules=[("datasets", datasets_plugin), ("metrics", metrics_plugin),
                                                 ("executors", __import__("harness.executors").executors),
                                                 ("test-methods", harness_test_methods)])


def test_a_stand_in_run_is_marked_in_run_json_and_every_report(registry, tmp_path: Path, demo_adapter,
                                                               capsys) -> None:
    from harness.cli import cmd_compare
    from harness.report.site import build_report
    from harness.runner import RunRequest, run

    result = run(RunRequest(method="checkpointed", dataset="demo", runs_dir=tmp_path / "runs", device="cpu"),
                 registry)
    record, root = result["record"], result["prepared"].store.root
    assert record["synthetic_demo"] is True
    assert [c["sha256"] for c in record["checkpoints"]] == [result["prepared"].store.checkpoints_used()[0]["sha256"]]
    assert record["checkpoints"][0]["training_command"] == "harness train x"
    assert "Synthetic-demo model" in Path(result["report"]).read_text()
    site = build_report([root], tmp_path / "site", registry)
    board = next((tmp_path / "site").rglob("boards/*.html")).read_text() if list((tmp_path / "site").rglob(
        "boards/*.html")) else Path(site).read_text()
    assert "synthetic-demo model" in board
    run_page = next((tmp_path / "site").rglob(f"runs/{record['run_id']}/index.html")).read_text()
    assert "Synthetic-demo model." in run_page and "harness train x" in run_page

    import argparse

    cmd_compare(argparse.Namespace(run_a=str(root), run_b=str(root), variant="masked", bootstrap=50, seed=0, out=None,
                                   format="table", kind=None))
    assert "A was predicted with a synthetic-demo stand-in" in " ".join(capsys.readouterr().out.split())


def test_a_stand_in_is_refused_on_real_data_through_the_runner(registry, tmp_path: Path, demo_adapter,
                                                               monkeypatch) -> None:
    from harness.api import DatasetSpec
    from harness.runner import RunRequest, run

    demo = registry.dataset("demo")
    fake_real = DatasetSpec(**{**demo.__dict__, "synthetic_subjects": False})
    monkeypatch.setitem(registry.specs["datasets"], "demo", fake_real)
    with pytest.raises(MissingWeightsError, match="checkpoint=demo"):
        run(RunRequest(method="checkpointed", dataset="demo", runs_dir=tmp_path / "runs", device="cpu"), registry)
