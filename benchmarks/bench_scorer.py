"""Scorer throughput against the naive loop a researcher would write, like for like, 512x512 pairs on CPU.

    python benchmarks/bench_scorer.py [--pairs 32] [--size 512] [--threads 1]

Both sides start from PNG files on disk and compute PSNR, SSIM and LPIPS (AlexNet) for every pair:
- naive: PIL decode, scikit-image ``peak_signal_noise_ratio`` and ``structural_similarity`` (gaussian_weights,
  sigma 1.5, population covariance: the harness's SSIM definition), ``lpips.LPIPS`` one pair at a time;
- harness: ``harness.imageio.read_image`` and the scorer's metric objects at the scorer's own CPU batch size
  (``harness.scoring.scorer.BATCH_SIZE['cpu']``), i.e. what ``harness score`` does per pair.
Wall time and process CPU time are both printed. LPIPS weights: the real AlexNet file when ``harness weights status``
shows it verified, otherwise a random stand-in with the real architecture (labelled; its timing is representative,
its values are not).
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


def _lpips_weights() -> str:
    from harness.scoring import sources
    from harness.weights import status

    states = {s.state for s in status([sources.LPIPS_ALEX])}
    if states <= {"verified", "recorded"}:
        return "real AlexNet weights (verified)"
    import standins

    home = Path(tempfile.mkdtemp(prefix="bench_home_"))
    os.environ["HARNESS_HOME"] = str(home)
    standins.install_lpips_standin(home / "weights")
    from harness.scoring import lpips_metric
    from harness.weights import file_sha256

    spec = sources.LPIPS_ALEX
    from dataclasses import replace

    from harness.api.specs import WeightFile

    path = home / "weights" / spec.files[0].relpath
    for cls in (lpips_metric.LPIPSAlex, lpips_metric._LPIPS):
        cls.weights = replace(spec, files=(WeightFile(spec.files[0].relpath, sha256=file_sha256(path)),))
    return f"STAND-IN LPIPS weights (random AlexNet) in {home}: timings only"


def _write_pairs(n: int, size: int, folder: Path) -> list[tuple[Path, Path]]:
    from harness.imageio import write_png

    gen = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        gt = gen.random((size, size, 3), dtype=np.float32)
        pred = np.clip(gt + 0.05 * gen.standard_normal(gt.shape, dtype=np.float32), 0, 1)
        a, b = folder / f"pred_{i}.png", folder / f"gt_{i}.png"
        write_png(a, pred)
        write_png(b, gt)
        pairs.append((a, b))
    return pairs


def naive(pairs: list[tuple[Path, Path]]) -> list[tuple[float, float, float]]:
    import lpips
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from harness.scoring.sources import TORCH_HUB
    from harness.scoring.torchhub import torch_hub_dir
    from harness.weights import weights_dir

    with torch_hub_dir(weights_dir() / TORCH_HUB):
        model = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()
    out = []
    for a, b in pairs:
        p = np.asarray(Image.open(a).convert("RGB"), dtype=np.float64) / 255.0
        g = np.asarray(Image.open(b).convert("RGB"), dtype=np.float64) / 255.0
        value_psnr = peak_signal_noise_ratio(g, p, data_range=1.0)
        value_ssim = structural_similarity(g, p, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
        with torch.no_grad():
            tp, tg = (torch.from_numpy(x).float().permute(2, 0, 1)[None] for x in (p, g))
            value_lpips = float(model(tp, tg, normalize=True))
        out.append((value_psnr, value_ssim, value_lpips))
    return out


def harness(pairs: list[tuple[Path, Path]]) -> list[tuple[float, float, float]]:
    from harness.imageio import read_image
    from harness.scoring.lpips_metric import LPIPSAlex
    from harness.scoring.metrics import PSNR, SSIM
    from harness.scoring.scorer import BATCH_SIZE

    batch = BATCH_SIZE["cpu"]
    metrics = [PSNR(), SSIM(), LPIPSAlex("cpu")]
    out = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        pred = torch.from_numpy(np.stack([read_image(a)[0] for a, _ in chunk])).permute(0, 3, 1, 2)
        gt = torch.from_numpy(np.stack([read_image(b)[0] for _, b in chunk])).permute(0, 3, 1, 2)
        values = [m(pred, gt).double().numpy() for m in metrics]
        out += list(zip(*values, strict=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(_lpips_weights())
    folder = Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    pairs = _write_pairs(args.pairs, args.size, folder)
    results = {}
    for name, fn in (("naive loop (PIL, scikit-image, lpips)", naive), ("harness scorer path", harness)):
        fn(pairs[:2])  # warm-up: imports, model load
        best = None
        for _ in range(args.repeats):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            results[name] = fn(pairs)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            best = (wall, cpu) if best is None or wall < best[0] else best
        wall, cpu = best
        print(f"{name:>40}: {args.pairs / wall:7.2f} pairs/s wall ({wall:.2f} s), CPU {cpu:.2f} s, "
              f"{args.threads} thread(s), {args.pairs} pairs {args.size}x{args.size}")
    a, b = (np.array(v) for v in results.values())
    print("max |difference| psnr {:.2e}  ssim {:.2e}  lpips {:.2e}".format(*np.abs(a - b).max(0)))


if __name__ == "__main__":
    main()
