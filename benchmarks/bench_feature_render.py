"""CPU feature-render timings: D feature channels against RGB, and the normal/depth render, forward+backward.

    python benchmarks/bench_feature_render.py                    # 5k Gaussians, 64x64 and 128x128, one thread
    python benchmarks/bench_feature_render.py --channels 3 16 32 --sizes 64 --threads 2

The scene is the demo head seen by the frontal rig camera (see bench_render.py); features are random, gradients flow
to the means and the features (the normal render: to means and quaternions).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from bench_render import scene

from harness.render.renderer import render, render_normals_depth


def seconds_per_call(fn: Callable[..., None], *args: object, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn(*args)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    return (time.perf_counter() - t0) / repeats


def features_step(g: dict[str, torch.Tensor], feats: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor,
                  size: int) -> None:
    means, f = g["means"].clone().requires_grad_(True), feats.clone().requires_grad_(True)
    out = render(means, g["quats"], g["scales"], g["opacities"], f, viewmats, Ks, size, size,
                 backgrounds=torch.ones(1, f.shape[1]), backend="cpu")
    out.features.sum().backward()


def normals_step(g: dict[str, torch.Tensor], viewmats: torch.Tensor, Ks: torch.Tensor, size: int) -> None:
    means, quats = g["means"].clone().requires_grad_(True), g["quats"].clone().requires_grad_(True)
    out = render_normals_depth(means, quats, g["scales"], g["opacities"], viewmats, Ks, size, size, backend="cpu")
    (out.normals.sum() + out.depth.sum()).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=5000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--channels", type=int, nargs="+", default=[3, 16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timing = {"repeats": args.repeats, "warmup": args.warmup}
    gen = torch.Generator().manual_seed(0)
    label = f"cpu {args.gaussians} Gaussians"
    for size in args.sizes:
        g, viewmats, Ks = scene(args.gaussians, size, "cpu")
        base: float | None = None
        for channels in args.channels:
            feats = torch.rand(args.gaussians, channels, generator=gen)
            s = seconds_per_call(features_step, g, feats, viewmats, Ks, size, **timing)
            base = s if base is None else base
            print(f"{label} {size}x{size} D={channels:<3d} forward+backward: {s * 1000:7.0f} ms "
                  f"({s / base:.2f}x D={args.channels[0]})")
        s = seconds_per_call(normals_step, g, viewmats, Ks, size, **timing)
        print(f"{label} {size}x{size} normals+depth forward+backward: {s * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
