"""Error maps and their scale bar, board plots (one line per unit kind, interval bars, units, titles) and the
one-spelling metric labels and footnotes of the report pages."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
import pytest

from harness.plugins.registry import build_registry
from harness.report import plots
from harness.report.errormap import ERROR_MAX, error_map, scale_bar
from harness.report.labels import Footnotes, metric_axis, metric_title, missing_note
from harness.scoring.statistics import cluster_bootstrap_ci


def test_error_map_colours_follow_the_scale_bar() -> None:
    cmap = matplotlib.colormaps["inferno"]
    gt = np.full((2, 3, 3), 0.5, np.float32)
    for error, fraction in ((0.0, 0.0), (ERROR_MAX / 2, 0.5), (ERROR_MAX, 1.0), (0.45, 1.0)):
        colours = error_map(np.clip(gt + error, 0, 1), gt)
        assert colours.shape == (2, 3, 3)
        np.testing.assert_allclose(colours[0, 0], np.asarray(cmap(fraction))[:3], atol=1e-6)
    # the error is the mean over R, G, B: a 0.3 error in one channel reads as 0.1
    one_channel = gt.copy()
    one_channel[..., 0] += 0.3
    np.testing.assert_allclose(error_map(one_channel, gt)[0, 0], np.asarray(cmap(0.1 / ERROR_MAX))[:3], atol=1e-6)
    bar = scale_bar()
    assert bar.ticks[0] == (0.0, "0") and bar.ticks[-1] == (100.0, f"{ERROR_MAX:g}+")
    assert bar.gradient.startswith("linear-gradient(to right, rgb(0, 0, 4) 0%") and "mean absolute error" in bar.caption


def _series(kinds: dict[str, float]) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"yaw": yaw, "value": base + yaw / 100 + rng.normal(0, 0.5), "subject": f"s{s}", "kind": kind,
             "metric": "psnr"}
            for kind, base in kinds.items() for yaw in (-30.0, 0.0, 30.0) for s in range(4) for _ in range(2)]
    return pl.DataFrame(rows)


def test_plot_points_are_means_with_the_boards_bootstrap_interval() -> None:
    table = _series({"novel_view": 25.0}).filter(pl.col("kind") == "novel_view")
    found = plots.points(table, "yaw")
    assert found["yaw"].to_list() == [-30.0, 0.0, 30.0]
    at = table.filter(pl.col("yaw") == 0.0)
    low, high = cluster_bootstrap_ci(at["value"].to_numpy(), at["subject"].to_numpy())
    row = found.filter(pl.col("yaw") == 0.0).row(0, named=True)
    assert row["mean"] == pytest.approx(at["value"].mean()) and (row["low"], row["high"]) == (low, high)
    assert row["low"] < row["mean"] < row["high"] and row["n"] == 8


def test_plot_has_one_line_per_method_and_unit_kind_with_units_and_title(tmp_path: Path) -> None:
    table = _series({"novel_view": 25.0, "self_reenactment": 28.0})
    series = {("gs-fit", k): table.filter(pl.col("kind") == k) for k in ("novel_view", "self_reenactment")}
    series[("nearest-input", "novel_view")] = table.filter(pl.col("kind") == "novel_view")
    specs = build_registry().specs["metrics"]
    path = plots.metric_by_group(series, "yaw", "PSNR (masked) against target yaw, demo / demo",
                                 metric_axis("psnr", specs, "higher"), "target yaw (deg)", tmp_path / "p.svg")
    svg = path.read_text()
    for label in ("gs-fit, novel view", "gs-fit, self-reenactment", "nearest-input, novel view",
                  "PSNR [dB] (higher is better)", "PSNR (masked) against target yaw, demo / demo"):
        assert label in svg, label
    assert svg.count('id="LineCollection_') == 2 * 3  # interval bars of each line, and again in its legend entry


def test_metric_labels_and_footnotes() -> None:
    specs = build_registry().specs["metrics"]
    assert [metric_title(m, specs) for m in ("psnr", "ssim", "lpips", "csim", "dreamsim")] == [
        "PSNR", "SSIM", "LPIPS", "CSIM", "DreamSim"]
    assert metric_title("my_metric", specs) == "my_metric"  # an unregistered id is shown as recorded
    notes = Footnotes()
    assert [notes.mark("a"), notes.mark("b"), notes.mark("a")] == [1, 2, 1] and notes.notes == ["a", "b"]
    reason = "DreamSim: missing weight file X. Run `harness weights fetch dreamsim-ensemble`"
    assert missing_note("dreamsim", reason, specs) == reason  # the title is not repeated
    assert missing_note("csim", "no weights", specs) == "CSIM: no weights"
    assert missing_note("lpips", "LPIPS-alex: missing weight file", specs) == "LPIPS-alex: missing weight file"
