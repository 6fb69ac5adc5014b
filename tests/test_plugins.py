from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import harness_cli

from harness.plugins.registry import UnknownNameError, build_registry


def test_listing_methods_does_not_import_torch() -> None:
    code = ("import sys; from harness.cli import main; rc = main(['ls', 'methods']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nearest-input" in result.stdout


def test_builtins_register_through_the_entry_point_group() -> None:
    registry = build_registry()
    assert {p.name for p in registry.plugins} >= {"nearest-input", "core-metrics", "core-datasets", "core-executors"}
    assert registry.owner("methods", "nearest-input") == "nearest-input"
    assert {"psnr", "ssim"} <= set(registry.specs["metrics"])


def test_unknown_name_suggests_close_matches() -> None:
    registry = build_registry()
    with pytest.raises(UnknownNameError, match="Did you mean 'nearest-input'"):
        registry.method("nearest-inptu")


def test_cli_reports_unknown_method_with_suggestion() -> None:
    result = harness_cli(["run", "--method", "neerest-input", "--dataset", "demo"])
    assert result.returncode == 2
    assert "Did you mean 'nearest-input'" in result.stderr


def test_entry_point_plugin_is_discovered_and_broken_one_is_isolated(test_plugin_site: Path) -> None:
    listing = harness_cli(["ls", "methods"], pythonpath=test_plugin_site)
    assert listing.returncode == 0, listing.stderr
    assert "slow-nearest" in listing.stdout and "nearest-input" in listing.stdout
    assert "failed to load" in listing.stdout

    plugins = harness_cli(["plugins"], pythonpath=test_plugin_site)
    assert plugins.returncode == 0
    assert "harness-test-plugins" in plugins.stdout
    assert "broken" in plugins.stdout and "broken on purpose" in plugins.stdout


def test_hook_that_raises_is_recorded_and_others_still_load() -> None:
    from harness.plugins.hookspecs import hookimpl

    class Bad:
        @staticmethod
        @hookimpl
        def register_methods(register):
            raise RuntimeError("hook exploded")

    registry = build_registry(extra_modules=[("bad", Bad)])
    assert "nearest-input" in registry.specs["methods"]
    assert any(f.plugin == "bad" and "hook exploded" in f.error for f in registry.failures)


def test_duplicate_names_are_refused_with_a_message() -> None:
    from harness.api import MethodSpec
    from harness.plugins.hookspecs import hookimpl

    class Dup:
        @staticmethod
        @hookimpl
        def register_methods(register):
            register(MethodSpec(name="nearest-input", target="x:y"))

    registry = build_registry(extra_modules=[("dup", Dup)])
    assert registry.method("nearest-input").target.startswith("harness_methods")
    assert any("already registered" in f.error for f in registry.failures)
