"""Faults a run or a scoring meets, each contained where it happens and named: a second run on the same folder, a
unit left incomplete, bad prediction files, corrupt weights, a protocol with no units, a full disk, batch-size
dependent values, bad YAML and damaged run files."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from harness.cli import main
from harness.plugins.registry import build_registry
from harness.runner import RunRequest, prepare, run
from harness.store import RunFolderError, RunLockedError, RunStore

DEMO_RUN = ["run", "--method", "nearest-input", "--dataset", "demo", "--device", "cpu"]


def _request(runs: Path, **extra) -> RunRequest:
    return RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device="cpu", **extra)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> Path:
    """A finished nearest-input run on the demo (its runs folder)."""
    runs = tmp_path_factory.mktemp("runs")
    run(_request(runs), build_registry())
    return runs


def _run_dir(runs: Path) -> Path:
    return next((runs / "demo.demo").iterdir())


def _copy(baseline: Path, tmp_path: Path) -> Path:
    """A copy of the baseline's runs folder (the same command resumes it)."""
    shutil.copytree(baseline, tmp_path / "runs", symlinks=True)
    return tmp_path / "runs"


def _units(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "predictions").iterdir() if p.is_dir() and not p.name.startswith("."))


def _scorable_copy(baseline: Path, tmp_path: Path, keep: int = 2) -> Path:
    """A copy of the baseline run with the predictions of its first ``keep`` units only, and no cached scores."""
    run_dir = _run_dir(_copy(baseline, tmp_path))
    for unit in _units(run_dir)[keep:]:
        shutil.rmtree(run_dir / "predictions" / unit)
    shutil.rmtree(run_dir / "scores", ignore_errors=True)
    return run_dir


# 1. The run lock, and complete units -----------------------------------------------------------------------------

def test_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(baseline: Path, capsys) -> None:
    store = RunStore(_run_dir(baseline))
    before = store.run_json.read_bytes()
    with store.lock(command="harness run (the test holds it)"):
        with pytest.raises(RunLockedError) as caught:
            run(_request(baseline), build_registry())
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message and "--wait" in message
        assert "the test holds it" in message and str(store.root) in message
        capsys.readouterr()
        assert main([*DEMO_RUN, "--runs-dir", str(baseline)]) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()}" in err and "Traceback" not in err
    assert store.run_json.read_bytes() == before  # the refused runs wrote nothing


def test_wait_waits_for_the_holder_then_runs(baseline: Path, capsys) -> None:
    store = RunStore(_run_dir(baseline))
    held, release = threading.Event(), 1.0

    def hold() -> None:
        with store.lock(command="the holder"):
            held.set()
            time.sleep(release)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    t0 = time.monotonic()
    code = main([*DEMO_RUN, "--runs-dir", str(baseline), "--wait"])
    waited = time.monotonic() - t0
    holder.join()
    out = capsys.readouterr().out
    assert code == 0 and waited >= release * 0.8
    assert "waiting" in out and f"pid {os.getpid()}" in out
    assert str(os.getpid()) in store.lock_path.read_text()  # the lock file now names the run that got it


def test_a_committed_unit_with_a_deleted_image_is_redone(baseline: Path, tmp_path: Path) -> None:
    runs = _copy(baseline, tmp_path)
    run_dir = _run_dir(runs)
    store = RunStore(run_dir)
    prepared = prepare(_request(runs), build_registry())
    unit = prepared.units[0]
    info = (store.unit_dir(unit.name) / "info.json").read_text()
    assert '"files"' in info
    assert store.is_done(unit.name, prepared.unit_key(unit), unit.targets)
    victim = store.find_prediction(unit.name, unit.targets[-1])
    victim.unlink()
    assert not store.is_done(unit.name, prepared.unit_key(unit), unit.targets)
    assert not store.is_done(unit.name, prepared.unit_key(unit))  # info.json lists it: missing without targets too

    result = run(_request(runs), build_registry())
    assert result["record"]["timing"]["units_predicted"] == 1
    assert result["record"]["timing"]["units_skipped"] == len(prepared.units) - 1
    assert victim.is_file()
    assert set(result["scored"].metrics["status"]) == {"ok"}


