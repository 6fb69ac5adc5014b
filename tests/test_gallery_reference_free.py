"""The reference-free gallery: units without ground truth show their input photo, every rendered view and the
reference-free values per view, never the ground-truth gallery's empty columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from harness.plugins.registry import build_registry
from harness.report.site import build_report
from harness.report.summary import write_summary

YAWS = [-30, 0, 30]
PHOTOS = ("ann", "bob")
CSIM = {"ann": [0.9, 0.8, None], "bob": [0.7, 0.6, 0.5]}  # None: undefined (no face in that render)
NO_FACE = "no face detected in the render"


@pytest.fixture(scope="module")
def wild_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real nearest-input run on a tiny in-the-wild protocol (2 photos, 3 orbit yaws), whose table then gets CSIM
    values as a run with the identity weights would; DreamSim stays missing (no weights)."""
    from standins import face_image

    from harness.runner import RunRequest, run
    from harness.scoring.scorer import METRIC_SCHEMA

    tmp = tmp_path_factory.mktemp("wild")
    photos = tmp / "photos"
    photos.mkdir()
    for i, name in enumerate(PHOTOS):
        Image.fromarray((face_image(64, (32, 32), 14, seed=i) * 255).astype(np.uint8)).save(photos / f"{name}.png")
    protocol = {"name": "tiny-wild", "version": 1, "dataset": "wild", "subjects": "all", "background": [1, 1, 1],
                "preprocess": {"crop": "none", "resolution": 48},
                "orbit": {"distance": 1.0, "fov_deg": 14.0, "pitch_deg": 0.0},
                "tasks": [{"kind": "in_the_wild", "photos": "all", "target_yaws": YAWS}]}
    (tmp / "p.yaml").write_text(json.dumps(protocol))
    result = run(RunRequest(method="nearest-input", dataset="wild", protocol=str(tmp / "p.yaml"), data_root=photos,
                            runs_dir=tmp / "runs", device="cpu"), build_registry())
    root = result["prepared"].store.root
    record = json.loads((root / "run.json").read_text())
    meta = {k: record[k] for k in ("method", "dataset", "protocol", "protocol_version")}
    rows = []
    for name in PHOTOS:
        cameras = [f"orbit_yaw{y:+04d}" for y in YAWS]
        for camera, value in zip(cameras, CSIM[name], strict=True):
            rows.append({**meta, "run": record["run_id"], "unit": f"{name}.photo.in_the_wild", "kind": "in_the_wild",
                         "subject": name, "sequence": "photo", "camera": camera, "frame": 0, "metric": "csim",
                         "variant": "against_photo", "value": value, "status": "ok" if value is not None else
                         "undefined", "note": None if value is not None else NO_FACE})
        for a in range(3):
            for b in range(a + 1, 3):
                rows.append({**rows[-1], "camera": f"{cameras[a]}~{cameras[b]}", "variant": "cross_view",
                             "value": 0.95, "status": "ok", "note": None})
    pl.DataFrame(rows, schema=METRIC_SCHEMA).write_parquet(root / "metrics.parquet")
    problems = json.loads((root / "scoring_errors.json").read_text())
    problems["unavailable_metrics"] = [u for u in problems["unavailable_metrics"] if u["metric"] != "csim"]
    assert {u["metric"] for u in problems["unavailable_metrics"]} >= {"dreamsim", "lpips"}  # no weights here
    (root / "scoring_errors.json").write_text(json.dumps(problems))
    return root


@pytest.fixture(scope="module")
def wild_site(wild_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wild-site")
    build_report([wild_run], out, build_registry())
    return out


def _run_page(site: Path) -> tuple[Path, str]:
    page = next((site / "runs").glob("nearest-input-*/index.html"))
    return page, page.read_text()


def test_reference_free_units_get_their_own_gallery(wild_site: Path) -> None:
    page, html = _run_page(wild_site)
    assert "Reference-free gallery" in html
    assert "Ground truth" not in html and "Gallery: masked" not in html and "Error colour scale" not in html
    for name in PHOTOS:
        section = html.split(f"<h3>{name}.photo.in_the_wild")[1].split("</section>")[0]
        photo = section.split('<figure class="photo">')[1].split("</figure>")[0]
        assert 'alt="input photo"' in photo
        # every orbit view, in the protocol's order, each with its own image file
        labels = [part.split("</strong>")[0] for part in section.split('<figure class="view">')[1:]]
        assert [lab.split("<strong>")[1] for lab in labels] == ["yaw -30°", "yaw +0°", "yaw +30°"]
        for src in (s.split('"')[0] for s in section.split('<img src="')[1:]):
            assert (page.parent / src).is_file(), src
        for value in CSIM[name]:
            if value is not None:
                assert f"CSIM {value:.4f}" in section
        assert "CSIM 0.9500 (mean of 3 pairs of views)" in section


def test_undefined_and_missing_values_are_short_marks_with_footnotes(wild_site: Path) -> None:
    _, html = _run_page(wild_site)
    notes = html.split('<ol class="footnotes">')[1].split("</ol>")[0]
    items = [li.split("</li>")[0] for li in notes.split("<li ")[1:]]
    undefined = next(i for i, text in enumerate(items, 1) if NO_FACE in text)
    missing = next(i for i, text in enumerate(items, 1) if "harness weights fetch dreamsim-ensemble" in text)
    assert f'undefined<sup><a href="#note-{undefined}">{undefined}</a></sup>' in html
    assert html.count(f'missing<sup><a href="#note-{missing}">{missing}</a></sup>') == 2 * len(YAWS)
    assert len(items) == 2  # one note per distinct reason, however many cells point at it
    # LPIPS has no reference-free form: it is not "missing" from a run that cannot have it.
    assert "LPIPS" not in html


def test_board_and_summary_of_a_reference_free_run(wild_site: Path, wild_run: Path) -> None:
    board = (wild_site / "boards" / "wild.tiny-wild.html").read_text()
    assert "LPIPS" not in board and "PSNR" not in board
    assert "against the input photo" in board and "CSIM ↑" in board and "DreamSim ↓" in board
    summary = write_summary(wild_run, build_registry()).read_text()
    assert "LPIPS" not in summary and "missing: " not in summary  # no long red paragraph
    assert "The input photo and every rendered view" in summary


@pytest.mark.skipif(not Path("/usr/bin/chromedriver").exists(), reason="needs Debian's chromium + chromium-driver")
def test_reference_free_gallery_in_headless_chromium(wild_site: Path, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,1000",
                 "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    page, _ = _run_page(wild_site)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.resolve().as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == len(PHOTOS) * (1 + len(YAWS))
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                   for i in images)
        for section in driver.find_elements(By.CSS_SELECTOR, "section.wild"):
            figures = section.find_elements(By.TAG_NAME, "figure")
            assert len({f.location["y"] for f in figures}) == 1  # the photo and its views side by side, one row
            assert figures[0].get_attribute("class") == "photo"
        link = driver.find_element(By.CSS_SELECTOR, ".mark sup a")
        target = link.get_attribute("href").split("#")[1]
        assert driver.find_element(By.ID, target).text  # every mark points at a footnote that exists
    finally:
        driver.quit()
