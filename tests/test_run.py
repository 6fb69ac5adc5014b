from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import harness_cli
from polars.testing import assert_frame_equal

from harness.plugins.registry import build_registry
from harness.runner import RunRequest, run
from harness.scoring.scorer import score_run


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    result = run(RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device="cpu"), build_registry())
    return result["prepared"].store.root


def test_demo_run_scores_every_target(baseline_run: Path) -> None:
    metrics = pl.read_parquet(baseline_run / "metrics.parquet")
    record = json.loads((baseline_run / "run.json").read_text())
    assert record["protocol_version"] == 2 and record["provenance"]["torch"]
    assert set(metrics.columns) >= {"run", "method", "dataset", "protocol", "subject", "sequence", "camera", "frame",
                                    "metric", "variant", "value"}
    # 3 subjects x (2 novel-view frames x 4 cameras + 4 frames x 3 cameras) = 60 images, 2 metrics, 2 variants.
    assert metrics.height == 60 * 2 * 2
    assert metrics["value"].is_finite().all()
    images = pl.read_parquet(baseline_run / "images.parquet")
    assert images.height == 60 and images["prediction_sha256"].str.len_chars().min() == 64
    assert (baseline_run / "report" / "index.html").exists()


def test_masked_psnr_recomputed_by_hand_from_the_files(baseline_run: Path, demo_adapter) -> None:
    from harness.api import ViewRef
    from harness.imageio import read_image

    metrics = pl.read_parquet(baseline_run / "metrics.parquet")
    row = metrics.filter((pl.col("metric") == "psnr") & (pl.col("variant") == "masked")).row(5, named=True)
    ref = ViewRef(row["subject"], row["sequence"], row["frame"], row["camera"])
    gt = demo_adapter.load_view(ref)
    pred, _ = read_image(baseline_run / "predictions" / row["unit"] / f"{ref.subject}/{ref.sequence}/"
                         f"frame_{ref.frame:05d}/cam_{ref.camera}.png")
    a = gt.alpha[..., None].astype(np.float64)
    on_white = lambda x: x * a + (1.0 - a)  # noqa: E731
    mse = np.mean((on_white(pred.astype(np.float64)) - on_white(gt.image.astype(np.float64))) ** 2)
    assert row["value"] == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-4)


def test_rescoring_reuses_cache_and_gives_the_same_table(baseline_run: Path) -> None:
    before = pl.read_parquet(baseline_run / "metrics.parquet")
    result = score_run(baseline_run, build_registry())
    assert result.metric_seconds == 0.0  # everything came from the per-unit cache
    assert_frame_equal(before, result.metrics)


def test_score_command_scores_external_predictions_like_run(baseline_run: Path, tmp_path: Path) -> None:
    external = tmp_path / "external"
    external.mkdir()
    subprocess.run(["cp", "-r", str(baseline_run / "predictions"), str(external)], check=True)
    result = harness_cli(["score", str(external), "--dataset", "demo", "--protocol", "demo", "--device", "cpu"])
    assert result.returncode == 0, result.stdout + result.stderr
    ours = pl.read_parquet(baseline_run / "metrics.parquet").select("unit", "camera", "frame", "metric", "variant",
                                                                     "value")
    theirs = pl.read_parquet(external / "metrics.parquet").select(ours.columns)
    assert_frame_equal(ours, theirs)


def test_bad_predictions_are_named_and_the_rest_is_scored(baseline_run: Path, tmp_path: Path) -> None:
    work = tmp_path / "run"
    subprocess.run(["cp", "-r", str(baseline_run), str(work)], check=True)
    before = pl.read_parquet(work / "metrics.parquet")
    units = sorted(p.name for p in (work / "predictions").iterdir() if p.is_dir() and not p.name.startswith("."))
    pngs = {u: sorted((work / "predictions" / u).rglob("*.png")) for u in units}
    corrupt, missing, small, nan_png = pngs[units[0]][0], pngs[units[1]][0], pngs[units[2]][0], pngs[units[3]][0]
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    missing.unlink()
    from PIL import Image

    Image.new("RGB", (10, 20)).save(small)
    nan_array = np.zeros((*np.asarray(Image.open(nan_png)).shape[:2], 3), np.float32)
    nan_array[3, 3, 1] = np.nan
    nan_png.unlink()
    np.save(nan_png.with_suffix(".npy"), nan_array)

    result = score_run(work, build_registry())
    messages = "\n".join(e["error"] for e in result.errors)
    assert str(corrupt) in messages and "unreadable" in messages
    assert str(missing) in messages and "missing" in messages
    assert str(small) in messages and "10x20" in messages
    assert str(nan_png.with_suffix(".npy")) in messages and "NaN" in messages
    for unit in units[:4]:
        assert unit in messages
    # The four bad images are rows marked missing (2 metrics x 2 variants each); every other image is still
    # scored, with unchanged values; nothing else was lost.
    holes = result.metrics.filter(pl.col("status") == "missing")
    assert holes.height == 4 * 4 and holes["value"].null_count() == 16
    assert set(holes["unit"]) == set(units[:4])
    scored = result.metrics.filter(pl.col("status") == "ok")
    assert scored.height == before.height - 4 * 4
    kept = before.join(scored, on=["unit", "camera", "frame", "metric", "variant"], how="inner")
    assert kept.height == scored.height
    assert (kept["value"] == kept["value_right"]).all()
    # Only the deleted PNG and the one replaced by a .npy are gone.
    assert len(list((work / "predictions").rglob("*.png"))) == sum(len(v) for v in pngs.values()) - 2


