"""Faults in a dataset folder: reports render from what was scored (a broken ground-truth view is left out with the
reason, failed units are listed), `datasets check` names every fault (truncated and corrupt files, sizes, non-finite
calibration, cameras without their images, another layout), and error messages name the right file and frame."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from dataset_writers import AVA_CAMERAS, SERIALS, YAWS, look_at, marked_frame, project, write_ava, write_benchmark
from PIL import Image

from harness.api.types import ViewRef
from harness.data.ava256 import Ava256
from harness.data.errors import DatasetError
from harness.data.nersemble_v1 import ALPHA_FOLDER, IMAGE_FOLDER, NersembleV1
from harness.data.protocol import parse_protocol
from harness.data.status import check_dataset
from harness.data.video import read_video_frame, write_video
from harness.plugins.registry import build_registry, get_registry

SUBJECT, SEQUENCE = "017", "EXP-1-head"
CAPTURE = "20230405--1635--AAN112"


def write_v1(root: Path, frames: int = 2, size: tuple[int, int] = (64, 96)) -> Path:
    """A NeRSemble v1 participant: frame PNGs and alpha maps of the three test cameras, one K at twice their size."""
    width, height = size
    K_full = np.array([[300.0, 0, width], [0, 300.0, height], [0, 0, 1]])
    K = K_full.copy()
    K[:2] /= 2
    world = {}
    for serial, yaw in zip(SERIALS, YAWS, strict=True):
        world[serial] = look_at(yaw)
        for t in range(frames):
            image, mask = marked_frame(width, height, project(K, world[serial], np.zeros(3)), t)
            folder = frame_dir(root, t)
            (folder / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
            (folder / ALPHA_FOLDER).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / IMAGE_FOLDER / f"cam_{serial}.png")
            Image.fromarray(mask).save(folder / ALPHA_FOLDER / f"cam_{serial}.png")
    (root / SUBJECT / "camera_params.json").write_text(json.dumps(
        {"world_2_cam": {s: m.tolist() for s, m in world.items()}, "intrinsics": K_full.tolist()}))
    return root


def frame_dir(root: Path, frame: int) -> Path:
    return root / SUBJECT / "sequences" / SEQUENCE / f"frame_{frame:05d}"


def image(root: Path, frame: int, serial: str) -> Path:
    return frame_dir(root, frame) / IMAGE_FOLDER / f"cam_{serial}.png"


def problems(name: str, root: Path, protocol=None, deep: bool = False) -> list[str]:
    return check_dataset(get_registry().dataset(name), root, protocol, deep=deep).problems


def edit_json(path: Path, change) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


# -- 1. reports render from what was scored ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A run on two units whose second unit's ground truth lost a target image: that unit fails."""
    from harness.runner import RunRequest, run

    tmp = tmp_path_factory.mktemp("broken_run")
    data = write_v1(tmp / "data")
    image(data, 1, SERIALS[2]).unlink()
    protocol = {"name": "tiny", "version": 1, "dataset": "nersemble-v1", "subjects": [SUBJECT],
                "tasks": [{"kind": "novel_view", "sequences": [SEQUENCE], "frames": [0, 1],
                           "source_cameras": [SERIALS[1]], "target_cameras": [SERIALS[0], SERIALS[2]]}]}
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(protocol))
    result = run(RunRequest(method="nearest-input", dataset="nersemble-v1", protocol=str(tmp / "tiny.yaml"),
                            data_root=data, runs_dir=tmp / "runs", device="cpu"), build_registry())
    return result["prepared"].store.root, data, f"{SUBJECT}.{SEQUENCE}.novel_view.f00001"


def run_page(site: Path) -> str:
    return next((site / "runs").glob("*/index.html")).read_text()


def test_a_unit_with_broken_ground_truth_fails_alone_and_the_run_still_gets_its_site(broken_run) -> None:
    root, data, failed = broken_run
    site = root / "report" / "site"
    assert (site / "index.html").is_file() and (root / "report" / "index.html").is_file()
    page = run_page(site)
    assert "Failed units (1)" in page and failed in page
    assert f"missing image file {image(data, 1, SERIALS[2])}" in page
    assert list((site / "plots").glob("*.yaw.svg"))  # drawn from the unit that was scored


