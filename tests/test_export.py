"""`harness export`: a run on a folder in the benchmark release's format, written as the NeRSemble server's
submission (one MP4 per participant, sequence and hold-out camera, zipped); what it refuses and what it lists."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from dataset_writers import write_benchmark

from harness.cli import main
from harness.data.protocol import load_protocol
from harness.export import NVS_HOLD_OUT_SERIALS, TASKS, ExportError, export_run
from harness.external import prepare_external_run
from harness.imageio import read_image, write_png
from harness.plugins.registry import build_registry
from harness.scoring.codec import decode_mp4
from harness.store import RunStore

FRAMES = 4
EXPECTED = sorted(f"388/GLASSES/cam_{s}.mp4" for s in NVS_HOLD_OUT_SERIALS)


def smooth(width: int, height: int, t: int, serial: str) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx / width, yy / height, 0.5 + 0.3 * np.sin(xx / 7 + t + int(serial[-2:]))],
                    axis=-1).astype(np.float32)


def protocol_file(folder: Path, targets: list[str]) -> Path:
    path = folder / f"export-{len(targets)}-{targets[0]}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "holdout", "version": 1, "dataset": "nersemble", "subjects": ["388"],
        "tasks": [{"kind": "novel_view", "sequences": ["GLASSES"], "frames": list(range(FRAMES)),
                   "source_cameras": ["220700191"], "target_cameras": targets}]}))
    return path


def predicted_run(folder: Path, root: Path, targets: list[str], name: str) -> Path:
    """An external predictions folder for the protocol on ``targets``, with its run.json."""
    protocol = protocol_file(folder, targets)
    run_dir = folder / name
    for unit in load_protocol(protocol).units():
        for ref in unit.targets:
            write_png(run_dir / "predictions" / unit.name / RunStore.relative_prediction(ref),
                      smooth(64, 96, ref.frame, ref.camera))
    prepare_external_run(run_dir, build_registry(), "nersemble", str(protocol), str(root), "external")
    return run_dir


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """NVS participant 388 as distributed: videos of the training cameras only, the hold-out cameras calibrated."""
    tmp = tmp_path_factory.mktemp("export")
    root = tmp / "bench"
    write_benchmark(root, frames=FRAMES)
    calibration = root / "nvs/388/calibration/camera_params.json"
    raw = json.loads(calibration.read_text())
    first = next(iter(raw["world_2_cam"]))
    for serial in NVS_HOLD_OUT_SERIALS:
        raw["world_2_cam"][serial], raw["intrinsics"][serial] = raw["world_2_cam"][first], raw["intrinsics"][first]
    calibration.write_text(json.dumps(raw))
    return root, predicted_run(tmp, root, list(NVS_HOLD_OUT_SERIALS), "run")


def test_the_submission_has_the_servers_file_names_and_the_predictions_frames(bench, tmp_path: Path) -> None:
    _, run_dir = bench
    out = tmp_path / "submission"
    result = export_run(run_dir, out, build_registry())
    assert result.task == "nvs" and sorted(result.written) == EXPECTED
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4")) == EXPECTED
    with zipfile.ZipFile(out / "nvs_submission.zip") as archive:
        assert sorted(archive.namelist()) == EXPECTED
        data = archive.read(EXPECTED[0])
    assert data == (out / EXPECTED[0]).read_bytes()
    nvs = next(t for t in TASKS if t.name == "nvs")
    assert {m["video"] for m in result.missing} == {nvs.arcname(*v) for v in nvs.videos} - set(EXPECTED)
    assert all("no unit of protocol holdout@v1 predicts it" in m["why"] for m in result.missing)
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["codec"] == {"codec": "h264", "crf": 14, "pix_fmt": "yuv420p", "fps": 73.0}
    unit = load_protocol(protocol_file(tmp_path, list(NVS_HOLD_OUT_SERIALS))).units()
    for name in EXPECTED:
        serial = name.split("cam_")[1].removesuffix(".mp4")
        decoded = decode_mp4((out / name).read_bytes())
        assert len(decoded) == FRAMES
        for t, frame in enumerate(decoded):
            ref = next(r for u in unit for r in u.targets if r.frame == t and r.camera == serial)
            prediction = read_image(RunStore(run_dir).find_prediction(f"{unit[t].name}", ref))[0]
            error = np.mean((frame.astype(np.float64) / 255 - prediction) ** 2)
            assert -10 * np.log10(error) > 35  # within the codec's tolerance, and the right frame in order


def test_an_incomplete_video_is_listed_with_its_unit_and_the_cli_exits_1(bench, tmp_path: Path, capsys) -> None:
    _, run_dir = bench
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    unit = sorted(p.name for p in (partial / "predictions").iterdir())[2]
    hole = next((partial / "predictions" / unit).rglob("cam_222200037.png"))
    hole.unlink()
    assert main(["export", str(partial), "--out", str(tmp_path / "out")]) == 1
    text = capsys.readouterr().out
    assert "nvs submission: 2 of 15 videos written" in text
    assert f"missing 388/GLASSES/cam_222200037.mp4: 1 of its {FRAMES} frames have no prediction (first: frame 2); "\
           f"units without it: {unit}" in " ".join(text.split())
    assert not (tmp_path / "out/388/GLASSES/cam_222200037.mp4").exists()


def test_other_splits_datasets_and_non_empty_folders_are_refused(bench, tmp_path: Path, capsys) -> None:
    root, run_dir = bench
    local = predicted_run(tmp_path, root, ["222200040", "222200043"], "local")
    with pytest.raises(ExportError, match="not a NeRSemble benchmark split: it targets cameras 222200040, 222200043"):
        export_run(local, tmp_path / "a", build_registry())
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    record = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**record, "dataset": "nersemble-v2"}))
    with pytest.raises(ExportError, match="dataset/protocol nersemble-v2 / holdout"):
        export_run(other, tmp_path / "b", build_registry())
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(full)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    with pytest.raises(ExportError, match=r"run\.json does not exist: export takes a run folder"):
        export_run(full, tmp_path / "c", build_registry())
