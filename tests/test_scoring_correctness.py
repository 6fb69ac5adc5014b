"""What a cached or averaged score depends on: the metric weights and the ground truth key the cache; an empty
ground-truth mask, an exact match and a value just outside a metric's range each follow one stated convention;
batches spanning units give the values of batch 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from harness.jsonio import read_json
from harness.plugins.registry import build_registry
from harness.runner import RunRequest, run
from harness.scoring import scorer
from harness.scoring.scorer import checked_value, score_run


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> Path:
    """A finished nearest-input run on the demo, first 2 units only, no cached scores."""
    runs = tmp_path_factory.mktemp("runs")
    run(RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device="cpu"), build_registry())
    run_dir = next((runs / "demo.demo").iterdir())
    units = sorted(p.name for p in (run_dir / "predictions").iterdir() if p.is_dir())
    for unit in units[2:]:
        shutil.rmtree(run_dir / "predictions" / unit)
    shutil.rmtree(run_dir / "scores")
    return run_dir


@pytest.fixture
def run_dir(baseline: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(baseline, tmp_path / "run", symlinks=True))


class _Edited:
    """The demo adapter with its ground truth changed by ``edit(view)``."""

    def __init__(self, adapter, edit) -> None:
        self._adapter, self._edit = adapter, edit

    def __getattr__(self, name):
        return getattr(self._adapter, name)

    def load_view(self, ref):
        return self._edit(self._adapter.load_view(ref))


def _values(result, metric: str) -> pl.DataFrame:
    return result.metrics.filter((pl.col("metric") == metric) & (pl.col("status") == "ok")).sort(scorer.KEY_COLUMNS)


def _install_lpips(home: Path, seed: int, monkeypatch) -> Path:
    from standins import trust_lpips_standin

    from harness.scoring import sources

    path = home / "weights" / sources.LPIPS_ALEX.files[0].relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    trust_lpips_standin(monkeypatch, home / "weights")
    return path


def test_new_metric_weights_are_never_answered_from_the_cache(run_dir: Path, tmp_path: Path, demo_adapter,
                                                              monkeypatch) -> None:
    from harness.weights import file_sha256

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    first_file = _install_lpips(tmp_path / "home", 0, monkeypatch)
    first = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["lpips"])
    assert not first.unavailable_metrics and first.metric_seconds > 0
    again = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["lpips"])
    assert again.metric_seconds == 0 and again.metrics.equals(first.metrics)  # unchanged: the cache answers
    _install_lpips(tmp_path / "home", 1, monkeypatch)  # e.g. `harness weights fetch` replaced a stand-in
    swapped = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["lpips"])
    assert swapped.metric_seconds > 0
    assert not np.allclose(_values(swapped, "lpips")["value"], _values(first, "lpips")["value"])
    recorded = read_json(run_dir / "scoring_errors.json")["metric_identities"]["lpips"]["weights"]
    assert list(recorded.values()) == [file_sha256(first_file)]


def test_changed_ground_truth_is_never_answered_from_the_cache(run_dir: Path, demo_adapter) -> None:
    first = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["psnr"])

    def darker(view):
        view.image = view.image * 0.9
        return view

    changed = score_run(run_dir, build_registry(), adapter=_Edited(demo_adapter, darker), metric_names=["psnr"])
    assert changed.metric_seconds > 0
    assert not np.allclose(_values(changed, "psnr")["value"], _values(first, "psnr")["value"])


def test_an_empty_ground_truth_mask_makes_every_masked_metric_undefined(run_dir: Path, demo_adapter) -> None:
    emptied: list[str] = []

    def empty_first(view):
        if not emptied or emptied[0] == view.ref.camera:
            emptied[:1] = [view.ref.camera]
            view.alpha = np.zeros_like(view.alpha)
        return view

    result = score_run(run_dir, build_registry(), adapter=_Edited(demo_adapter, empty_first),
                       metric_names=["psnr", "ssim"])
    rows = result.metrics.filter((pl.col("camera") == emptied[0]) & (pl.col("status") != "missing"))
    masked, full = rows.filter(pl.col("variant") == "masked"), rows.filter(pl.col("variant") == "full")
    assert masked.height > 0 and (masked["status"] == "undefined").all() and masked["value"].is_null().all()
    assert masked["note"].str.contains("ground-truth alpha is empty").all()
    assert (full["status"] == "ok").all()
    images = result.images.filter(pl.col("camera") == emptied[0])
    assert not images["masked_available"].any()


def test_an_exact_match_keeps_its_value_in_the_mean(run_dir: Path, demo_adapter) -> None:
    from harness.data.protocol import run_protocol
    from harness.imageio import write_png
    from harness.store import RunStore

    store = RunStore(run_dir)
    _, units = run_protocol(store.read_run())
    unit = next(u for u in units if store.unit_dir(u.name).is_dir())
    exact = demo_adapter.load_view(unit.targets[0])
    write_png(store.find_prediction(unit.name, exact.ref), exact.image)  # the frame itself, as an RGB prediction
    result = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["psnr"])
    rows = result.metrics.filter((pl.col("unit") == unit.name) & (pl.col("camera") == exact.ref.camera)
                                 & (pl.col("frame") == exact.ref.frame))
    assert rows["status"].to_list() == ["ok", "ok"] and rows["value"].to_list() == [100.0, 100.0]


def test_values_just_outside_a_range_are_clamped_and_further_out_refused() -> None:
    spec = build_registry().metric("dreamsim")
    assert checked_value(spec, -1e-15, None) == (0.0, None)
    value, note = checked_value(spec, -0.5, None)
    assert value is None and "outside its declared range [0.0, 2.0]" in note
    assert checked_value(spec, float("nan"), None)[0] is None
    assert checked_value(spec, 0.25, "no face") == (None, "no face")


def test_a_batch_spanning_units_gives_the_values_of_batch_one(run_dir: Path, tmp_path: Path, demo_adapter,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    _install_lpips(tmp_path / "home", 0, monkeypatch)
    names = ["psnr", "ssim", "lpips"]
    single = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=names).metrics
    shutil.rmtree(run_dir / "scores")
    monkeypatch.setitem(scorer.BATCH_SIZE, "cpu", 16)  # the CUDA policy: one batch spans both units
    batched = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=names).metrics
    pixel = pl.col("metric").is_in(["psnr", "ssim"])
    assert batched.filter(pixel).equals(single.filter(pixel))  # per-image float64 reductions: bitwise
    # LPIPS runs AlexNet convolutions on the batch; their float32 sums may round differently by batch size.
    lp_single, lp_batched = single.filter(~pixel), batched.filter(~pixel)
    assert lp_single.drop("value").equals(lp_batched.drop("value"))
    np.testing.assert_allclose(lp_batched["value"].to_numpy(), lp_single["value"].to_numpy(), rtol=0, atol=1e-6)


def test_an_rgba_prediction_is_composited_over_the_plate_for_full_or_left_undefined(run_dir: Path,
                                                                                     demo_adapter) -> None:
    from harness.data.prepared import PreparedDataset
    from harness.data.protocol import run_protocol
    from harness.imageio import write_png
    from harness.store import RunStore

    store = RunStore(run_dir)
    protocol, units = run_protocol(store.read_run())
    adapter = PreparedDataset(demo_adapter, protocol, "demo")
    unit = next(u for u in units if store.unit_dir(u.name).is_dir())
    view = adapter.load_view(unit.targets[0])
    plate, why = adapter.plate_behind(view.ref, *view.image.shape[:2])
    assert why == ""
    outside = view.alpha < 1e-3  # the demo's frames show exactly this plate behind the head
    assert np.abs(view.image[outside] - plate[outside]).max() <= 1 / 255 + 1e-6
    # The head alone, as a method with an alpha channel would render it (straight colour, nothing behind it).
    write_png(store.find_prediction(unit.name, view.ref), np.where(view.alpha[..., None] > 0, view.image, 0.0),
              view.alpha)
    result = score_run(run_dir, build_registry(), adapter=adapter, metric_names=["psnr"])
    row = result.metrics.filter((pl.col("unit") == unit.name) & (pl.col("camera") == view.ref.camera)
                                & (pl.col("frame") == view.ref.frame) & (pl.col("variant") == "full"))
    assert row["status"].to_list() == ["ok"] and row["value"][0] > 40  # over the plate: the frame itself

    class NoPlates(_Edited):
        def plate_behind(self, ref, height, width):
            return None, "dataset 'x' has no background plates"

    again = score_run(run_dir, build_registry(), adapter=NoPlates(adapter, lambda v: v), metric_names=["psnr"])
    row = again.metrics.filter((pl.col("unit") == unit.name) & (pl.col("camera") == view.ref.camera)
                               & (pl.col("frame") == view.ref.frame) & (pl.col("variant") == "full"))
    assert row["status"].to_list() == ["undefined"] and "RGBA prediction" in row["note"][0]
    masked = again.metrics.filter((pl.col("unit") == unit.name) & (pl.col("variant") == "masked")
                                  & (pl.col("status") == "ok"))
    assert masked.height > 0  # the masked variant does not need a plate
