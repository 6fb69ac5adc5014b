"""The documented plugin template must install and run as its README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
from conftest import harness_cli

TEMPLATE = Path(__file__).resolve().parent.parent / "plugin_template"


def test_plugin_template_installs_and_runs_on_the_demo(tmp_path: Path, demo_adapter) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(TEMPLATE)], check=True, timeout=300)
    listing = harness_cli(["ls", "methods"], pythonpath=site)
    assert "example-mean-colour" in listing.stdout, listing.stdout + listing.stderr
    result = harness_cli(["run", "--method", "example-mean-colour", "--dataset", "demo", "--runs-dir",
                          str(tmp_path / "runs"), "--device", "cpu"], pythonpath=site)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = pl.read_parquet(next((tmp_path / "runs").glob("*/*/metrics.parquet")))
    # The template is static (not animatable): the demo's self-reenactment units are skipped with the reason.
    assert metrics.height == 240
    skipped = metrics.filter(pl.col("status") == "skipped")
    assert set(skipped["kind"]) == {"self_reenactment"} and skipped["note"].str.contains("animatable").all()
    assert metrics.filter(pl.col("status") == "ok")["value"].is_finite().all()
    assert set(metrics.filter(pl.col("kind") == "novel_view")["status"]) == {"ok"}