def test_failed_units_are_listed_from_the_failures_folder_too(broken_run, tmp_path: Path) -> None:
    from harness.report.site import build_report

    root, _, failed = broken_run
    copy = tmp_path / "run"
    shutil.copytree(root, copy)
    edit_json(copy / "run.json", lambda raw: raw.pop("failed_units", None))  # e.g. an interrupted invocation
    page = run_page(build_report([copy], tmp_path / "site", build_registry()).parent)
    assert "Failed units (1)" in page and failed in page and "traceback" in page


def test_ground_truth_broken_after_scoring_is_left_out_of_plot_and_gallery_with_the_reason(broken_run,
                                                                                         tmp_path: Path) -> None:
    from harness.report.site import build_report

    root, data, _ = broken_run
    copy_data = tmp_path / "data"
    shutil.copytree(data, copy_data)
    copy = tmp_path / "run"
    shutil.copytree(root, copy)
    edit_json(copy / "run.json", lambda raw: raw.update(data_root=str(copy_data)))
    # The scored unit's target camera leaves the calibration, and its other target image is cut in half.
    edit_json(copy_data / SUBJECT / "camera_params.json", lambda raw: raw["world_2_cam"].pop(SERIALS[2]))
    cut = image(copy_data, 0, SERIALS[0])
    cut.write_bytes(cut.read_bytes()[:200])
    index = build_report([copy], tmp_path / "site", build_registry())
    board = next((index.parent / "boards").glob("*.html")).read_text()
    assert "left out of the yaw plot" in board and f"camera {SERIALS[2]} is not in" in board
    page = run_page(index.parent)
    assert "ground truth not shown" in page and f"unreadable image file {cut}" in page
    assert f"camera {SERIALS[2]} is not in &#39;world_2_cam&#39;" in page


# -- 2. datasets check --------------------------------------------------------------------------------------------
def test_check_finds_truncated_missing_and_odd_sized_frames_of_every_calibrated_camera(tmp_path: Path) -> None:
    root = write_v1(tmp_path / "v1", frames=3)
    assert problems("nersemble-v1", root) == []
    truncated = image(root, 0, SERIALS[0])
    truncated.write_bytes(truncated.read_bytes()[:-40])
    image(root, 1, SERIALS[1]).unlink()  # the calibration lists 3 cameras, frame 1 holds 2 images
    (frame_dir(root, 2) / ALPHA_FOLDER / f"cam_{SERIALS[0]}.png").unlink()
    Image.fromarray(np.zeros((48, 32, 3), np.uint8)).save(image(root, 2, SERIALS[2]))  # the camera's others: 64x96
    text = "\n".join(problems("nersemble-v1", root))
    assert f"truncated image file {truncated}" in text
    assert f"{frame_dir(root, 1) / IMAGE_FOLDER}: no image for 1 of the 3 camera(s) in the calibration: " \
           f"cam_{SERIALS[1]}.png" in text
    assert f"{frame_dir(root, 1) / ALPHA_FOLDER}: no alpha map" not in text  # its alpha map is there
    assert f"{frame_dir(root, 2) / ALPHA_FOLDER}: no alpha map for 1 of the 3" in text
    assert f"camera {SERIALS[2]}: images disagree on their size: 64x96 in 2 frame(s), but 32x48 (1, e.g. " \
           f"{image(root, 2, SERIALS[2])})" in text


