"""Renderer and gs-fit timings.

    python benchmarks/bench_render.py                       # CPU backend, 20k Gaussians at 256x256
    python benchmarks/bench_render.py --backend gsplat --size 512 --device cuda
    python benchmarks/bench_render.py --gs-fit              # also: gs-fit seconds per demo unit (CPU)

The scene is the demo head (Gaussians bound to the open template) seen by the frontal rig camera, so coverage and
overlap are those of a real head render, not of a synthetic cloud.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.api.types import Camera
from harness.data.demo import FULL_HEIGHT, FULL_WIDTH, rig_cameras, subject_identity
from harness.heads.model import deform
from harness.heads.template import head_template
from harness.render.renderer import render
from harness.synth.heads import build_head


def scene(count: int, size: int, device: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    model = head_template()
    head = build_head(model, subject_identity(0, 0), np.random.default_rng(0), count=count)
    g = head.place(deform(model, model.params()).vertices, torch.as_tensor(model.faces))
    extrinsics, K = rig_cameras()
    full = Camera(extrinsics["222200037"], K, FULL_WIDTH, FULL_HEIGHT)
    # Square crop of the full frame's centre, resized to size x size.
    side = FULL_WIDTH
    K_crop = full.K.copy()
    K_crop[1, 2] -= (FULL_HEIGHT - side) / 2
    camera = Camera(full.world_to_camera, K_crop, side, side).resized(size, size)
    tensors = {k: v.detach().to(device) for k, v in g.items()}
    viewmats = torch.as_tensor(camera.world_to_camera[None], dtype=torch.float32, device=device)
    Ks = torch.as_tensor(camera.K[None], dtype=torch.float32, device=device)
    return tensors, viewmats, Ks


def time_render(args: argparse.Namespace) -> None:
    g, viewmats, Ks = scene(args.gaussians, args.size, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def once(backward: bool) -> None:
        means = g["means"].clone().requires_grad_(backward)
        sh = g["sh"].clone().requires_grad_(backward)
        out = render(means, g["quats"], g["scales"], g["opacities"], sh, viewmats, Ks, args.size, args.size,
                     sh_degree=0, backgrounds=torch.ones(1, 3, device=args.device), backend=args.backend)
        if backward:
            out.rgb.sum().backward()

    for backward in (False, True):
        for _ in range(args.warmup):
            once(backward)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            once(backward)
        sync()
        seconds = (time.perf_counter() - t0) / args.repeats
        label = "forward+backward" if backward else "forward"
        print(f"{args.backend} {args.gaussians} Gaussians {args.size}x{args.size} {label}: {1 / seconds:.2f} frames/s "
              f"({seconds * 1000:.0f} ms)")


def time_gs_fit(args: argparse.Namespace) -> None:
    from harness.api.types import Target, ViewRef
    from harness.data.demo import DemoDataset
    from harness.runner import frame_tracking, with_tracking
    from harness_methods.gs_fit.method import GsFit

    DemoDataset.generate_if_needed(None)
    dataset = DemoDataset.open(None)
    method = GsFit()
    method.load(args.device, {})
    for subject in ("901", "902"):
        source = with_tracking(dataset.load_view(ViewRef(subject, "EXP-1-head", 0, "222200037")), dataset)
        refs = [ViewRef(subject, "EXP-1-head", 0, c) for c in ("222200040", "220700191", "222200043", "221501007")]
        targets = [Target(r, dataset.camera(r.subject, r.sequence, r.frame, r.camera), frame_tracking(dataset, r))
                   for r in refs]
        t0 = time.perf_counter()
        avatar = method.reconstruct([source])
        t1 = time.perf_counter()
        method.render(avatar, targets)
        t2 = time.perf_counter()
        print(f"gs-fit demo unit {subject}: reconstruct {t1 - t0:.1f} s, render 4 targets {t2 - t1:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="cpu", choices=["cpu", "gsplat"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gaussians", type=int, default=20000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--gs-fit", action="store_true")
    args = parser.parse_args()
    time_render(args)
    if args.gs_fit:
        time_gs_fit(args)


if __name__ == "__main__":
    main()
