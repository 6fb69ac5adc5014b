"""What the command line prints, and what it costs before doing anything: plain progress lines stream when stdout
is not a terminal; a wrong method name and the listings answer without importing torch; --version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import harness_cli

NO_TORCH = ("import sys; from harness.cli import main; rc = main({args!r}); "
            "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH')")


def _probe(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_TORCH.format(args=args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


def test_an_unknown_method_is_refused_before_torch_is_imported() -> None:
    done = _probe(["run", "--method", "omgea", "--dataset", "demo"])
    assert "NO-TORCH" in done.stdout, done.stdout + done.stderr
    assert "unknown method 'omgea'" in done.stderr and "Did you mean 'omega'" in done.stderr
    assert "harness ls methods" in done.stderr and "plugin_template" in done.stderr


def test_listings_import_no_torch() -> None:
    for args in (["ls", "datasets"], ["ls", "methods"], ["ls", "metrics"]):
        assert "NO-TORCH" in _probe(args).stdout, args


def test_the_demo_specs_declare_the_readers_default_roots() -> None:
    from harness.api.specs import load_target
    from harness.paths import harness_home
    from harness.plugins.registry import build_registry

    registry = build_registry()
    for name in ("demo", "demo-sweep", "demo-wild"):
        spec = registry.dataset(name)
        assert harness_home() / spec.default_root == load_target(spec.target).default_root(), name


def test_version() -> None:
    from harness import __version__

    done = harness_cli(["--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"harness {__version__}"


def test_progress_streams_as_plain_lines_when_stdout_is_a_pipe(tmp_path: Path, test_plugin_site: Path,
                                                               demo_adapter) -> None:
    env = {**os.environ, "PYTHONPATH": str(test_plugin_site), "HARNESS_TEST_SLEEP": "0.5", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--method", "slow-nearest", "--dataset",
                                "demo", "--runs-dir", str(tmp_path), "--device", "cpu"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        seen_alive = None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("predict ") and "/" in line:
                seen_alive = process.poll() is None  # the line arrived while the run was still going
                break
        rest, _ = process.communicate(timeout=600)
    finally:
        process.kill()
    assert seen_alive is True, "".join(lines)
    text = "".join(lines) + rest
    assert "elapsed" in text and "score " in text and "\x1b[" not in text  # plain lines, no terminal codes


def test_tables_at_80_columns_keep_every_character(capsys) -> None:
    import json

    from rich.console import Console

    from harness.listing import emit

    columns = ["metric", "variant", "pairs", "subjects", "mean A", "mean B", "A - B", "95% interval", "p (Wilcoxon)",
               "p (Holm)", "better"]
    rows = [["psnr", "masked", "48", "3", "24.1234", "23.0987", "+1.0247", "\\[+0.8123, +1.2456]", "0.25", "0.5",
             "A"]]
    console = Console(width=80, force_terminal=False, highlight=False)
    emit(console, "A vs B", columns, rows, numeric=columns[2:10])
    out = capsys.readouterr().out
    assert "…" not in out
    for value in ("24.1234", "23.0987", "+1.0247", "[+0.8123, +1.2456]", "p (Wilcoxon): 0.25"):
        assert value in out, out
    emit(console, "A vs B", columns, rows, fmt="json")
    assert json.loads(capsys.readouterr().out)[0]["95% interval"] == "[+0.8123, +1.2456]"
    emit(console, "A vs B", columns, rows, fmt="csv")
    assert capsys.readouterr().out.splitlines()[1].startswith("psnr,masked,48,3,24.1234")
    emit(console, "A vs B", columns, rows, fmt="markdown")
    assert "| psnr | masked | 48 |" in capsys.readouterr().out


def test_listing_datasets_at_80_columns_keeps_the_access_urls() -> None:
    done = subprocess.run([sys.executable, "-m", "harness.cli", "ls", "datasets"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, timeout=300)
    assert done.returncode == 0 and "…" not in done.stdout
    assert "https://github.com/facebookresearch/ava-256" in done.stdout.replace("\n", " ")
    csv_out = harness_cli(["ls", "datasets", "--format", "csv"]).stdout
    assert csv_out.splitlines()[0] == "name,plugin,description" and "\ndemo," in csv_out


def test_a_method_name_stands_for_its_weight_sources() -> None:
    done = harness_cli(["weights", "status", "splatshot"])
    assert "unknown weight source" not in done.stderr, done.stderr  # (exit 1: the files are missing here)
    assert "splatshot-unet-config-json" in done.stdout and "lpips" not in done.stdout
