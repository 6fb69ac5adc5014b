"""Scorer throughput against the naive loop a researcher would write, like for like, per metric and for the suite.

    python benchmarks/bench_scorer.py [--pairs 8] [--size 512] [--metrics psnr,ssim,lpips,csim,dreamsim]
                                      [--device cpu] [--precisions fp32,bf16] [--threads 1] [--no-naive]

Both sides start from the same PNG pairs (a red-disk "face" over texture, the prediction a noisy copy):
- naive loop: PIL decode; scikit-image ``peak_signal_noise_ratio`` and ``structural_similarity`` (gaussian_weights,
  sigma 1.5, population covariance: the harness's SSIM definition); ``lpips.LPIPS`` one pair at a time; DreamSim's
  own ``dreamsim(...)`` model and preprocessing on the whole frame; insightface's detector on the ground truth and
  ``norm_crop`` + ArcFace on both images, one image at a time. No caching.
- harness: ``harness.imageio.read_image`` and the scorer's compute path (``harness.scoring.scorer._compute``: the
  metric objects in the chosen precision, the scorer's batch size, the ground-truth feature cache), twice: cold
  (empty ground-truth cache) and warm (the first pass's ground-truth features cached, as when a second method is
  scored on the same protocol). Only the ``full`` variant (no alpha), like the naive loop.
Per metric the images are decoded once and only the metric is timed; the suite times decoding plus every metric.
Each line prints wall time, process CPU time and the 1-minute load average (the machine may be shared).
For each reduced precision: the largest |value - fp32 value| per metric.

Weights: the real files when ``harness weights status`` shows all of them verified, otherwise random stand-ins in
the real layouts (tests/standins.py), and every line says so. LPIPS and DreamSim stand-ins have the real
architectures, so their timings are representative and their values are not; the CSIM stand-ins are tiny ONNX
graphs, so CSIM's timing then measures the pipeline (detection call, warp, batching), not SCRFD-10G/ArcFace-R50.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SUITE = ("psnr", "ssim", "lpips", "csim", "dreamsim")


def prepare_weights(names: list[str]) -> str:
    """Real weights when all are present and verified; else stand-ins in a temporary HARNESS_HOME. Returns the
    label printed with every number."""
    from harness.plugins.registry import build_registry
    from harness.weights import missing_files, status

    registry = build_registry()
    needed = [registry.weights(w) for n in names for w in registry.metric(n).weights]
    if needed and not any(missing_files(s) for s in needed) and {s.state for s in status(needed)} <= {
            "verified", "recorded"}:
        return "real weights (verified)"
    if not needed:
        return "no weights needed"
    import standins

    from harness.api.specs import WeightFile
    from harness.scoring import lpips_metric
    from harness.weights import file_sha256

    home = Path(tempfile.mkdtemp(prefix="bench_home_"))
    os.environ["HARNESS_HOME"] = str(home)
    standins.install_lpips_standin(home / "weights")
    if "csim" in names:
        standins.install_insightface_standin(home / "weights")
    if "dreamsim" in names:
        standins.install_dreamsim_standin(home / "weights")
    spec = lpips_metric.LPIPSAlex.weights  # torchvision's published checksum prefix cannot match a random net
    path = home / "weights" / spec.files[0].relpath
    trusted = replace(spec, files=(WeightFile(spec.files[0].relpath, sha256=file_sha256(path)),))
    for cls in (lpips_metric.LPIPSAlex, lpips_metric._LPIPS):
        cls.weights = trusted
    return f"STAND-IN weights (random networks) in {home}: timings only, values not meaningful"


def write_pairs(n: int, size: int, folder: Path) -> list[tuple[Path, Path]]:
    from standins import face_image

    from harness.imageio import write_png

    gen = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        gt = face_image(size=size, centre=(size // 2 + 7 * (i % 5), size // 2), radius=size // 5, seed=i)
        pred = np.clip(gt + 0.05 * gen.standard_normal(gt.shape), 0, 1).astype(np.float32)
        a, b = folder / f"pred_{i}.png", folder / f"gt_{i}.png"
        write_png(a, pred)
        write_png(b, gt)
        pairs.append((a, b))
    return pairs


class Timing:
    def __init__(self, label: str, pairs: int, wall: float, cpu: float, load: float) -> None:
        self.label, self.pairs, self.wall, self.cpu, self.load = label, pairs, wall, cpu, load

    def line(self) -> str:
        return (f"{self.label:>44}: {self.pairs / self.wall:9.2f} pairs/s   wall {self.wall:7.2f} s   "
                f"CPU {self.cpu:7.2f} s   load {self.load:.2f}")


def timed(label: str, pairs: int, fn: Callable[[], Any], device: str) -> tuple[Any, Timing]:
    load = os.getloadavg()[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    timing = Timing(label, pairs, wall, cpu, (load + os.getloadavg()[0]) / 2)
    print(timing.line(), flush=True)
    return out, timing


# The naive loop -----------------------------------------------------------------------------------------------


class Naive:
    """What a researcher writes: the reference libraries, one pair at a time, nothing cached."""

    def __init__(self, names: list[str], device: str) -> None:
        self.names, self.device = names, device
        from harness.scoring.sources import DREAMSIM_DIR, TORCH_HUB
        from harness.scoring.torchhub import torch_hub_dir
        from harness.weights import weights_dir

        if "lpips" in names:
            import lpips

            with torch_hub_dir(weights_dir() / TORCH_HUB):
                self.lpips = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval().to(device)
        if "dreamsim" in names:
            from dreamsim import dreamsim

            cache = weights_dir() / DREAMSIM_DIR
            with torch_hub_dir(cache):
                self.dreamsim, self.preprocess = dreamsim(pretrained=True, device=device, cache_dir=str(cache),
                                                          dreamsim_type="ensemble")
        if "csim" in names:
            from harness.scoring.identity import IdentityModel

            self.identity = IdentityModel(device)  # the insightface ONNX models, called one image at a time

    @staticmethod
    def decode(path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0

    def metric(self, name: str, p: np.ndarray, g: np.ndarray) -> float:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        if name == "psnr":
            return float(peak_signal_noise_ratio(g, p, data_range=1.0))
        if name == "ssim":
            return float(structural_similarity(g, p, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False))
        with torch.no_grad():
            if name == "lpips":
                tp, tg = (torch.from_numpy(x).float().permute(2, 0, 1)[None].to(self.device) for x in (p, g))
                return float(self.lpips(tp, tg, normalize=True))
            if name == "dreamsim":
                from PIL import Image

                a, b = (self.preprocess(Image.fromarray((x * 255).round().astype(np.uint8))).to(self.device)
                        for x in (p, g))
                return float(self.dreamsim(a, b))
        if name == "csim":
            from insightface.utils.face_align import norm_crop

            pb, gb = (np.ascontiguousarray((x[..., ::-1] * 255).round().astype(np.uint8)) for x in (p, g))
            kps = self.identity.keypoints(gb)
            if kps is None:
                return float("nan")
            ep, eg = (self.identity.recognizer.get_feat([norm_crop(x, kps)])[0] for x in (pb, gb))
            return float(ep @ eg / (np.linalg.norm(ep) * np.linalg.norm(eg)))
        raise ValueError(name)


# The harness path ---------------------------------------------------------------------------------------------


def load_harness(names: list[str], device: str, mode: str) -> list[tuple[Any, Any]]:
    from harness.plugins.registry import build_registry
    from harness.scoring.precision import with_precision
    from harness.scoring.scorer import load_metrics

    loaded, _ = load_metrics(build_registry(), names, device, strict=True)
    return [(spec, with_precision(metric, mode, device)) for spec, metric in loaded]


def harness_pairs(files: list[tuple[Path, Path]]) -> list[Any]:
    from harness.api.types import ViewRef
    from harness.imageio import read_image
    from harness.scoring.scorer import _Pair, ground_truth_hash

    out = []
    for i, (a, b) in enumerate(files):
        pred, gt = read_image(a)[0], read_image(b)[0]
        out.append(_Pair(ViewRef("bench", "seq", i, "cam"), pred, gt, None, a.name, "", ground_truth_hash(gt, None),
                         full_prediction=pred))
    return out


def harness_values(pairs: list[Any], metrics: list[tuple[Any, Any]], device: str, cache: Any) -> dict[str, list]:
    from harness.scoring.scorer import _compute

    values: dict[str, list] = {spec.name: [np.nan] * len(pairs) for spec, _ in metrics}
    for i, name, _variant, value, _note in _compute(pairs, metrics, device, (1.0, 1.0, 1.0), cache):
        values[name][i] = np.nan if value is None else value
    return values


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--metrics", default=",".join(SUITE))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 first; the others are compared with it")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.metrics.split(",") if n]
    modes = [m for m in args.precisions.split(",") if m]
    from harness.scoring.precision import check_precision

    for mode in modes:
        check_precision(mode, args.device)
    label = prepare_weights(names)
    print(f"{label}\n{args.pairs} pairs {args.size}x{args.size}, {args.device}, {args.threads} torch thread(s), "
          f"{os.cpu_count()} cores; load = 1-minute load average during the measurement", flush=True)
    from harness.scoring.scorer import BATCH_SIZE
    from harness.scoring.values import ReferenceCache

    folder = Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    files = write_pairs(args.pairs, args.size, folder)
    results: dict[str, Any] = {"weights": label, "timings": [], "values": {}}
    n = args.pairs

    if not args.no_naive:
        naive = Naive(names, args.device)
        naive.metric(names[0], naive.decode(files[0][0]), naive.decode(files[0][1]))  # warm-up
        decoded = [(naive.decode(a), naive.decode(b)) for a, b in files]
        print("naive loop (reference libraries, one pair at a time, no cache)")
        for name in names:
            naive.metric(name, *decoded[0])
            vals, t = timed(f"naive {name}", n, lambda name=name: [naive.metric(name, p, g) for p, g in decoded],
                            args.device)
            results["values"][("naive", name)] = vals
            results["timings"].append(t)
        _, t = timed("naive suite (PNG decode + all metrics)", n,
                     lambda: [[naive.metric(m, naive.decode(a), naive.decode(b)) for m in names] for a, b in files],
                     args.device)
        results["timings"].append(t)

    for mode in modes:
        metrics = load_harness(names, args.device, mode)
        pairs = harness_pairs(files)
        harness_values(pairs[:1], metrics, args.device, ReferenceCache(Path(tempfile.mkdtemp())))  # warm-up
        print(f"harness scorer path, metric precision {mode} (batch "
              f"{BATCH_SIZE['cuda' if args.device.startswith('cuda') else 'cpu']})")
        for spec, metric in metrics:
            cache = ReferenceCache(Path(tempfile.mkdtemp(prefix="bench_cache_")))
            for state in ("cold", "warm"):
                vals, t = timed(f"harness {spec.name} {mode} {state} gt cache", n,
                                lambda spec=spec, metric=metric, cache=cache, pairs=pairs: harness_values(
                                    pairs, [(spec, metric)], args.device, cache), args.device)
                results["values"][(mode, spec.name)] = vals[spec.name]
                results["timings"].append(t)
        cache = ReferenceCache(Path(tempfile.mkdtemp(prefix="bench_cache_")))
        for state in ("cold", "warm"):
            _, t = timed(f"harness suite {mode} {state} (PNG decode + all)", n,
                         lambda cache=cache, metrics=metrics: harness_values(harness_pairs(files), metrics,
                                                                             args.device, cache), args.device)
            results["timings"].append(t)

    values = results["values"]
    if not args.no_naive:
        print("max |harness fp32 - naive| per metric (DreamSim: the harness crops the head square, the naive loop "
              "resizes the whole frame)")
        for name in names:
            if ("fp32", name) in values:
                diff = np.nanmax(np.abs(np.array(values[("fp32", name)]) - np.array(values[("naive", name)])))
                print(f"{name:>10}: {diff:.3g}")
    for mode in modes[1:]:
        print(f"max |{mode} - fp32| per metric ({'stand-in' if label.startswith('STAND-IN') else 'real'} weights)")
        for name in names:
            diff = float(np.nanmax(np.abs(np.array(values[(mode, name)]) - np.array(values[("fp32", name)]))))
            results.setdefault("differences", {})[(mode, name)] = diff
            print(f"{name:>10}: {diff:.3g}")
    return results


if __name__ == "__main__":
    main()
