"""The documented plugin template must install and run as its README says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
from conftest import harness_cli

TEMPLATE = Path(__file__).resolve().parent.parent / "plugin_template"


def _artefacts() -> set[str]:
    return {p.name for p in TEMPLATE.iterdir() if p.name == "build" or p.name.endswith(".egg-info")}


def test_plugin_template_installs_and_runs_on_the_demo(tmp_path: Path, demo_adapter) -> None:
    before = _artefacts()
    copy = Path(shutil.copytree(TEMPLATE, tmp_path / "template",
                                ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(copy)], check=True, timeout=300)
    assert _artefacts() == before  # installing never writes build/ or *.egg-info into the template folder
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


def test_the_rename_checklist_names_every_place_the_template_names_itself() -> None:
    readme = (TEMPLATE / "README.md").read_text()
    checklist = readme[readme.index("## Rename checklist"):]
    pyproject = (TEMPLATE / "pyproject.toml").read_text()
    plugin = (TEMPLATE / "harness_example_plugin" / "plugin.py").read_text()
    for name in ("harness-example-plugin", "harness_example_plugin", "example-mean-colour"):
        assert name in checklist, name
    assert 'example = "harness_example_plugin.plugin"' in pyproject and "`example`" in checklist
    assert 'name="example-mean-colour"' in plugin and 'target="harness_example_plugin.method:' in plugin
