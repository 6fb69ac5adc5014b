"""Every layout written in its real on-disk format and read back: pixels, cameras by projection, alpha, tracking,
bad input with the path named, preprocessing and the frame cache, protocol rules and `datasets check`."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import (
    AVA_CAMERAS,
    AVA_POINT,
    POINT,
    SERIALS,
    write_ava,
    write_benchmark,
    write_tracking,
    write_v2,
)
from PIL import Image

from harness.api.types import ViewRef
from harness.data.ava256 import Ava256
from harness.data.errors import DatasetError, ProtocolError
from harness.data.nersemble_benchmark import NersembleBenchmark
from harness.data.nersemble_v2 import NersembleV2, apply_colour_correction
from harness.data.prepared import PreparedDataset
from harness.data.protocol import expand_with_dataset, few_shot_frames, parse_protocol, run_protocol
from harness.data.status import check_dataset
from harness.data.wild import WildPhotos
from harness.plugins.registry import get_registry


def marker_centre(image: np.ndarray) -> np.ndarray:
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.35)
    ys, xs = np.nonzero(red)
    assert xs.size, "marker not found"
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


@pytest.fixture(scope="module")
def benchmark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nersemble_benchmark")
    write_benchmark(root)
    write_benchmark(root, subject="393", sequence="EXP-1-head", size=(48, 48), task="mono_flame_avatar")
    write_tracking(root, "393", "EXP-1-head", [0, 1, 2, 3, 4, 5])
    photo = root / "svfr" / "017" / "FREE_336_222200046" / "rgb.png"
    photo.parent.mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(photo)
    return root


def test_benchmark_videos_decode_by_seeking_with_per_camera_K_and_alpha_channel_0(benchmark_root: Path) -> None:
    reader = NersembleBenchmark.open(benchmark_root)
    for serial in SERIALS:
        for frame in (5, 2, 3):  # backwards, then forwards without a seek
            view = reader.load_view(ViewRef("388", "GLASSES", frame, serial))
            assert view.image.shape == (96, 64, 3)
            assert view.image[0, 0, 1] == pytest.approx((90 + 10 * frame) / 255, abs=3 / 255)
            uv, _ = view.camera.project(POINT[None])
            np.testing.assert_allclose(marker_centre(view.image), uv[0], atol=0.75)
            # Channel 0 carries alpha (channels 1 and 2 hold 0 and 255 in the file).
            assert view.alpha is not None and view.alpha.max() > 0.95 and view.alpha.min() < 0.05
            u, v = (int(x) for x in uv[0])
            assert view.alpha[v, u] > 0.95 and view.alpha[0, 0] < 0.05


def test_benchmark_tracking_and_svfr(benchmark_root: Path) -> None:
    reader = NersembleBenchmark.open(benchmark_root)
    tracking = reader.tracking("393", "EXP-1-head", 4)
    data = np.load(benchmark_root / "mono_flame_avatar/393/sequences/EXP-1-head/tracking/flame2023_tracking_v2.npz")
    assert tracking["model"] == "flame2023"
    np.testing.assert_allclose(tracking["expression"], data["expression"][4])
    assert reader.tracking("388", "GLASSES", 0) is None  # NVS participants ship no tracking
    with pytest.raises(DatasetError, match="no tracking for video frame 9"):
        reader.tracking("393", "EXP-1-head", 9)
    assert reader.frames("393", "EXP-1-head") == [0, 1, 2, 3, 4, 5]
    assert reader.subjects() == ["017"] and reader.photos("017") == ["FREE_336_222200046"]
    assert reader.load_view(ViewRef("017", "FREE_336_222200046", 0, "photo")).image.shape == (32, 32, 3)


def test_v2_shared_full_resolution_K_is_rescaled_colour_calibrated_and_alpha_reported_missing(tmp_path: Path) -> None:
    write_v2(tmp_path)
    reader = NersembleV2.open(tmp_path)
    ref = ViewRef("017", "EXP-1-head", 2, SERIALS[2])
    view = reader.load_view(ref)
    assert view.image.shape == (401, 275, 3)
    uv, _ = view.camera.project(POINT[None])
    np.testing.assert_allclose(marker_centre(view.image), uv[0], atol=0.75)
    assert view.alpha is None and "ships no alpha" in view.alpha_note and "alpha_maps" in view.alpha_note
    reader.colour_calibration = True
    corrected = reader.load_view(ref).image
    ccm = np.eye(3) * 0.9 + 0.02
    np.testing.assert_allclose(corrected, apply_colour_correction(view.image, ccm), atol=1e-6)
    import colour

    expected = colour.cctf_encoding(colour.cctf_decoding(view.image[:4, :4]) @ ccm.T)
    np.testing.assert_allclose(corrected[:4, :4], np.clip(expected, 0, 1), atol=1e-5)
    # Alpha maps added as extracted frames are used.
    mask = np.zeros((401, 275), np.uint8)
    mask[100:200, 50:150] = 255
    alpha_file = reader.alpha_frame_path(ref)
    alpha_file.parent.mkdir(parents=True)
    Image.fromarray(mask).save(alpha_file)
    assert reader.load_view(ref).alpha[150, 100] == 1.0
    assert reader.background_plate("017", SERIALS[0]).shape == (401, 275, 3)


def test_ava256_transposed_krt_in_millimetres_undistorted_avif_from_zips(tmp_path: Path) -> None:
    truth = write_ava(tmp_path)
    reader = Ava256.open(tmp_path)
    capture = "20230405--1635--AAN112"
    # By default the release's images are used as they are (as the official loader does) ...
    K, w2c, distorted = truth[AVA_CAMERAS[0]]
    raw = reader.load_view(ViewRef(capture, "EXP_free_face", 11, AVA_CAMERAS[0]))
    np.testing.assert_allclose(marker_centre(raw.image), distorted, atol=1.0)
    reader.undistort = True  # ... and remapped onto the pinhole K when a protocol asks (preprocess.undistort)
    for camera in AVA_CAMERAS:
        K, w2c, distorted = truth[camera]
        view = reader.load_view(ViewRef(capture, "EXP_free_face", 11, camera))
        assert view.image.shape == (512, 333, 3)
        np.testing.assert_allclose(view.camera.K, K * [[333 / 333.5], [1], [1]], rtol=2e-3)
        np.testing.assert_allclose(view.camera.world_to_camera, w2c, atol=1e-9)  # metres, [R|t] un-transposed
        uv, depth = view.camera.project(AVA_POINT[None])
        assert 0.5 < depth[0] < 1.5  # metres: the camera is 1 m from the head, not 1,000
        np.testing.assert_allclose(marker_centre(view.image), uv[0], atol=1.0)
        if camera == AVA_CAMERAS[0]:  # the distorted camera: the raw marker sat elsewhere
            assert np.linalg.norm(distorted - uv[0]) > 2.0
        assert view.alpha is not None and view.alpha[-5, 5] == 0.0  # the chair is not head
        u, v = (int(x) for x in uv[0])
        assert view.alpha[v, u] == 1.0
    assert reader.frames(capture, "EXP_free_face") == [11, 12]
    pose = reader.head_pose(capture, 12)
    np.testing.assert_allclose(pose[:3, 3], [0.010, -0.020, 1.012])


def test_ava256_nearest_yaw_targets_and_recorded_listing(tmp_path: Path) -> None:
    write_ava(tmp_path)
    reader = Ava256.open(tmp_path)
    raw = {"name": "p", "version": 1, "dataset": "ava256", "subjects": ["20230405--1635--AAN112"],
           "tasks": [{"kind": "novel_view", "sequences": ["EXP_free_face"], "frames": {"evenly_spaced": 1},
                      "source_cameras": ["401168"], "target_cameras": {"nearest_yaws": [55, -70]}}]}
    protocol = parse_protocol(raw)
    units, listing = expand_with_dataset(protocol, PreparedDataset(reader, protocol, "ava256"))
    assert [t.camera for t in units[0].targets] == ["401031", "400940"]  # +60 degrees, then -60
    assert [u.name for u in units] == ["20230405--1635--AAN112.EXP_free_face.novel_view.f00011"]
    replayed = run_protocol({"protocol_content": raw, "dataset_listing": listing})[1]
    assert replayed == units


def test_preprocessing_crops_and_resizes_pixels_and_K_alike_and_caches(benchmark_root: Path, tmp_path: Path) -> None:
    raw = {"name": "p", "version": 1, "dataset": "nersemble", "subjects": ["388"],
           "preprocess": {"crop": "head_square", "crop_scale": 1.3, "resolution": 40, "composite": True},
           "tasks": [{"kind": "novel_view", "sequences": ["GLASSES"], "frames": [1], "source_cameras": [SERIALS[0]],
                      "target_cameras": [SERIALS[1]]}]}
    reader = NersembleBenchmark.open(benchmark_root)
    dataset = PreparedDataset(reader, parse_protocol(raw), "nersemble", cache_root=tmp_path)
    ref = ViewRef("388", "GLASSES", 1, SERIALS[1])
    first = dataset.load_view(ref)
    assert first.image.shape == (40, 40, 3) and first.camera.width == 40
    uv, _ = first.camera.project(POINT[None])
    np.testing.assert_allclose(marker_centre(first.image), uv[0], atol=1.0)
    assert first.image[0, 0] == pytest.approx([1.0, 1.0, 1.0], abs=2 / 255)  # composited onto white
    reader.load_view = None  # type: ignore[method-assign]  # a second pass must not decode
    again = PreparedDataset(reader, parse_protocol(raw), "nersemble", cache_root=tmp_path)
    cached = again.load_view(ref)
    np.testing.assert_array_equal(cached.image, first.image)
    np.testing.assert_array_equal(cached.alpha, first.alpha)
    np.testing.assert_allclose(again.camera("388", "GLASSES", 1, SERIALS[1]).K, first.camera.K)


def test_few_shot_rule() -> None:
    assert few_shot_frames([0, 1, 2, 3, 4, 5], 3) == (0, 3, 5)
    assert few_shot_frames(list(range(0, 100, 10)), 4) == (0, 30, 60, 90)
    assert few_shot_frames([7, 8], 1) == (7,)


def test_wild_folder_crops_fallback_and_boxes(tmp_path: Path) -> None:
    photo = np.zeros((200, 120, 3), np.uint8)
    photo[50:90, 40:80] = 255
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo).save(tmp_path / "b.webp", lossless=True)
    (tmp_path / "boxes.json").write_text(json.dumps({"b.webp": [40, 50, 80, 90]}))
    reader = WildPhotos.open(tmp_path)
    assert reader.subjects() == ["a", "b"]
    fallback = reader.load_view(ViewRef("a", "photo", 0, "photo"))
    assert fallback.image.shape == (120, 120, 3) and "fallback: centre square" in fallback.alpha_note
    boxed = reader.load_view(ViewRef("b", "photo", 0, "photo"))
    assert boxed.image.shape == (66, 66, 3)  # 1.65 x sqrt(40 x 40)
    np.testing.assert_allclose(marker_box_centre(boxed.image), [33, 33], atol=0.6)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=re.escape(f"{empty}: no photos")):
        WildPhotos.open(empty).subjects()


def marker_box_centre(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image[..., 0] > 0.9)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def test_bad_input_names_the_path(benchmark_root: Path, tmp_path: Path) -> None:
    reader = NersembleBenchmark.open(benchmark_root)
    with pytest.raises(DatasetError, match=re.escape("camera_params.json: camera 222200037 is not in 'world_2_cam'")):
        reader.load_view(ViewRef("388", "GLASSES", 0, "222200037"))
    video = benchmark_root / "nvs/388/sequences/GLASSES/images" / f"cam_{SERIALS[0]}.mp4"
    with pytest.raises(DatasetError, match=re.escape(f"{video} ends before frame 6")):
        reader.load_view(ViewRef("388", "GLASSES", 6, SERIALS[0]))
    truncated = tmp_path / "t.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    from harness.data.video import read_video_frame

    with pytest.raises(DatasetError, match=re.escape(f"unreadable video file {truncated}")):
        read_video_frame(truncated, 0)
    write_ava(tmp_path / "ava", frames=(1, 2))
    archive = tmp_path / "ava/20230405--1635--AAN112/decoder/image" / f"cam{AVA_CAMERAS[1]}.zip"
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(f"cam{AVA_CAMERAS[1]}/000003.avif", b"not an image")
    with pytest.raises(DatasetError, match=re.escape(f"unreadable image {archive}:cam{AVA_CAMERAS[1]}/000003.avif")):
        Ava256.open(tmp_path / "ava").load_view(ViewRef("20230405--1635--AAN112", "x", 3, AVA_CAMERAS[1]))


def test_datasets_check_lists_every_problem_at_once(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    write_benchmark(root, frames=3)
    videos = root / "nvs/388/sequences/GLASSES/images"
    (videos / f"cam_{SERIALS[0]}.mp4").write_bytes((videos / f"cam_{SERIALS[0]}.mp4").read_bytes()[:300])
    (root / "nvs/388/sequences/GLASSES/alpha_maps" / f"cam_{SERIALS[1]}.mp4").unlink()
    calibration = root / "nvs/388/calibration/camera_params.json"
    raw = json.loads(calibration.read_text())
    del raw["world_2_cam"][SERIALS[2]]
    calibration.write_text(json.dumps(raw))
    registry = get_registry()
    inventory = check_dataset(registry.dataset("nersemble"), root, None)
    text = "\n".join(inventory.problems)
    assert f"unreadable video file {videos / f'cam_{SERIALS[0]}.mp4'}" in text
    assert f"missing alpha video {root / 'nvs/388/sequences/GLASSES/alpha_maps'}/cam_{SERIALS[1]}.mp4" in text
    assert f"{calibration}: camera {SERIALS[2]}" in text
    assert inventory.found["388"]["sequences"]["GLASSES"]["cameras"] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "none of nvs/, mono_flame_avatar/, svfr/" in check_dataset(registry.dataset("nersemble"), empty,
                                                                       None).problems[0]


def test_cli_datasets_check_and_ls(benchmark_root: Path) -> None:
    from conftest import harness_cli

    ok = harness_cli(["datasets", "check", "nersemble", "--data-root", str(benchmark_root)])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"GLASSES"' in ok.stdout and "no problems found" in ok.stdout
    bad = harness_cli(["datasets", "check", "ava256", "--data-root", str(benchmark_root / "nope")])
    assert bad.returncode == 1 and f"Ava-256 root {benchmark_root / 'nope'} is not a folder" in bad.stdout
    listing = harness_cli(["ls", "datasets"], env_extra={"HARNESS_NERSEMBLE_ROOT": str(benchmark_root)})
    assert "found at" in listing.stdout and "how to obtain" in listing.stdout


def test_demo_wild_run_scores_reference_free(tmp_path: Path) -> None:
    import polars as pl
    from conftest import harness_cli
    from standins import install_insightface_standin

    home = tmp_path / "home"
    install_insightface_standin(home / "weights")
    result = harness_cli(["run", "--method", "nearest-input", "--dataset", "demo-wild", "--runs-dir",
                          str(tmp_path / "runs")], env_extra={"HARNESS_HOME": str(home)})
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = pl.read_parquet(next((tmp_path / "runs").rglob("metrics.parquet")))
    csim = metrics.filter(pl.col("metric") == "csim")
    assert set(csim["variant"].unique().to_list()) == {"against_photo", "cross_view"}
    assert csim.filter(pl.col("variant") == "against_photo").height == 4 * 7  # 4 photos x 7 orbit yaws
    assert csim.filter(pl.col("variant") == "cross_view").height == 4 * 21  # pairs of 7 renders
    # The stand-in detector finds no face on these photos: every value is undefined, with the reason.
    assert set(csim["status"].to_list()) <= {"ok", "undefined"}
    assert csim.filter(pl.col("status") == "undefined")["note"].null_count() == 0
    assert metrics.filter(pl.col("metric") == "psnr").height == 0  # no pixel metric without ground truth


def test_scoring_v2_without_alpha_reports_masked_unavailable(tmp_path: Path) -> None:
    """External predictions on a rule-based protocol (frames resolved from the videos): every masked row is
    undefined with the reason, never computed unmasked; full-image rows have values."""
    import polars as pl
    from conftest import harness_cli

    from harness.data.nersemble_v2 import NersembleV2
    from harness.store import RunStore

    write_v2(tmp_path / "v2", frames=3)
    raw = {"name": "p", "version": 1, "dataset": "nersemble-v2", "subjects": ["017"],
           "tasks": [{"kind": "novel_view", "sequences": ["EXP-1-head"], "frames": {"evenly_spaced": 2},
                      "source_cameras": [SERIALS[1]], "target_cameras": [SERIALS[0], SERIALS[2]]}]}
    protocol_file = tmp_path / "p.yaml"
    protocol_file.write_text(json.dumps(raw))
    units, _ = expand_with_dataset(parse_protocol(raw), PreparedDataset(NersembleV2.open(tmp_path / "v2"),
                                                                        parse_protocol(raw), "nersemble-v2"))
    store = RunStore(tmp_path / "preds")
    for unit in units:
        for ref in unit.targets:
            path = store.unit_dir(unit.name) / RunStore.relative_prediction(ref)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((401, 275, 3), 100, np.uint8)).save(path)
    result = harness_cli(["score", str(tmp_path / "preds"), "--dataset", "nersemble-v2", "--protocol",
                          str(protocol_file), "--data-root", str(tmp_path / "v2")])
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = pl.read_parquet(tmp_path / "preds" / "metrics.parquet").filter(pl.col("metric") == "psnr")
    masked = metrics.filter(pl.col("variant") == "masked")
    assert masked.height == 4 and set(masked["status"]) == {"undefined"}
    assert all("masked variant unavailable: NeRSemble v2 ships no alpha" in n for n in masked["note"])
    assert metrics.filter(pl.col("variant") == "full")["value"].null_count() == 0
    assert sorted(set(metrics["frame"].to_list())) == [0, 2]  # frames chosen by the rule, recorded in run.json


def test_undistortion_is_a_protocol_flag_refused_where_there_is_no_distortion(tmp_path: Path,
                                                                              benchmark_root: Path) -> None:
    write_ava(tmp_path)
    raw = {"name": "p", "version": 1, "dataset": "ava256", "subjects": ["20230405--1635--AAN112"],
           "preprocess": {"undistort": True},
           "tasks": [{"kind": "novel_view", "sequences": ["EXP_free_face"], "frames": [11],
                      "source_cameras": ["401168"], "target_cameras": [AVA_CAMERAS[0]]}]}
    protocol = parse_protocol(raw)
    assert protocol.preprocess.undistort and protocol.preprocess.is_identity  # no harness pixel transform
    reader = Ava256.open(tmp_path)
    PreparedDataset(reader, protocol, "ava256")
    assert reader.undistort is True
    assert Ava256.open(tmp_path).undistort is False  # off unless the protocol says so
    with pytest.raises(ProtocolError, match="has no lens distortion"):
        PreparedDataset(NersembleBenchmark.open(benchmark_root), parse_protocol({**raw, "dataset": "nersemble"}),
                        "nersemble")


def test_ava256_dropped_frames_are_left_out_of_the_units_and_recorded(tmp_path: Path) -> None:
    import zipfile

    write_ava(tmp_path)
    capture = "20230405--1635--AAN112"
    source, target, other = AVA_CAMERAS[0], AVA_CAMERAS[1], AVA_CAMERAS[2]

    def drop(camera: str, frame: int) -> None:  # the release lacks this camera's frame
        archive = tmp_path / capture / "decoder" / "image" / f"cam{camera}.zip"
        with zipfile.ZipFile(archive) as old:
            members = {n: old.read(n) for n in old.namelist() if not n.endswith(f"{frame:06d}.avif")}
        with zipfile.ZipFile(archive, "w") as new:
            for name, data in members.items():
                new.writestr(name, data)

    drop(target, 11)
    drop(source, 12)
    reader = Ava256.open(tmp_path)
    camera = reader.camera(capture, "EXP_free_face", 11, target)  # its size comes from another frame
    assert (camera.width, camera.height) == (333, 512)
    raw = {"name": "p", "version": 1, "dataset": "ava256", "subjects": [capture],
           "tasks": [{"kind": "novel_view", "sequences": ["EXP_free_face"], "frames": [11, 12],
                      "source_cameras": [source], "target_cameras": [target, other]}]}
    protocol = parse_protocol(raw)
    units, listing = expand_with_dataset(protocol, PreparedDataset(reader, protocol, "ava256"))
    # A missing target leaves its unit; a missing source drops the unit.
    assert {u.sources[0].frame: [t.camera for t in u.targets] for u in units} == {11: [other]}
    assert sorted((d["frame"], d["camera"]) for d in listing["dropped_views"]) == [(11, target), (12, source)]
    assert all(".avif" in d["why"] for d in listing["dropped_views"])
    assert run_protocol({"protocol_content": raw, "dataset_listing": listing})[1] == units


def test_mono_avatar_tracking_rows_index_the_video_frames(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    write_benchmark(root, subject="393", sequence="EXP-1-head", size=(48, 48), task="mono_flame_avatar")
    path = write_tracking(root, "393", "EXP-1-head", [100, 102, 104, 106, 108, 110])  # capture timesteps
    reader = NersembleBenchmark.open(root)
    assert reader.frames("393", "EXP-1-head") == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(reader.tracking("393", "EXP-1-head", 2)["expression"], np.load(path)["expression"][2])
    assert reader.check(["393"]).ok
    write_tracking(root, "393", "EXP-1-head", [100, 102, 104])  # fewer rows than the video's 6 frames
    problems = NersembleBenchmark.open(root).check(["393"]).problems
    assert any("3 tracking rows for 6 video frames" in p for p in problems), problems


def test_demo_wild_generation_uses_one_thread_and_gives_the_callers_back(tmp_path: Path) -> None:
    import torch

    from harness.data.demo_wild import PHOTOS, generate

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate(tmp_path / "wild")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert sorted(p.name for p in (tmp_path / "wild").iterdir() if p.suffix in (".jpg", ".png", ".webp")) == sorted(
        f"{name}{suffix}" for name, _, suffix in PHOTOS)


def test_v1_paper_colour_correction_and_frame_rule(tmp_path: Path, demo_adapter) -> None:
    import shutil

    from harness.data.nersemble_v1 import NersembleV1

    root = tmp_path / "v1"
    shutil.copytree(Path(demo_adapter.root) / "901", root / "901")
    ref = ViewRef("901", "EXP-1-head", 2, "222200040")
    A = np.array([[0.9, 0.05, 0.0, 0.02], [0.0, 1.1, 0.0, -0.01], [0.05, 0.0, 0.8, 0.03]])
    folder = root / "901" / "annotations" / "EXP-1-head" / "color_correction"
    folder.mkdir(parents=True)
    np.save(folder / "222200040.npy", A)
    raw = {"name": "p", "version": 1, "dataset": "nersemble-v1", "subjects": ["901"],
           "preprocess": {"colour_calibration": True},
           "tasks": [{"kind": "novel_view", "sequences": ["EXP-1-head"],
                      "frames": {"evenly_spaced": 4, "rounding": "truncate"},
                      "source_cameras": ["222200037"], "target_cameras": ["222200040"]}]}
    protocol = parse_protocol(raw)
    prepared = PreparedDataset(NersembleV1.open(root), protocol, "nersemble-v1", cache_root=tmp_path / "cache")
    plain = NersembleV1.open(root).load_view(ref).image
    expected = np.clip(plain.astype(np.float64) @ A[:, :3] + A[:, 3], 0, 1)
    np.testing.assert_allclose(prepared.load_view(ref).image, expected, atol=0.5 / 255 + 1e-6)  # (8-bit cache)
    with pytest.raises(DatasetError, match=r"missing colour correction .*222200037\.npy"):
        prepared.load_view(ViewRef("901", "EXP-1-head", 2, "222200037"))
    units, _ = expand_with_dataset(protocol, prepared)
    assert [u.targets[0].frame for u in units] == [0, 1, 3, 5]  # np.linspace(0, 5, 4, dtype=int); half up: 0 2 3 5
    half_up = parse_protocol({**raw, "tasks": [{**raw["tasks"][0], "frames": {"evenly_spaced": 4}}]})
    assert [u.targets[0].frame for u in expand_with_dataset(half_up, prepared)[0]] == [0, 2, 3, 5]