def test_check_finds_images_that_do_not_fit_K_and_non_finite_calibration(tmp_path: Path) -> None:
    root = write_v1(tmp_path / "v1", frames=1)
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(image(root, 0, SERIALS[0]))  # rotated: 96x64
    calibration = root / SUBJECT / "camera_params.json"
    edit_json(calibration, lambda raw: raw["world_2_cam"][SERIALS[1]][0].__setitem__(3, float("nan")))
    text = "\n".join(problems("nersemble-v1", root))
    assert f"camera {SERIALS[0]} (images in" in text and "the image is 96x64 but K's principal point" in text
    assert f"{calibration}: world_2_cam[{SERIALS[1]}] holds 1 non-finite value(s)" in text
    with pytest.raises(DatasetError, match=f"camera {SERIALS[1]} is unusable"):
        NersembleV1.open(root).camera(SUBJECT, SEQUENCE, 0, SERIALS[1])
    edit_json(calibration, lambda raw: raw["intrinsics"][0].__setitem__(0, float("inf")))  # shared K: all cameras
    assert sum("intrinsics holds 1 non-finite value(s)" in p for p in problems("nersemble-v1", root)) == 1


def test_check_decodes_every_frame_only_with_deep(tmp_path: Path) -> None:
    from conftest import harness_cli

    root = write_v1(tmp_path / "v1", frames=1)
    corrupt = image(root, 0, SERIALS[1])
    data = bytearray(corrupt.read_bytes())
    start = data.index(b"IDAT") + 20
    data[start:start + 40] = bytes(40)  # pixel data broken (inside the compressed stream), the file's end intact
    corrupt.write_bytes(bytes(data))
    assert problems("nersemble-v1", root) == []
    assert problems("nersemble-v1", root, deep=True) == [f"unreadable image file {corrupt}: OSError: broken data "
                                                         "stream when reading image file"]
    shallow = harness_cli(["datasets", "check", "nersemble-v1", "--data-root", str(root)])
    deep = harness_cli(["datasets", "check", "nersemble-v1", "--data-root", str(root), "--deep"])
    assert shallow.returncode == 0 and deep.returncode == 1, deep.stdout + deep.stderr
    assert "1 problem(s)" in deep.stdout and str(corrupt.name) in deep.stdout


def test_problems_are_listed_once(tmp_path: Path) -> None:
    root = write_v1(tmp_path / "v1", frames=1)
    (root / SUBJECT / "camera_params.json").unlink()
    raw = {"name": "p", "version": 1, "dataset": "nersemble-v1", "subjects": [SUBJECT],
           "tasks": [{"kind": "novel_view", "sequences": [SEQUENCE], "frames": [0], "source_cameras": [SERIALS[1]],
                      "target_cameras": [SERIALS[0], SERIALS[2]]}]}
    found = problems("nersemble-v1", root, parse_protocol(raw))
    missing = f"missing calibration file {root / SUBJECT / 'camera_params.json'}"
    assert found.count(missing) == 1 and len(found) == len(set(found))


def test_another_nersemble_layout_is_named_with_the_dataset_that_reads_it(tmp_path: Path) -> None:
    v1 = write_v1(tmp_path / "v1", frames=1)
    assert any("read it as dataset nersemble-v1" in p for p in problems("nersemble", v1))
    assert any("read it as dataset nersemble-v1" in p for p in problems("nersemble-v2", v1))
    bench = tmp_path / "bench"
    write_benchmark(bench, frames=2)
    assert any("read it as dataset nersemble " in p for p in problems("nersemble-v1", bench))
    assert not any("read it as" in p for p in problems("nersemble", bench))