def test_nan_render_fails_only_that_unit(tmp_path: Path, test_plugin_site: Path, demo_adapter) -> None:
    result = harness_cli(["run", "--method", "nan-render", "--dataset", "demo", "--runs-dir", str(tmp_path),
                          "--device", "cpu"], pythonpath=test_plugin_site)
    assert result.returncode == 1
    assert "NaN" in result.stdout and "901." in result.stdout
    run_dir = next((tmp_path / "demo.demo").iterdir())
    metrics = pl.read_parquet(run_dir / "metrics.parquet")
    assert set(metrics.filter(pl.col("status") == "ok")["subject"].unique()) == {"902", "903"}
    assert set(metrics.filter(pl.col("status") == "missing")["subject"].unique()) == {"901"}
    failures = list((run_dir / "failures").glob("*.json"))
    assert len(failures) == 3 and all("901." in f.name for f in failures)


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_kill_and_resume_gives_the_identical_table(tmp_path: Path, test_plugin_site: Path, demo_adapter) -> None:
    args = ["run", "--method", "slow-nearest", "--dataset", "demo", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(test_plugin_site), "HARNESS_TEST_SLEEP": "0.4"}
    killed_runs = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--runs-dir", str(killed_runs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: len(list(killed_runs.glob("*/*/predictions/*/info.json"))) >= 3, 120)
    time.sleep(0.2)  # land somewhere inside the next unit
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed_runs.glob("*/*/predictions/*/info.json")))
    assert 3 <= done_before < 9
    assert not list(killed_runs.glob("*/*/metrics.parquet"))

    resumed = harness_cli([*args, "--runs-dir", str(killed_runs)], pythonpath=test_plugin_site,
                          env_extra={"HARNESS_TEST_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    record = json.loads(next(killed_runs.glob("*/*/run.json")).read_text())
    assert record["timing"]["units_skipped"] == done_before

    clean_runs = tmp_path / "clean"
    clean = harness_cli([*args, "--runs-dir", str(clean_runs)], pythonpath=test_plugin_site,
                        env_extra={"HARNESS_TEST_SLEEP": "0"})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    killed_table = pl.read_parquet(next(killed_runs.glob("*/*/metrics.parquet")))
    clean_table = pl.read_parquet(next(clean_runs.glob("*/*/metrics.parquet")))
    assert_frame_equal(killed_table, clean_table)
    assert not list(killed_runs.glob("*/*/predictions/.staging/*"))


def test_summary_escapes_html_in_config(tmp_path: Path, demo_adapter) -> None:
    request = RunRequest(method="nearest-input", dataset="demo", runs_dir=tmp_path, device="cpu",
                         config={"note": "<script>alert(1)</script>"})
    result = run(request, build_registry())
    html = result["report"].read_text()
    assert "<script>" not in html
    assert result["record"]["config"]["note"] == "<script>alert(1)</script>"


def test_units_outside_a_methods_capabilities_are_skipped_with_the_reason(tmp_path: Path, demo_adapter,
                                                                         monkeypatch) -> None:
    from conftest import FIXTURES

    from harness.data.errors import ProtocolError

    monkeypatch.syspath_prepend(str(FIXTURES))
    import harness_test_methods

    from harness.data import plugin as datasets_plugin
    from harness.scoring import plugin as metrics_plugin

    registry = build_registry(eps=[], extra_modules=[("datasets", datasets_plugin), ("metrics", metrics_plugin),
                                                     ("executors", __import__("harness.executors").executors),
                                                     ("test-methods", harness_test_methods)])
    result = run(RunRequest(method="one-shot-static", dataset="demo", runs_dir=tmp_path, device="cpu"), registry)
    prepared, metrics = result["prepared"], result["scored"].metrics
    kinds = {u.name: u.kind for u in prepared.units}
    assert prepared.skipped and {kinds[u] for u in prepared.skipped} == {"self_reenactment"}
    assert not result["predicted"].failed and not result["scored"].missing_units
    skipped = metrics.filter(pl.col("status") == "skipped")
    assert set(skipped["unit"]) == set(prepared.skipped) and skipped["note"].str.contains("animatable").all()
    assert metrics.filter(pl.col("status") == "missing").is_empty()
    assert set(metrics.filter(pl.col("kind") == "novel_view")["status"]) == {"ok"}
    record = json.loads((prepared.store.root / "run.json").read_text())
    assert record["skipped_units"] == prepared.skipped
    with pytest.raises(ProtocolError, match="can take none"):  # k = 3 sources for a one-shot method, all reenactment
        run(RunRequest(method="one-shot-static", dataset="demo", protocol="demo-fewshot", runs_dir=tmp_path,
                       device="cpu"), registry)
