"""Scorer throughput: batched PSNR+SSIM versus a plain per-image torchmetrics loop, 512x512 pairs on CPU.

    python benchmarks/bench_scorer.py [--pairs 64] [--batch 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.scoring.metrics import psnr, ssim


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(args.pairs, 3, args.size, args.size, generator=gen)
    pred = (gt + 0.05 * torch.randn(gt.shape, generator=gen)).clamp(0, 1)

    def ours() -> None:
        for start in range(0, args.pairs, args.batch):
            p, g = pred[start:start + args.batch], gt[start:start + args.batch]
            psnr(p, g)
            ssim(p, g)

    def torchmetrics_loop() -> None:
        for i in range(args.pairs):
            p, g = pred[i:i + 1], gt[i:i + 1]
            peak_signal_noise_ratio(p, g, data_range=1.0)
            structural_similarity_index_measure(p, g, data_range=1.0)

    for name, fn in (("harness batched", ours), ("torchmetrics per-image loop", torchmetrics_loop)):
        fn()  # warm-up
        best = min(_timed(fn) for _ in range(args.repeats))
        print(f"{name:>28}: {args.pairs / best:8.1f} pairs/s  ({best:.2f} s for {args.pairs} pairs, "
              f"{args.threads} threads)")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
