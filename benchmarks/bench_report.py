"""Report build time on synthetic run folders: 3 methods x 2 protocols x 1,000 scored images each.

    python benchmarks/bench_report.py [--images 1000] [--out /tmp/bench-report]

The run folders are written in the real layout (run.json, metrics.parquet with 5 metrics x 2 variants per image,
images.parquet, 256x256 prediction PNGs, per-unit info.json). Their dataset is not installed, so galleries show
predictions without ground truth and there are no yaw plots: the figure is the cost of tables, statistics
(2,000-resample bootstraps), pages, exports and gallery files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl

from harness.imageio import write_png
from harness.plugins.registry import build_registry
from harness.report.site import build_report

METRICS = {"psnr": (25.0, 2.0), "ssim": (0.85, 0.03), "lpips": (0.15, 0.03), "csim": (0.6, 0.1),
           "dreamsim": (0.1, 0.02)}


def make_run(root: Path, method: str, protocol: str, images: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    run_id = f"{method}-{protocol}"
    folder = root / run_id
    subjects = [f"{100 + s}" for s in range(10)]
    per_unit = 10
    rows, image_rows = [], []
    for i in range(images):
        unit = f"{subjects[i % 10]}.SEQ.novel_view.f{i // (10 * per_unit):05d}.{(i // 10) % per_unit}"
        camera, frame = f"cam{i % 16:02d}", i // 10
        prediction = f"predictions/{unit}/{subjects[i % 10]}/SEQ/frame_{frame:05d}/cam_{camera}.png"
        image_rows.append({"unit": unit, "subject": subjects[i % 10], "sequence": "SEQ", "camera": camera,
                           "frame": frame, "prediction": prediction, "prediction_sha256": "0" * 64,
                           "ground_truth_sha256": "0" * 64, "masked_available": True})
        write_png(folder / prediction, rng.random((256, 256, 3)).astype(np.float32))
        for metric, (mean, sd) in METRICS.items():
            for variant in ("masked", "full"):
                rows.append({"run": run_id, "method": method, "dataset": "synthetic", "protocol": protocol,
                             "protocol_version": 1, "unit": unit, "kind": "novel_view", "subject": subjects[i % 10],
                             "sequence": "SEQ", "camera": camera, "frame": frame, "metric": metric,
                             "variant": variant, "value": float(rng.normal(mean, sd)), "status": "ok", "note": ""})
    pl.DataFrame(rows).write_parquet(folder / "metrics.parquet")
    pl.DataFrame(image_rows).write_parquet(folder / "images.parquet")
    for unit in {r["unit"] for r in image_rows}:
        (folder / "predictions" / unit / "info.json").write_text(json.dumps(
            {"unit": unit, "timings_s": {"reconstruct": 1.0, "render": 0.1}, "memory": {"rss_mb": 900.0}}))
    protocol_content = {"name": protocol, "version": 1, "dataset": "synthetic", "subjects": subjects,
                        "tasks": [{"kind": "novel_view", "sequences": ["SEQ"], "frames": [0],
                                   "source_cameras": ["cam00"], "target_cameras": ["cam01"]}]}
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "method": method, "method_version": "1", "dataset": "synthetic", "protocol": protocol,
        "protocol_version": 1, "protocol_content": protocol_content, "config": {}, "seed": 0, "failed_units": [],
        "provenance": {"recorded_at": "2026-01-01T00:00:00+00:00", "harness_commit": "synthetic"}}))
    (folder / "scoring_errors.json").write_text(json.dumps({"errors": [], "missing_units": [],
                                                            "unavailable_metrics": []}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/bench-report")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    runs = [make_run(out / "runs", m, p, args.images, seed)
            for seed, (m, p) in enumerate((m, p) for m in ("method-a", "method-b", "method-c") for p in ("p1", "p2"))]
    registry = build_registry()
    t0 = time.perf_counter()
    build_report(runs, out / "site", registry)
    seconds = time.perf_counter() - t0
    files = [f for f in (out / "site").rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    print(f"report for {len(runs)} runs x {args.images} images: {seconds:.1f} s, {len(files)} files, "
          f"{size / 1e6:.1f} MB on disk")


if __name__ == "__main__":
    main()