def test_video_layouts_name_cameras_without_videos_odd_alpha_videos_and_non_finite_K(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    write_benchmark(root, frames=2)
    assert problems("nersemble", root, deep=True) == []  # every frame decodes
    calibration = root / "nvs/388/calibration/camera_params.json"

    def change(raw: dict) -> None:
        for serial in ("222200036", "222200037"):  # a distributed camera without its video, a hold-out camera
            raw["world_2_cam"][serial] = raw["world_2_cam"][SERIALS[0]]
            raw["intrinsics"][serial] = raw["intrinsics"][SERIALS[0]]
        raw["intrinsics"][SERIALS[2]][1][1] = float("inf")

    edit_json(calibration, change)
    alpha = root / "nvs/388/sequences/GLASSES/alpha_maps" / f"cam_{SERIALS[1]}.mp4"
    write_video(alpha, [np.zeros((48, 32, 3), np.uint8)] * 2)
    text = "\n".join(problems("nersemble", root))
    assert f"no video for 1 of the 4 camera(s) in {calibration}: cam_222200036.mp4" in text
    assert f"alpha video {alpha} is 32x48 with 2 frames, its image video" in text
    assert f"{calibration}: intrinsics[{SERIALS[2]}] holds 1 non-finite value(s)" in text


def test_ava256_check_names_missing_archives_members_and_non_finite_krt(tmp_path: Path) -> None:
    write_ava(tmp_path, frames=(10, 11, 12))
    assert problems("ava256", tmp_path) == []
    decoder = tmp_path / CAPTURE / "decoder"
    (decoder / "segmentation_parts" / f"cam{AVA_CAMERAS[2]}.zip").unlink()
    archive = decoder / "image" / f"cam{AVA_CAMERAS[1]}.zip"
    with zipfile.ZipFile(archive) as handle:
        kept = {n: handle.read(n) for n in handle.namelist() if not n.endswith("000012.avif")}
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in kept.items():
            handle.writestr(name, data)
    edit_json(decoder / "camera_calibration.json", lambda raw: raw["KRT"][0]["T"][3].__setitem__(0, float("nan")))
    text = "\n".join(problems("ava256", tmp_path))
    assert f"missing segmentation archive {decoder / 'segmentation_parts' / f'cam{AVA_CAMERAS[2]}.zip'}" in text
    assert f"archive {archive} lacks 1 of the 3 frames of frame_list.csv, e.g. cam{AVA_CAMERAS[1]}/000012.avif" in text
    assert f"KRT[0] (camera {AVA_CAMERAS[0]}) T holds 1 non-finite value(s)" in text
    with pytest.raises(DatasetError, match=f"camera {AVA_CAMERAS[0]} is unusable"):
        Ava256.open(tmp_path).camera(CAPTURE, "EXP_free_face", 11, AVA_CAMERAS[0])


def test_wild_check_finds_a_truncated_photo_without_decoding(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "b.png").read_bytes()[:-20])
    assert problems("wild", tmp_path) == [f"truncated photo file {tmp_path / 'b.png'}: the PNG does not end with its "
                                          "IEND chunk"]


# -- 3. messages --------------------------------------------------------------------------------------------------
def test_a_corrupt_avif_is_named_by_its_archive_member_not_a_buffer(tmp_path: Path) -> None:
    write_ava(tmp_path, frames=(1, 2))
    archive = tmp_path / CAPTURE / "decoder" / "image" / f"cam{AVA_CAMERAS[1]}.zip"
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(f"cam{AVA_CAMERAS[1]}/000003.avif", b"not an image")
    reader = Ava256.open(tmp_path)
    # The camera's size comes from its first readable frame, so the camera stays usable ...
    assert reader.camera(CAPTURE, "x", 3, AVA_CAMERAS[1]).height == 512
    with pytest.raises(DatasetError) as caught:  # ... and the broken frame is named when it is read
        reader.load_view(ViewRef(CAPTURE, "x", 3, AVA_CAMERAS[1]))
    assert str(caught.value) == f"unreadable image {archive}:cam{AVA_CAMERAS[1]}/000003.avif: cannot identify " \
                                "image file"
    assert any(f"{archive}:cam{AVA_CAMERAS[1]}/000003.avif" in p and "BytesIO" not in p
               for p in problems("ava256", tmp_path))


def test_reading_past_the_end_names_the_last_frame_that_decoded(tmp_path: Path) -> None:
    video = tmp_path / "one.mp4"
    write_video(video, [np.zeros((16, 16, 3), np.uint8)])
    read_video_frame(video, 0)
    with pytest.raises(DatasetError, match=re.escape(f"{video} ends before frame 1 (last decodable frame 0 of 1 "
                                                     "declared; truncated?)")):
        read_video_frame(video, 1)  # reads on from frame 0 without seeking
