"""Decoding throughput of the dataset readers, first pass (decode) and cached (frame cache), on this machine.

    python benchmarks/bench_decode.py [--frames 60]

Writes stand-in data in the real formats (NeRSemble benchmark MP4s at the delivered 1100x1604, H.264 yuv420p with
a key frame every 30 frames; Ava-256 AVIFs at 667x1024 inside per-camera zips), then reads every frame once through
the reader (first pass: decode + alpha + PNG write into the cache) and once more (cached). Frames per second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _timed(dataset, refs) -> float:
    t0 = time.perf_counter()
    for ref in refs:
        dataset.load_view(ref)
    return len(refs) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    from dataset_writers import AVA_CAMERAS, SERIALS, look_at, marked_frame, project, write_ava

    from harness.api.types import ViewRef
    from harness.data.ava256 import Ava256
    from harness.data.nersemble_benchmark import NersembleBenchmark
    from harness.data.prepared import PreparedDataset
    from harness.data.video import write_video

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        width, height = 1100, 1604
        rng = np.random.default_rng(0)
        texture = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        base = root / "nvs" / "388"
        K = np.array([[3000.0, 0, width / 2], [0, 3000.0, height / 2], [0, 0, 1]])
        for serial in SERIALS[:1]:
            frames, alphas = [], []
            for t in range(args.frames):
                image, mask = marked_frame(width, height, project(K, look_at(0), np.zeros(3)), t)
                frames.append(np.roll(texture, 3 * t, axis=1) // 2 + image // 2)
                alphas.append(np.repeat(mask[..., None], 3, axis=-1))
            options = {"crf": "18", "preset": "veryfast", "pix_fmt": "yuv420p"}
            write_video(base / "sequences/GLASSES/images" / f"cam_{serial}.mp4", frames, codec="libx264",
                        options=options, gop=30)
            write_video(base / "sequences/GLASSES/alpha_maps" / f"cam_{serial}.mp4", alphas, codec="libx264",
                        options=options, gop=30)
        import json

        (base / "calibration").mkdir(parents=True)
        (base / "calibration/camera_params.json").write_text(json.dumps(
            {"world_2_cam": {SERIALS[0]: look_at(0).tolist()}, "intrinsics": {SERIALS[0]: K.tolist()}}))
        reader = NersembleBenchmark.open(root)
        refs = [ViewRef("388", "GLASSES", t, SERIALS[0]) for t in range(args.frames)]
        dataset = PreparedDataset(reader, None, "bench", cache_root=root / "cache")
        first = _timed(dataset, refs)
        cached = _timed(PreparedDataset(reader, None, "bench", cache_root=root / "cache"), refs)
        print(f"NeRSemble MP4 1100x1604 (image + alpha video, sequential frames): first pass {first:.1f} frames/s, "
              f"cached {cached:.1f} frames/s")
        scattered = [refs[i] for i in rng.permutation(len(refs))]
        direct = _timed(PreparedDataset(reader, None, "bench", cache_root=root / "cache2"), scattered)
        print(f"NeRSemble MP4 1100x1604, random order (seek per frame): first pass {direct:.1f} frames/s")

        ava_frames = tuple(range(max(args.frames // 3, 4)))
        write_ava(root / "ava", frames=ava_frames, downscale=4)
        ava = Ava256.open(root / "ava")
        capture = "20230405--1635--AAN112"
        ava_refs = [ViewRef(capture, "EXP_free_face", f, c) for f in ava_frames[1:] for c in AVA_CAMERAS]
        dataset = PreparedDataset(ava, None, "bench-ava", cache_root=root / "cache")
        first = _timed(dataset, ava_refs)
        cached = _timed(PreparedDataset(ava, None, "bench-ava", cache_root=root / "cache"), ava_refs)
        print(f"Ava-256 AVIF 667x1024 in zips (+ segmentation, undistortion for 1 of 3 cameras): first pass "
              f"{first:.1f} frames/s, cached {cached:.1f} frames/s")


if __name__ == "__main__":
    main()
