"""Leave-one-view-out reprojection PSNR of SplatShot's denoised views (cross-view consistency).

The harness has no metric on a method's intermediate images, so this reads what ``harness run`` exported: with
``SPLATSHOT_EXPORT_DIR=DIR`` set, each unit writes its final denoised views (the 16 rig directions at the work
resolution), their cameras and the base head it started from into ``DIR/<unit source>.npz``.

For each unit and each held-out view v (``--held-out``, default the 4 NeRSemble-v1 evaluation directions: rig
indices 3, 6, 11, 15), a fresh 3DGS (the unit's base head) is fitted to the other 15 denoised views with the method's
own refit (0.8 L1 + 0.2 (1 - SSIM), ``--iterations`` Adam steps, fixed seed) and rendered at v; the PSNR between
that render and the denoised view v measures how well the other views predict it. Views that agree in 3D reproject
well; views that each hallucinate their own head do not.

    python benchmarks/bench_splatshot_consistency.py DIR_A [DIR_B ...] [--out table.json]

Prints per directory the mean over units and held-out views, and per unit values (for paired comparisons).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from harness_methods.splatshot.refit import FreeGaussians, Refitter

HELD_OUT = (3, 6, 11, 15)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def unit_scores(path: Path, held_out: tuple[int, ...], iterations: int) -> list[float]:
    data = np.load(path)
    denoised = torch.from_numpy(data["denoised"]).float()
    viewmats, Ks = torch.from_numpy(data["viewmats"]).float(), torch.from_numpy(data["Ks"]).float()
    background = torch.from_numpy(data["background"]).float()
    resolution = denoised.shape[-1]
    scores = []
    for v in held_out:
        keep = [i for i in range(len(denoised)) if i != v]
        base = FreeGaussians(*[torch.from_numpy(data[f"base_{k}"]).float().clone()
                               for k in ("means", "quats", "log_scales", "opacity_logits", "colours")])
        refitter = Refitter(base, viewmats[keep], Ks[keep], resolution, background, seed=0)
        refitter.fit(denoised[keep], iterations)
        with torch.no_grad():
            rgb, _ = base.render(viewmats[v:v + 1], Ks[v:v + 1], resolution, resolution, background)
        scores.append(psnr(rgb.permute(0, 3, 1, 2), denoised[v:v + 1]))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--held-out", default=",".join(map(str, HELD_OUT)))
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    held_out = tuple(int(x) for x in args.held_out.split(","))
    table = {}
    for folder in args.dirs:
        units = {}
        for path in sorted(folder.glob("*.npz")):
            units[path.stem] = unit_scores(path, held_out, args.iterations)
        values = [v for s in units.values() for v in s]
        table[str(folder)] = {"mean_psnr": float(np.mean(values)) if values else None, "units": units}
        print(f"{folder}: leave-one-view-out reprojection PSNR {table[str(folder)]['mean_psnr']:.3f} dB over "
              f"{len(units)} units x {len(held_out)} held-out views")
    if args.out:
        args.out.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
