"""The report site: numbers traceable to the Parquet tables, escaping, leaderboard.yaml, overrides, a real browser."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from harness.api import ReportExtensionSpec
from harness.plugins.registry import build_registry
from harness.report.leaderboard import add, load
from harness.report.site import build_report
from harness.report.tables import subject_means
from harness.runner import RunRequest, run

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> list[Path]:
    tmp = tmp_path_factory.mktemp("report")
    protocol = {
        "name": "demo-small", "version": 1, "dataset": "demo", "subjects": ["901", "902"],
        "background": [1.0, 1.0, 1.0],
        "tasks": [{"kind": "novel_view", "sequences": ["EXP-1-head"], "frames": [0], "source_cameras": ["222200037"],
                   "target_cameras": ["222200040", "222200043", "221501007"]}],
    }
    (tmp / "small.yaml").write_text(yaml.safe_dump(protocol))
    registry = build_registry()
    roots = []
    for method, config in (("nearest-input", {"label": HOSTILE}), ("gs-fit", {"steps": 5, "num_gaussians": 3000})):
        result = run(RunRequest(method=method, dataset="demo", protocol=str(tmp / "small.yaml"),
                                runs_dir=tmp / "runs", config=config, device="cpu"), registry)
        roots.append(result["prepared"].store.root)
    return roots


@pytest.fixture(scope="module")
def site(two_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    registry = build_registry()
    registry.specs["report_extensions"]["test-ext"] = ReportExtensionSpec(
        name="test-ext", sections="report_extension_fixture:sections")
    paper = [e for e in load(ROOT / "leaderboard.yaml") if e["source"] == "paper"]
    paper.append({"method": "Printed-Method", "dataset": "demo", "protocol": "its-own-split", "source": "paper",
                  "paper": "A paper", "table": 3, "metrics": {"psnr": 99.0}})
    build_report(two_runs, out, registry, paper_rows=paper)
    return out


def test_every_leaderboard_number_is_recomputed_from_the_parquet_tables(site: Path, two_runs: list[Path]) -> None:
    html = (site / "boards" / "demo.demo-small.html").read_text()
    shown = {}
    for run_id, body in re.findall(r'<tr class="main" data-run="([^"]+)">(.*?)</tr>', html, re.S):
        shown[run_id] = {m: float(v) for v, m in re.findall(r'data-sort="([0-9.eE+-]+)" data-metric="(\w+)"', body)}
    assert len(shown) == 2
    for root in two_runs:
        run_id = json.loads((root / "run.json").read_text())["run_id"]
        table = pl.read_parquet(root / "metrics.parquet").filter(
            (pl.col("variant") == "masked") & (pl.col("status") == "ok"))
        for metric, value in shown[run_id].items():
            assert value == pytest.approx(table.filter(pl.col("metric") == metric)["value"].mean(), abs=1e-9)
        exported = pl.read_csv(site / "exports" / "demo.demo-small.csv").filter(pl.col("run") == run_id)
        assert exported["psnr_mean"][0] == pytest.approx(shown[run_id]["psnr"], abs=1e-9)
    # gs-fit ranks above nearest-input on both metrics, and the per-subject rows are the subjects' own means.
    assert html.index('data-run="gs-fit') < html.index('data-run="nearest-input')
    table = pl.read_parquet(two_runs[0] / "metrics.parquet")
    per_subject = subject_means(table, "masked")
    manual = table.filter((pl.col("subject") == "902") & (pl.col("metric") == "ssim") & (pl.col("variant") == "masked"))
    assert per_subject["902"]["ssim"] == pytest.approx(float(np.mean(manual["value"].to_numpy())), abs=1e-12)


def test_html_in_names_and_config_is_escaped(site: Path, two_runs: list[Path], tmp_path: Path) -> None:
    run_pages = list((site / "runs").glob("nearest-input-*/index.html"))
    text = run_pages[0].read_text()
    assert HOSTILE not in text and "&lt;script&gt;" in text
    hostile_run = tmp_path / "hostile"
    shutil.copytree(two_runs[0], hostile_run)
    record = json.loads((hostile_run / "run.json").read_text())
    # HTML in a name is escaped on every page; a name with a path separator is refused (tests/test_hardening.py).
    record.update(method="<b>bold<b>", run_id="hostile-run")
    (hostile_run / "run.json").write_text(json.dumps(record))
    out = build_report([hostile_run], tmp_path / "site", build_registry())
    assert "<b>bold<b>" not in out.read_text() and "&lt;b&gt;bold&lt;b&gt;" in out.read_text()


def test_pages_files_and_extensions(site: Path) -> None:
    board = (site / "boards" / "demo.demo-small.html").read_text()
    # Paper rows sit in their own, labelled table after the measured one, never among the ranked rows.
    measured, _, printed = board.partition("not measured here, not ranked")
    assert "Printed-Method" in printed and "Printed-Method" not in measured and "99.0000" in printed
    assert (site / "exports" / "demo.demo-small.tex").read_text().startswith(r"\begin{tabular}")
    assert list((site / "plots").glob("*.yaw.svg"))
    run_page = next((site / "runs").glob("gs-fit-*/index.html")).read_text()
    assert "<p id='ext'>units: 2</p>" in run_page and "worst PSNR" in run_page
    assert "base64" not in run_page and list((site / "runs").glob("gs-fit-*/img/*.png"))
    method_page = (site / "methods" / "gs-fit.html").read_text()
    assert "Time and memory per unit" in method_page and "reference" in method_page


def test_ground_truth_gallery_inputs_error_scale_and_spelling(site: Path) -> None:
    from PIL import Image

    page = next((site / "runs").glob("gs-fit-*/index.html"))
    html = page.read_text()
    assert "<th>Input</th>" in html and "worst PSNR" in html and "worst psnr" not in html
    inputs = sorted(page.parent.glob("img/input.*.png"))
    assert [p.name for p in inputs] == ["input.901.EXP-1-head.cam_222200037.f00000.png",
                                        "input.902.EXP-1-head.cam_222200037.f00000.png"]  # once per source view
    assert html.count('alt="input cam 222200037, frame 0"') == html.count('alt="prediction"')  # one per row
    assert "Error colour scale" in html and "linear-gradient(to right, rgb(0, 0, 4) 0%" in html
    error = np.asarray(Image.open(next(page.parent.glob("img/*.err.png"))).convert("RGB"), dtype=np.int32)
    assert (np.abs(error[..., 0] - error[..., 2]) > 20).any()  # a colour map, not grey levels
    assert "PSNR " in html and " dB<br>" in html  # values carry their unit
    board = (site / "boards" / "demo.demo-small.html").read_text()
    assert ">PSNR [dB] ↑</th>" in board and ">SSIM ↑</th>" in board and ">psnr" not in board
    # a metric without weights: one short marked cell per run, the fix once in a footnote
    notes = board.split('<ol class="footnotes">')[1].split("</ol>")[0]
    assert notes.count("harness weights fetch lpips-alex") == 1 and "<p class" not in notes
    assert board.count('<span class="mark">missing<sup>') == 2 * 3  # two runs x LPIPS, CSIM, DreamSim
    tex = (site / "exports" / "demo.demo-small.tex").read_text()
    assert r"PSNR [dB] $\uparrow$" in tex and "psnr" not in tex
    assert "psnr_mean" in (site / "exports" / "demo.demo-small.csv").read_text()  # data files keep the ids


def test_user_templates_override_the_defaults(two_runs: list[Path], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "index.html.j2").write_text('{% extends "base.html.j2" %}{% block body %}<h1>Our lab</h1>'
                                             '{% endblock %}')
    index = build_report(two_runs, tmp_path / "site", build_registry(), user_templates=templates)
    assert "<h1>Our lab</h1>" in index.read_text()


def test_leaderboard_add_then_build(two_runs: list[Path], tmp_path: Path) -> None:
    import os

    from conftest import harness_cli

    board_file = tmp_path / "leaderboard.yaml"
    shutil.copyfile(ROOT / "leaderboard.yaml", board_file)
    original = board_file.read_text()
    entry, replaced = add(board_file, two_runs[1])
    assert entry["source"] == "measured" and not replaced
    assert entry["run_dir"] == os.path.relpath(two_runs[1].resolve(), tmp_path.resolve())  # relative to the file
    text = board_file.read_text()
    assert text.startswith(original.rstrip("\n"))  # every existing line kept as it was, the row appended
    assert text[len(original.rstrip("\n")):].lstrip("\n").startswith("  - {method: gs-fit,")  # in the file's style
    entries = load(board_file)
    assert sum(e["source"] == "measured" for e in entries) == 1
    assert next(e for e in entries if e["source"] == "measured")["run_dir"] == str(two_runs[1].resolve())
    _, replaced = add(board_file, two_runs[1])  # the same run again replaces its row
    assert replaced and sum(e["source"] == "measured" for e in load(board_file)) == 1
    done = harness_cli(["leaderboard", "--file", str(board_file), "add", str(two_runs[1])])
    assert done.returncode == 0 and "replaced gs-fit" in done.stdout
    result = harness_cli(["leaderboard", "--file", str(board_file), "--out", str(tmp_path / "lb")])
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "lb" / "boards" / "demo.demo-small.html").read_text()
    assert entry["run"] in page


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.skipif(not Path("/usr/bin/chromedriver").exists(), reason="needs Debian's chromium + chromium-driver")
def test_site_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    server, base = _serve(site)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        for page in ("index.html", "boards/demo.demo-small.html", next(
                p.relative_to(site).as_posix() for p in (site / "runs").glob("gs-fit-*/index.html"))):
            driver.get(f"{base}/{page}")
            images = driver.find_elements(By.TAG_NAME, "img")
            assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                       for i in images), page
        driver.get(f"{base}/boards/demo.demo-small.html")
        order = lambda: [r.get_attribute("data-run") for r in driver.find_elements(By.CSS_SELECTOR, "#board tr.main")]  # noqa: E731
        before = order()
        header = next(h for h in driver.find_elements(By.CSS_SELECTOR, "#board th") if h.text.startswith("PSNR"))
        header.click()  # ascending psnr: the worse method first
        after = order()
        assert sorted(before) == sorted(after) and after != before
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "board.png"
        driver.save_screenshot(str(shot))
        pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
        assert pixels.std() > 5.0
    finally:
        driver.quit()
        server.shutdown()
