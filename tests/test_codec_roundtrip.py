"""Scoring after the benchmark server's video round trip (H.264 crf 14 yuv420p MP4): what the codec does to a smooth
and to a noise image, odd sizes, the protocol setting and the `--codec-roundtrip` flag on a run of a folder in the
benchmark release's format (cache key, run.json, scoring_errors.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from dataset_writers import write_benchmark

from harness.cli import main
from harness.data.errors import ProtocolError
from harness.data.protocol import load_protocol
from harness.data.video import read_video_frame
from harness.external import prepare_external_run
from harness.imageio import write_png
from harness.jsonio import read_json
from harness.plugins.registry import build_registry
from harness.scoring.codec import CodecRoundTrip, decode_mp4, encode_mp4, protocol_codec, recorded_codec, round_trip
from harness.scoring.scorer import score_run
from harness.store import RunStore

SERIALS = ("222200040", "222200043")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) - b) ** 2)))


def smooth(width: int, height: int, t: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx / width, yy / height, 0.5 + 0.3 * np.sin(xx / 7 + t)], axis=-1).astype(np.float32)


def quantised(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255) / 255


def test_a_smooth_image_changes_a_little_and_noise_much_more() -> None:
    image = smooth(64, 96)
    coded = round_trip([image], CodecRoundTrip())[0]
    assert coded.shape == image.shape and coded.dtype == np.float32
    assert not np.array_equal(coded, quantised(image))  # lossy: not the PNG's pixels
    assert psnr(coded, quantised(image)) > 35
    noise = np.random.default_rng(0).random((96, 64, 3)).astype(np.float32)
    assert psnr(round_trip([noise], CodecRoundTrip())[0], quantised(noise)) < 20


def test_odd_sizes_are_padded_and_cropped_back() -> None:
    frames = [smooth(63, 95, t) for t in range(3)]
    coded = round_trip(frames, CodecRoundTrip())
    assert [c.shape for c in coded] == [(95, 63, 3)] * 3
    assert min(psnr(c, quantised(f)) for c, f in zip(coded, frames, strict=True)) > 35
    data = encode_mp4([np.zeros((95, 63, 3), np.uint8)], CodecRoundTrip().rate, CodecRoundTrip())
    assert decode_mp4(data)[0].shape == (96, 64, 3)  # what the video holds: the even size


def test_the_protocol_setting_is_parsed_and_bad_values_are_refused() -> None:
    assert protocol_codec({"scoring": {"codec_roundtrip": True}}) == CodecRoundTrip("h264", 14, "yuv420p", 73.0)
    assert protocol_codec({"scoring": {"codec_roundtrip": {"crf": 20, "fps": 24.3}}}).crf == 20
    assert protocol_codec({}) is None
    for bad, words in (({"crf": 60}, "crf must be an integer"), ({"codec": "vp9"}, "codec is 'vp9'"),
                       ({"preset": "slow"}, "unknown codec_roundtrip field"), ({"fps": 0}, "fps must be")):
        with pytest.raises(ProtocolError, match=words):
            protocol_codec({"scoring": {"codec_roundtrip": bad}}, "p.yaml")
    with pytest.raises(ProtocolError, match="'scoring' must be a mapping"):
        protocol_codec({"scoring": {"codecs": True}}, "p.yaml")


@pytest.fixture(scope="module")
def scored_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A benchmark-format folder, a protocol on it, and an external predictions folder: ground truth + a smooth
    offset, so that the codec changes the scores."""
    tmp = tmp_path_factory.mktemp("codec")
    root = tmp / "bench"
    write_benchmark(root, frames=4)
    protocol_path = tmp / "codec-test.yaml"
    protocol_path.write_text(yaml.safe_dump({
        "name": "codec-test", "version": 1, "dataset": "nersemble", "subjects": ["388"],
        "tasks": [{"kind": "self_reenactment", "sequences": ["GLASSES"], "source_frame": 0,
                   "source_cameras": ["220700191"], "frames": [1, 2, 3], "target_cameras": list(SERIALS)}]}))
    run_dir = tmp / "run"
    unit = load_protocol(protocol_path).units()[0]
    for ref in unit.targets:
        video = root / "nvs/388/sequences/GLASSES/images" / f"cam_{ref.camera}.mp4"
        truth = read_video_frame(video, ref.frame).astype(np.float32) / 255
        write_png(run_dir / "predictions" / unit.name / RunStore.relative_prediction(ref),
                  np.clip(truth + 0.05 * smooth(truth.shape[1], truth.shape[0], ref.frame) - 0.025, 0, 1))
    return root, protocol_path, run_dir


