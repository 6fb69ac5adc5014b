"""Reduced metric precision: bf16 (autocast, on CPU here) stays within each network metric's documented tolerance of
fp32 and differs from it (so the mode did something), never answers an fp32 request from the cache, is recorded and
shown; tf32 is refused without CUDA. Stand-in networks (tests/standins.py), not the real weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from harness.jsonio import read_json
from harness.plugins.registry import build_registry
from harness.scoring import precision, scorer
from harness.scoring.precision import MetricPrecisionError, check_precision, with_precision
from harness.scoring.scorer import score_run


@pytest.fixture(scope="module")
def one_unit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """Predictions made elsewhere for the demo's first paired unit (its ground truth plus noise), and the demo
    (at HARNESS_DEMO_ROOT when set, else generated)."""
    from harness.data.protocol import run_protocol
    from harness.data.resolve import open_dataset
    from harness.external import prepare_external_run
    from harness.imageio import write_png
    from harness.store import RunStore

    run_dir = tmp_path_factory.mktemp("noisy")
    (run_dir / "predictions").mkdir()
    registry = build_registry()
    prepare_external_run(run_dir, registry, "demo", "demo", None, "noisy")
    store = RunStore(run_dir)
    protocol, units = run_protocol(store.read_run())
    adapter = open_dataset(registry.dataset("demo"), None, protocol, generate=True)
    unit = next(u for u in units if u.kind != "in_the_wild")
    rng = np.random.default_rng(0)
    for ref in unit.targets:
        image = adapter.load_view(ref).image
        path = store.find_prediction(unit.name, ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, np.clip(image + 0.05 * rng.standard_normal(image.shape), 0, 1))
    return run_dir, adapter


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from standins import install_dreamsim_standin, install_lpips_standin

    home = tmp_path_factory.mktemp("precision_home")
    install_lpips_standin(home / "weights")
    install_dreamsim_standin(home / "weights")
    return home


@pytest.fixture
def standins(weights_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from standins import trust_lpips_standin

    monkeypatch.setenv("HARNESS_HOME", str(weights_home))
    trust_lpips_standin(monkeypatch, weights_home / "weights")
    return weights_home


def _pairs(n: int, size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    from standins import face_image

    gt = torch.from_numpy(np.stack([face_image(size=size, centre=(size // 2 + 5 * i, size // 2), radius=size // 4,
                                               seed=i) for i in range(n)])).permute(0, 3, 1, 2).contiguous()
    noise = torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))
    return (gt + 0.1 * noise).clamp(0, 1), gt


def _values(result) -> np.ndarray:
    from harness.scoring.values import MetricValues

    return MetricValues.of(result).values


@pytest.mark.parametrize("name", ["lpips", "dreamsim"])
def test_bf16_is_within_the_tolerance_of_fp32_and_actually_runs_in_bf16(name: str, standins: Path) -> None:
    from harness.api.specs import load_target

    spec = build_registry().metric(name)
    metric = load_target(spec.target)(device="cpu")
    pred, gt = _pairs(1)
    seen: list[torch.dtype] = []
    hooks = [m.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
             for m in metric.model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    fp32 = _values(with_precision(metric, "fp32", "cpu")(pred, gt))
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    bf16 = _values(with_precision(metric, "bf16", "cpu")(pred, gt))
    for hook in hooks:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # autocast reached the network
    difference = np.abs(bf16 - fp32).max()
    print(f"{name}: fp32 {fp32}, bf16 {bf16}, max |difference| {difference:.3g}")
    assert 0 < difference <= metric.precision_tolerance, (name, difference)
    assert not torch.is_autocast_enabled("cpu")  # the mode ends with the call
    if hasattr(metric, "cache_identity"):  # bf16 ground-truth features are cached apart from fp32 ones
        assert with_precision(metric, "fp32", "cpu").cache_identity == metric.cache_identity
        assert with_precision(metric, "bf16", "cpu").cache_identity != metric.cache_identity


def test_a_bf16_score_is_recorded_shown_and_never_serves_fp32(one_unit_run: tuple[Path, object], tmp_path: Path,
                                                               standins: Path) -> None:
    from harness.report.summary import write_run_report

    run_dir = Path(shutil.copytree(one_unit_run[0], tmp_path / "run", symlinks=True))
    demo_adapter = one_unit_run[1]
    names = ["lpips", "psnr", "ssim"]
    fp32 = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=names).metrics
    bf16 = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=names, metric_precision="bf16")
    assert bf16.metric_seconds > 0 and bf16.metric_precision == "bf16"  # scored again, not the fp32 cache
    pixel = pl.col("metric").is_in(["psnr", "ssim"])
    assert bf16.metrics.filter(pixel).equals(fp32.filter(pixel))  # float64 pixel metrics: the same in every mode
    a, b = (t.filter((pl.col("metric") == "lpips") & (pl.col("status") == "ok")).sort(scorer.KEY_COLUMNS)
            for t in (fp32, bf16.metrics))
    assert a.drop("value").equals(b.drop("value")) and a.height > 0
    difference = np.abs(a["value"].to_numpy() - b["value"].to_numpy()).max()
    assert 0 < difference <= bf16.metric_identities["lpips"]["precision_tolerance"]

    identities = read_json(run_dir / "run.json")["metric_identities"]
    assert identities["lpips"]["precision"] == "bf16" and identities["psnr"]["precision"] == "fp32"
    assert read_json(run_dir / "scoring_errors.json")["metric_precision"] == "bf16"
    summary, site = write_run_report(run_dir, build_registry())
    assert "metric precision bf16 for lpips" in summary.read_text()
    board = next((site.parent / "boards").glob("*.html")).read_text()
    assert "metric precision bf16 for lpips" in board  # the footer, and the row's flag
    assert 'class="flag precision"' in board

    again = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=names)
    assert again.metric_seconds > 0 and again.metric_precision == "fp32"
    assert again.metrics.equals(fp32)  # fp32 again: the bf16 values were not reused
    assert read_json(run_dir / "run.json")["metric_identities"]["lpips"]["precision"] == "fp32"


def test_metrics_without_a_tolerance_run_in_fp32_in_every_mode() -> None:
    class Pixel:
        def __call__(self, pred, gt):
            return torch.is_autocast_enabled("cpu")

    wrapped = with_precision(Pixel(), "bf16", "cpu")
    assert wrapped.precision == "fp32" and wrapped(None, None) is False
    assert precision.identity(wrapped) == {"precision": "fp32"}
    assert not hasattr(wrapped, "against_photo") and not hasattr(wrapped, "cache_identity")


def test_tf32_without_cuda_and_unknown_modes_are_refused(one_unit_run: tuple[Path, object]) -> None:
    from harness.cli import main

    run_dir = one_unit_run[0]

    with pytest.raises(MetricPrecisionError, match="tf32 needs a CUDA device"):
        check_precision("tf32", "cpu")
    with pytest.raises(MetricPrecisionError, match="unknown metric precision 'fp16'"):
        check_precision("fp16", "cpu")
    with pytest.raises(SystemExit, match=r"tf32 needs a CUDA device.*use --metric-precision fp32 or bf16"):
        main(["score", str(run_dir), "--device", "cpu", "--metric-precision", "tf32"])
    with pytest.raises(SystemExit) as refused:
        main(["run", "--method", "nearest-input", "--dataset", "demo", "--metric-precision", "fp16"])
    assert refused.value.code == 2  # argparse: not one of the choices
    assert not (run_dir / "scores").exists()  # refused before anything was scored
