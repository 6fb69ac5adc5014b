"""Known-answer tests for the statistics behind every table, and ``harness compare`` end to end."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import harness_cli
from scipy.stats import wilcoxon

from harness.scoring.scorer import METRIC_SCHEMA
from harness.scoring.statistics import (
    NoSharedUnitsError,
    cluster_bootstrap_ci,
    clustered_se,
    compare,
    holm,
    summarise,
)


def _table(values: list[float | None], subjects: list[str], metric: str = "psnr", method: str = "m",
           status: list[str] | None = None) -> pl.DataFrame:
    status = status or ["ok" if v is not None else "undefined" for v in values]
    rows = [{"run": "r", "method": method, "dataset": "d", "protocol": "p", "protocol_version": 1,
             "unit": f"{s}.seq.novel_view.f00000", "kind": "novel_view", "subject": s, "sequence": "seq",
             "camera": f"c{i}", "frame": 0, "metric": metric, "variant": "masked", "value": v, "status": st,
             "note": None} for i, (v, s, st) in enumerate(zip(values, subjects, status, strict=True))]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def test_clustered_standard_error_by_hand() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 12.0])
    subjects = np.array(["a", "a", "a", "b", "b", "c"])
    # mean 16/3; per-subject residual sums: a 6 - 16 = -10, b 14 - 32/3 = 10/3, c 12 - 16/3 = 20/3.
    expected = math.sqrt(3 / 2 * (100 + 100 / 9 + 400 / 9) / 36)
    assert clustered_se(values, subjects) == pytest.approx(expected, rel=1e-12)
    assert clustered_se(values, np.array(["a"] * 6)) is None


def test_holm_on_known_p_values() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.3]) == [0.6, None, 0.6]
    assert holm([0.2, None]) == [0.2, None]


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    values, subjects = rng.normal(size=60), np.repeat([f"s{i}" for i in range(10)], 6)
    first = cluster_bootstrap_ci(values, subjects, n_boot=500, seed=3)
    assert first == cluster_bootstrap_ci(values, subjects, n_boot=500, seed=3)
    assert first[0] < values.mean() < first[1]
    assert cluster_bootstrap_ci(np.full(12, 2.5), subjects[:12], seed=0) == (2.5, 2.5)


def test_summary_excludes_undefined_values_and_gives_no_mean_when_incomplete() -> None:
    table = _table([20.0, 22.0, None, 30.0], ["a", "a", "b", "b"])
    row = summarise(table).row(0, named=True)
    assert row["mean"] == pytest.approx(24.0) and row["undefined"] == 1 and row["n"] == 3 and row["complete"]
    incomplete = _table([20.0, 22.0, None, 30.0], ["a", "a", "b", "b"], status=["ok", "ok", "missing", "ok"])
    row = summarise(incomplete).row(0, named=True)
    assert row["mean"] is None and row["ci_low"] is None and row["missing"] == 1 and not row["complete"]


def test_constant_difference_gives_that_difference_with_a_zero_width_interval() -> None:
    rng = np.random.default_rng(0)
    a_values = list(rng.uniform(20, 30, size=24))
    subjects = [f"s{i % 6}" for i in range(24)]
    a = _table(a_values, subjects, method="A")
    b = _table([v - 0.75 for v in a_values], subjects, method="B")
    row = compare(a, b, n_boot=300).table.row(0, named=True)
    assert row["diff"] == pytest.approx(0.75) and row["n_pairs"] == 24 and row["subjects"] == 6
    assert row["ci_low"] == pytest.approx(0.75) and row["ci_high"] == pytest.approx(0.75)


def test_wilcoxon_runs_on_subject_means_and_holm_spans_the_metrics() -> None:
    subjects = [f"s{i // 2}" for i in range(16)]
    rng = np.random.default_rng(2)
    a_psnr, a_ssim = rng.uniform(20, 30, 16), rng.uniform(0.7, 0.9, 16)
    shift_psnr, shift_ssim = rng.normal(0.5, 1.0, 16), rng.normal(0.0, 0.01, 16)
    a = pl.concat([_table(list(a_psnr), subjects), _table(list(a_ssim), subjects, metric="ssim")])
    b = pl.concat([_table(list(a_psnr - shift_psnr), subjects),
                   _table(list(a_ssim - shift_ssim), subjects, metric="ssim")])
    table = compare(a, b, n_boot=200).table
    subject_means = shift_psnr.reshape(8, 2).mean(axis=1)
    psnr = table.filter(pl.col("metric") == "psnr").row(0, named=True)
    assert psnr["p_wilcoxon"] == pytest.approx(wilcoxon(subject_means).pvalue)
    assert table["p_holm"].to_list() == pytest.approx(holm(table["p_wilcoxon"].to_list()))


def test_runs_without_shared_units_are_refused() -> None:
    a = _table([1.0, 2.0], ["a", "b"])
    b = _table([1.0, 2.0], ["c", "d"])
    with pytest.raises(NoSharedUnitsError, match="share no scored"):
        compare(a, b)


def test_compare_command(tmp_path: Path, demo_adapter) -> None:
    """Two real demo runs: one scored against itself gives zero differences; an unrelated table is refused."""
    from harness.plugins.registry import build_registry
    from harness.runner import RunRequest, run

    result = run(RunRequest(method="nearest-input", dataset="demo", runs_dir=tmp_path, device="cpu"),
                 build_registry())
    run_a = result["prepared"].store.root
    run_b = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(run_a), str(run_b)], check=True)
    out = tmp_path / "cmp.csv"
    shown = harness_cli(["compare", str(run_a), str(run_b), "--bootstrap", "200", "--out", str(out)])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    table = pl.read_csv(out)
    assert set(table["metric"]) == {"psnr", "ssim"} and (table["diff"] == 0).all()
    assert (table["n_pairs"] == 60).all()
    other = tmp_path / "other"
    other.mkdir()
    _table([1.0], ["zzz"]).write_parquet(other / "metrics.parquet")
    refused = harness_cli(["compare", str(run_a), str(other)])
    assert refused.returncode != 0 and "share no scored" in refused.stderr