def test_scores_change_with_the_round_trip_and_the_cache_follows_the_setting(scored_folder) -> None:
    root, protocol_path, run_dir = scored_folder
    registry = build_registry()
    prepare_external_run(run_dir, registry, "nersemble", str(protocol_path), str(root), "external")
    store = RunStore(run_dir)

    def values(**kwargs) -> tuple[list[float], str]:
        result = score_run(run_dir, registry, metric_names=["psnr"], **kwargs)
        frame = result.metrics.filter(result.metrics["variant"] == "full").sort(["camera", "frame"])
        key = next((run_dir / "scores").glob("*.json"))
        return frame["value"].to_list(), read_json(key)["key"]

    plain, plain_key = values()
    assert len(plain) == 6 and "scoring" not in store.read_run()
    assert read_json(store.scoring_errors_path)["codec_roundtrip"] is None
    coded, coded_key = values(codec_roundtrip=CodecRoundTrip())
    assert coded_key != plain_key  # the setting is part of the cache key: recomputed, not answered from the cache
    assert all(abs(a - b) > 1e-3 for a, b in zip(plain, coded, strict=True))
    run = store.read_run()
    assert run["scoring"]["codec_roundtrip"] == {"codec": "h264", "crf": 14, "pix_fmt": "yuv420p", "fps": 73.0}
    assert "crf 14" in run["scoring"]["note"] and recorded_codec(run) == CodecRoundTrip()
    assert read_json(store.scoring_errors_path)["codec_roundtrip"]["crf"] == 14
    again, again_key = values()  # without it again: the plain scores, and the record says so
    assert again == plain and again_key == plain_key and "scoring" not in store.read_run()


def test_the_flag_and_the_protocol_setting_give_the_same_scores(scored_folder, tmp_path: Path, capsys) -> None:
    root, protocol_path, run_dir = scored_folder
    registry = build_registry()
    prepare_external_run(run_dir, registry, "nersemble", str(protocol_path), str(root), "external")
    assert main(["score", str(run_dir), "--codec-roundtrip", "--device", "cpu"]) == 0
    assert "after an H.264 crf 14 yuv420p at 73 fps MP4 round trip" in capsys.readouterr().out
    from harness.report.summary import write_summary

    page = " ".join(write_summary(run_dir, registry).read_text().split())
    assert "Codec round trip:</strong> scores are after an H.264 crf 14" in page  # the report says so too
    flagged = score_run(run_dir, registry, metric_names=["psnr"], codec_roundtrip=CodecRoundTrip()).metrics

    in_protocol = tmp_path / "run"
    raw = yaml.safe_load(protocol_path.read_text())
    raw["scoring"] = {"codec_roundtrip": {"crf": 14}}
    setting_path = tmp_path / "codec-test.yaml"
    setting_path.write_text(yaml.safe_dump(raw))
    (in_protocol / "predictions").mkdir(parents=True)
    for unit in (run_dir / "predictions").iterdir():
        shutil.copytree(unit, in_protocol / "predictions" / unit.name)
    prepare_external_run(in_protocol, registry, "nersemble", str(setting_path), str(root), "external")
    assert json.loads((in_protocol / "run.json").read_text())["protocol_content"]["scoring"]
    from_protocol = score_run(in_protocol, registry, metric_names=["psnr"]).metrics
    # x264 is not bitwise repeatable under CPU contention (see harness.scoring.codec): equal to 0.05 dB
    assert from_protocol["value"].to_list() == pytest.approx(flagged["value"].to_list(), abs=0.05)
    assert recorded_codec(RunStore(in_protocol).read_run()) == CodecRoundTrip()


def test_run_with_the_flag_runs_the_protocol_with_its_scoring_section(tmp_path: Path) -> None:
    from harness.data.resolve import resolve_protocol
    from harness.scoring.codec import protocol_file_with_codec

    spec = build_registry().dataset("nersemble")
    path = protocol_file_with_codec(spec, "nvs", tmp_path, CodecRoundTrip())
    assert protocol_file_with_codec(spec, "nvs", tmp_path, CodecRoundTrip()) == path  # the same request, one file
    protocol, plain = load_protocol(path), resolve_protocol(spec, "nvs")
    assert (protocol.name, protocol.version, protocol.tasks) == (plain.name, plain.version, plain.tasks)
    assert protocol_codec(protocol.raw) == CodecRoundTrip() and protocol.identity() != plain.identity()
