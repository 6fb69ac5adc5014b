from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "plugin_fixtures"


@pytest.fixture(scope="session", autouse=True)
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache per test session, so the demo is generated once."""
    home = tmp_path_factory.mktemp("harness_home")
    os.environ["HARNESS_HOME"] = str(home)
    from harness.plugins.registry import reset_registry

    reset_registry()
    return home


@pytest.fixture(scope="session")
def demo_adapter(harness_home: Path):
    from harness.data.demo import DemoDataset

    DemoDataset.generate_if_needed(None)
    return DemoDataset.open(None)


def write_plugin_dist(site: Path, name: str, entry_points: dict[str, str], modules: list[Path]) -> Path:
    """Make ``site`` hold a plugin distribution: its modules plus dist-info metadata with entry points."""
    site.mkdir(parents=True, exist_ok=True)
    for module in modules:
        (site / module.name).write_text(module.read_text())
    dist_info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[harness]\n{lines}\n")
    return site


@pytest.fixture(scope="session")
def test_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_plugin_dist(
        tmp_path_factory.mktemp("site"), "harness-test-plugins",
        {"test-methods": "harness_test_methods", "broken": "harness_broken_plugin"},
        [FIXTURES / "harness_test_methods.py", FIXTURES / "harness_broken_plugin.py"],
    )


def harness_cli(args: list[str], env_extra: dict[str, str] | None = None, pythonpath: Path | None = None,
                check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH", "")]))
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env,
                          check=check, timeout=600)