# 2. One bad file stays one bad image -----------------------------------------------------------------------------

def _png_claiming(path: Path, width: int, height: int) -> None:
    """Rewrite a PNG's IHDR to claim ``width`` x ``height`` (valid CRC), leaving its small data as it is."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_bomb_headers_and_odd_arrays_are_image_read_errors(tmp_path: Path) -> None:
    from PIL import Image

    from harness.imageio import MAX_IMAGE_PIXELS, ImageReadError, read_image, read_mask

    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS
    for side in (100_000, 12_000):  # over twice the limit (PIL's error) and just over it (PIL's warning)
        path = tmp_path / f"bomb{side}.png"
        Image.new("RGB", (4, 4)).save(path)
        _png_claiming(path, side, side)
        for reader in (read_image, read_mask):
            with pytest.raises(ImageReadError, match=re.escape(str(path))):
                reader(path)
    strings = tmp_path / "strings.npy"
    np.save(strings, np.full((8, 8, 3), "0.5"))
    with pytest.raises(ImageReadError, match=r"strings\.npy holds <U3"):
        read_image(strings)
    folder = tmp_path / "cam_x.png"
    folder.mkdir()
    with pytest.raises(ImageReadError, match=r"cam_x\.png is a folder"):
        read_image(folder)


def test_a_folder_a_string_array_and_a_bomb_png_are_contained_to_their_images(baseline: Path, tmp_path: Path,
                                                                              demo_adapter) -> None:
    from harness.scoring.scorer import score_run

    run_dir = _scorable_copy(baseline, tmp_path, keep=3)
    units = _units(run_dir)
    pngs = [sorted((run_dir / "predictions" / u).rglob("*.png"))[0] for u in units]
    folder, strings, bomb = pngs
    folder.unlink()
    folder.mkdir()
    (folder / "inside.txt").write_text("not an image")
    strings.unlink()
    np.save(strings.with_suffix(".npy"), np.full((512, 512, 3), "x"))
    _png_claiming(bomb, 100_000, 100_000)

    result = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["psnr"])
    by_file = {e["error"] for e in result.errors}
    messages = "\n".join(by_file)
    assert f"{folder} is a folder" in messages
    assert f"{strings.with_suffix('.npy')} holds <U1" in messages
    assert str(bomb) in messages and "decompression bomb" in messages
    holes = result.metrics.filter((pl.col("status") == "missing") & pl.col("unit").is_in(units))
    assert set(holes["unit"]) == set(units) and holes.height == 3 * 2  # one image each, psnr x 2 variants
    assert set(holes["camera"]) <= {p.stem.removeprefix("cam_") for p in pngs}
    assert holes["note"].str.contains(str(run_dir), literal=True).all()
    ok = result.metrics.filter((pl.col("status") == "ok") & pl.col("unit").is_in(units))
    assert ok.height > 0  # the other images of those units are scored


def test_a_damaged_score_cache_is_only_a_cache_miss(baseline: Path, tmp_path: Path, demo_adapter) -> None:
    from harness.scoring.scorer import score_run

    run_dir = _scorable_copy(baseline, tmp_path, keep=1)
    first = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["psnr"]).metrics
    unit = _units(run_dir)[0]
    (run_dir / "scores" / f"{unit}.json").write_text("{not json")
    (run_dir / "scores" / f"{unit}.parquet").write_bytes(b"PAR1 garbage")
    again = score_run(run_dir, build_registry(), adapter=demo_adapter, metric_names=["psnr"])
    assert again.metric_seconds > 0 and again.metrics.equals(first)


@pytest.fixture()
def weights_home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "weights"


def test_a_corrupt_lpips_backbone_is_named_with_the_fix(weights_home: Path, monkeypatch) -> None:
    from standins import trust_lpips_standin

    from harness.scoring import sources
    from harness.scoring.scorer import load_metrics

    path = weights_home / sources.LPIPS_ALEX.files[0].relpath
    path.parent.mkdir(parents=True)
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    registry = build_registry()
    # As fetched from the official URL it fails its published checksum ...
    loaded, unavailable = load_metrics(registry, ["psnr", "lpips"], "cpu")
    assert [s.name for s, _ in loaded] == ["psnr"]
    assert str(path) in unavailable[0]["reason"] and "harness weights fetch lpips-alex" in unavailable[0]["reason"]
    # ... and a file that passes it (a stand-in, a mirror) but does not load is named as corrupt too.
    trust_lpips_standin(monkeypatch, weights_home)
    loaded, unavailable = load_metrics(registry, ["psnr", "lpips"], "cpu")
    reason = unavailable[0]["reason"]
    assert [s.name for s, _ in loaded] == ["psnr"]
    assert f"weight file {path}" in reason and "corrupt" in reason and "harness weights fetch lpips-alex" in reason


def test_a_broken_arcface_onnx_is_named_with_the_fix(weights_home: Path) -> None:
    from standins import install_insightface_standin

    from harness.scoring.scorer import load_metrics

    pack = install_insightface_standin(weights_home)
    broken = pack / "w600k_r50.onnx"
    broken.write_bytes(broken.read_bytes()[:200])
    _, unavailable = load_metrics(build_registry(), ["csim"], "cpu")
    reason = unavailable[0]["reason"]
    assert reason.startswith(f"CSIM: weight file {broken} is not usable: it is corrupt")
    assert "harness weights fetch insightface-buffalo_l" in reason


# 3. A protocol that gives no units ---------------------------------------------------------------------------------

def test_a_run_with_zero_units_is_an_error(tmp_path: Path, capsys) -> None:
    from harness.data.errors import ProtocolError

    empty = tmp_path / "empty"
    empty.mkdir()
    request = RunRequest(method="nearest-input", dataset="nersemble-v1", data_root=empty, runs_dir=tmp_path / "runs")
    with pytest.raises(ProtocolError, match="gives 0 units"):
        prepare(request, build_registry())
    code = main(["run", "--method", "nearest-input", "--dataset", "nersemble-v1", "--data-root", str(empty),
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "0 units" in err and str(empty) in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# 4. Smaller ones ---------------------------------------------------------------------------------------------------

def _disk_full_after(monkeypatch, nbytes: int = 10) -> None:
    def write_parquet(self, file, *args, **kwargs) -> None:
        Path(file).write_bytes(b"PAR1"[:nbytes])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_parquet)


def test_disk_full_leaks_no_temp_file_and_is_one_line(baseline: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.scoring.scorer import score_run

    run_dir = _scorable_copy(baseline, tmp_path, keep=1)
    metrics_before = (run_dir / "metrics.parquet").read_bytes()
    _disk_full_after(monkeypatch)
    with pytest.raises(OSError) as caught:
        score_run(run_dir, build_registry(), metric_names=["psnr"])
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith(".parquet")
    assert not list(run_dir.rglob("*.tmp"))
    capsys.readouterr()
    assert main(["score", str(run_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "disk full while writing" in err and str(run_dir) in err and "nothing committed was lost" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / "metrics.parquet").read_bytes() == metrics_before  # the committed table is kept


def test_a_json_write_on_a_full_disk_names_its_file(tmp_path: Path, monkeypatch) -> None:
    from harness import jsonio

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonio.os, "fsync", fsync)
    target = tmp_path / "out.json"
    with pytest.raises(OSError) as caught:
        jsonio.atomic_write_json(target, {"a": 1})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert not list(tmp_path.iterdir())
    polars_style = jsonio.naming(OSError("write failed: No space left on device (os error 28)"), target)
    assert polars_style.errno == errno.ENOSPC and polars_style.filename == str(target)


def test_psnr_and_ssim_are_bitwise_the_same_for_every_batch_size(baseline: Path, tmp_path: Path, demo_adapter,
                                                                 monkeypatch) -> None:
    from harness.scoring import scorer

    run_dir = _scorable_copy(baseline, tmp_path, keep=3)
    tables = {}
    threads = torch.get_num_threads()
    try:  # torch's own reductions split the work by thread: the batch changed the last bits with 2 threads
        for n_threads in (2, 1):
            torch.set_num_threads(n_threads)
            for batch in (1, 3, 16):
                shutil.rmtree(run_dir / "scores", ignore_errors=True)
                monkeypatch.setattr(scorer, "BATCH_SIZE", {"cpu": batch, "cuda": batch})
                table = scorer.score_run(run_dir, build_registry(), adapter=demo_adapter,
                                         metric_names=["psnr", "ssim"]).metrics
                tables[n_threads, batch] = table.filter(pl.col("status") == "ok")
    finally:
        torch.set_num_threads(threads)
    reference = tables[2, 1]
    values = reference["value"].to_numpy()
    assert np.isfinite(values).all() and len(values) >= 20 * 2 * 2
    for key, table in tables.items():
        assert table.select(scorer.KEY_COLUMNS).equals(reference.select(scorer.KEY_COLUMNS))
        assert np.array_equal(table["value"].to_numpy().view(np.uint64), values.view(np.uint64)), key


def test_metric_values_do_not_depend_on_batch_or_memory_layout() -> None:
    from harness.scoring.metrics import psnr, ssim

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(16, 96, 80, 3, generator=gen).permute(0, 3, 1, 2)  # as the scorer stacks decoded images
    pred = (gt + 0.05 * torch.randn(gt.shape, generator=gen)).clamp(0, 1)
    for metric in (psnr, ssim):
        whole = metric(pred, gt)
        for batch in (1, 3):
            parts = torch.cat([metric(pred[i:i + batch], gt[i:i + batch]) for i in range(0, 16, batch)])
            assert torch.equal(parts, whole), (metric.__name__, batch)
        assert torch.equal(metric(pred.contiguous(), gt.contiguous()), whole)  # nor on the memory layout
        assert whole.dtype == torch.float64 and whole.shape == (16,)


@pytest.mark.parametrize("value", ["a=[1", "a=!!python/object/apply:os.system ['true']"])
def test_bad_yaml_in_config_names_the_option(value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*DEMO_RUN, "--config", value])
    message = str(caught.value.code)
    assert message.startswith(f"harness: --config {value!r}") and "not valid YAML" in message


@pytest.mark.parametrize("text", ["schema_version: 1\nentries: [\n", "!!python/object/apply:os.system ['true']\n"])
def test_bad_yaml_in_the_leaderboard_names_the_file(tmp_path: Path, text: str, capsys) -> None:
    from harness.report.leaderboard import LeaderboardError, load

    path = tmp_path / "leaderboard.yaml"
    path.write_text(text)
    with pytest.raises(LeaderboardError, match=re.escape(f"leaderboard file {path} is not valid YAML")):
        load(path)
    assert main(["leaderboard", "--file", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_a_corrupt_run_json_or_metrics_table_is_named(baseline: Path, tmp_path: Path, capsys) -> None:
    from harness.report.errors import ReportInputError
    from harness.report.runs import load_run

    run_dir = _run_dir(_copy(baseline, tmp_path))
    metrics = run_dir / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:50])
    with pytest.raises(ReportInputError, match=re.escape(str(metrics))):
        load_run(run_dir)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "site")]) == 2
    assert str(metrics) in capsys.readouterr().err

    store = RunStore(run_dir)
    store.run_json.write_text('{"run_id": "cut sh')
    with pytest.raises(RunFolderError, match=re.escape(str(store.run_json))):
        store.read_run()
    with pytest.raises(ReportInputError, match=re.escape(str(store.run_json))):
        load_run(run_dir)
    assert main(["score", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert str(store.run_json) in err and "Traceback" not in err
