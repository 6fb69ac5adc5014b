"""Re-tuning SplatShot's guidance weight for the demo resolution, on identities neither trained on nor evaluated.

The tuning heads come from a separate corpus (``harness synth --seed 1``: its identities are drawn from the corpus
stream of seed 1, disjoint from the prior's training corpus of seed 0 and kept away from every evaluation subject),
rendered from the 16 rig cameras. The frontal render is the input photo; for each guidance weight the method runs
exactly as in ``harness run`` and is scored against the other 15 ground-truth renders (masked PSNR at the work
resolution, composited on white) and by leave-one-view-out reprojection PSNR of its denoised views.

    python benchmarks/bench_splatshot_tune.py CORPUS --weights 0,446,3000,11000 [--config k=v ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from harness.api import Camera, View, ViewRef
    from harness.heads.template import head_template
    from harness.synth.corpus import Corpus

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_splatshot_consistency import psnr

    from harness_methods.splatshot.method import FRONTAL_VIEW, SplatShot

    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--weights", default="0,446,3000,11000")
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--samples", default="0")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    corpus = Corpus(args.corpus)
    model = head_template()
    extra = {k: json.loads(v) if v[:1] in "0123456789-[" else v for k, _, v in (c.partition("=") for c in args.config)}
    rows = []
    for index in (int(s) for s in args.samples.split(",")):
        sample = corpus.sample(index)
        alpha = sample["alpha"].astype(np.float32) / 255
        grey = 0.5
        images = sample["rgb"].astype(np.float32) / 255 + (1 - alpha[..., None]) * grey
        white = sample["rgb"].astype(np.float32) / 255 + (1 - alpha[..., None])
        tracking = {"model": model.name, **{k: np.asarray(sample[k]).tolist() for k in
                                             ("shape", "expression", "rotation", "translation", "jaw", "neck", "eyes")},
                    "scale": float(sample["scale"])}
        cams = [Camera(sample["world_to_camera"][v], sample["K"][v], 64, 64) for v in range(len(images))]
        source = View(ViewRef(f"tune{index}", "s", 0, "frontal"), images[FRONTAL_VIEW], cams[FRONTAL_VIEW],
                      alpha=alpha[FRONTAL_VIEW], tracking=tracking)
        for w in (float(x) for x in args.weights.split(",")):
            method = SplatShot()
            method.load("cpu", {"checkpoint": "demo", **extra, "guidance_weight": w})
            torch.manual_seed(1000 + index)
            t0 = time.process_time()
            avatar = method.reconstruct([source])
            seconds = time.process_time() - t0
            from harness.api import Target

            targets = [Target(ViewRef("t", "s", 0, str(v)), cams[v]) for v in range(len(cams)) if v != FRONTAL_VIEW]
            renders = method.render(avatar, targets)
            scores = []
            for target, rgba in zip(targets, renders, strict=True):
                v = int(target.ref.camera)
                pred = rgba[..., :3] * alpha[v][..., None] + (1 - alpha[v][..., None])
                scores.append(psnr(torch.as_tensor(pred), torch.as_tensor(white[v])))
            path = Path(f"/tmp/splatshot/tune_export_{index}_{w:g}.npz")
            method._export_to(path, source, avatar)
            from bench_splatshot_consistency import unit_scores

            loo = unit_scores(path, (3, 11), 60)
            rows.append({"sample": index, "guidance_weight": w, "masked_psnr": float(np.mean(scores)),
                         "loo_psnr": float(np.mean(loo)), "cpu_s": seconds,
                         "feedback_loss_last": avatar.history[-1].get("feedback_loss")})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
