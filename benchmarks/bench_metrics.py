"""Per-metric throughput at 512x512, batched versus a naive per-image loop, and the speed-up of scoring a second
method on ground-truth features already cached.

    python benchmarks/bench_metrics.py [--pairs 32] [--batch 16] [--metrics psnr,ssim,lpips,csim,dreamsim]
                                       [--device cpu|cuda] [--precision fp32|tf32|bf16] [--threads 1]
                                       [--second-method]

Real weights are used when ``$HARNESS_HOME/weights`` has them (``harness weights status``); otherwise random
stand-ins are written to a temporary HARNESS_HOME in the real cache layouts. Stand-ins for LPIPS and DreamSim have
the real architectures, so their timings are representative; the CSIM stand-ins are tiny ONNX graphs, so CSIM's
number then measures the pipeline (detection call, warp, batching), not SCRFD-10G and ArcFace-R50 compute. The
"naive loop" runs the same code one pair at a time with no ground-truth cache. Wall and process CPU time and the
1-minute load average are printed; the comparison with the reference libraries' own loop is bench_scorer.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _ensure_weights(names: list[str]) -> str:
    from harness.plugins.registry import build_registry
    from harness.weights import missing_files, status

    registry = build_registry()
    needed = [registry.weights(w) for n in names for w in registry.metric(n).weights]
    if not any(missing_files(spec) for spec in needed):  # present: say whether they are the verified files
        states = {s.state for s in status(needed)}
        return ("real weights (verified)" if states <= {"verified", "recorded"}
                else f"weights present but not all verified ({', '.join(sorted(states))}): check "
                     "`harness weights status` before quoting these numbers")
    import standins

    home = Path(tempfile.mkdtemp(prefix="bench_home_"))
    os.environ["HARNESS_HOME"] = str(home)
    standins.install_lpips_standin(home / "weights", nets=("alex", "vgg"))
    standins.install_insightface_standin(home / "weights")
    if "dreamsim" in names:
        standins.install_dreamsim_standin(home / "weights")
    from dataclasses import replace

    from harness.api.specs import WeightFile
    from harness.scoring import lpips_metric
    from harness.weights import file_sha256

    for cls in (lpips_metric.LPIPSAlex, lpips_metric.LPIPSVGG):  # a random net cannot match torchvision's checksum
        spec = cls.weights
        path = home / "weights" / spec.files[0].relpath
        cls.weights = replace(spec, files=(WeightFile(spec.files[0].relpath, sha256=file_sha256(path)),))
    return f"STAND-IN weights (random networks) in {home}: timings only, values not meaningful"


def _pairs(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from standins import face_image

    faces = np.stack([face_image(size=size, centre=(size // 2 + 7 * (i % 5), size // 2), radius=size // 5, seed=i)
                      for i in range(n)])
    gt = torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous()
    gen = torch.Generator().manual_seed(0)
    return (gt + 0.04 * torch.randn(gt.shape, generator=gen)).clamp(0, 1), gt


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _throughput(fn, pairs: int, device: str, repeats: int) -> tuple[float, float]:
    """(pairs/s wall, process CPU seconds) of the fastest repeat."""
    fn()  # warm-up
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return pairs / best[0], best[1]


def bench_metrics(names: list[str], pairs: int, batch: int, size: int, device: str, repeats: int,
                  precision: str = "fp32") -> None:
    from harness.api.specs import load_target
    from harness.plugins.registry import build_registry
    from harness.scoring.precision import with_precision

    registry = build_registry()
    pred, gt = (t.to(device) for t in _pairs(pairs, size))
    print(f"{'metric':>10} {'batched':>14} {'CPU s':>7} {'naive loop':>14} {'CPU s':>7} {'speed-up':>9} {'load':>5}  "
          f"({pairs} pairs {size}x{size}, batch {batch}, {device}, {torch.get_num_threads()} threads, precision "
          f"{precision}; the naive loop is the same code one pair at a time; load: 1-minute load average)")
    for name in names:
        metric = with_precision(load_target(registry.metric(name).target)(device=device), precision, device)

        def batched(metric=metric) -> None:
            for s in range(0, pairs, batch):
                metric(pred[s:s + batch], gt[s:s + batch])

        def naive(metric=metric) -> None:
            for i in range(pairs):
                metric(pred[i:i + 1], gt[i:i + 1])

        (fast, fast_cpu), (slow, slow_cpu) = (_throughput(batched, pairs, device, repeats),
                                              _throughput(naive, pairs, device, repeats))
        print(f"{name:>10} {fast:>10.3g} p/s {fast_cpu:>7.2f} {slow:>10.3g} p/s {slow_cpu:>7.2f} {fast / slow:>8.2f}x "
              f"{os.getloadavg()[0]:>5.2f}")


def bench_second_method(names: list[str], device: str, precision: str = "fp32") -> None:
    """Score two demo 'methods' in turn: the second reuses the first's cached ground-truth features."""
    import shutil

    from harness.plugins.registry import build_registry
    from harness.runner import RunRequest, run
    from harness.scoring.scorer import score_run

    registry = build_registry()
    runs = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    first = run(RunRequest(method="nearest-input", dataset="demo", runs_dir=runs, device=device),
                registry)["prepared"].store.root
    cache_root = Path(os.environ["HARNESS_HOME"]) / "cache" / "reference"
    for attempt in ("first method (cold ground-truth cache)", "second method (warm ground-truth cache)"):
        if attempt.startswith("first"):
            shutil.rmtree(cache_root, ignore_errors=True)
        target = runs / f"copy-{attempt.split()[0]}"
        shutil.copytree(first, target, ignore=shutil.ignore_patterns("scores", "metrics.parquet"))
        t0, c0, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        result = score_run(target, registry, device=device, metric_names=names, metric_precision=precision)
        print(f"{attempt:>42}: metrics {result.metric_seconds:6.1f} s, scorer wall {time.perf_counter() - t0:6.1f} s, "
              f"CPU {time.process_time() - c0:6.1f} s, load {load:.2f} ({result.metrics.height} values)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--metrics", default="psnr,ssim,lpips,lpips_vgg,csim,dreamsim")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--second-method", action="store_true", help="also time scoring a second demo method")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in args.metrics.split(",") if n]
    print(_ensure_weights(names))
    bench_metrics(names, args.pairs, args.batch, args.size, args.device, args.repeats, args.precision)
    if args.second_method:
        bench_second_method(names, args.device, args.precision)


if __name__ == "__main__":
    main()
