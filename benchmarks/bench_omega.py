"""OMEGA-Avatar feed-forward time on CPU (one torch thread): reconstruct (stages A-C) and render (stage D) per
target, and the peak RSS, on a demo unit (frontal source, the 8 oblique targets of the ablation protocol).

    HARNESS_DEMO_ROOT=... .venv/bin/python benchmarks/bench_omega.py [--checkpoint PATH] [--repeats 2]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

OBLIQUE = ("222200042", "222200044", "222200046", "222200040", "222200049", "222200039", "222200045", "221501007")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--config", action="append", default=[], help="k=v (bools as true/false)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from harness.api import Target
    from harness.api.types import ViewRef
    from harness.data.demo import DemoDataset
    from harness.runner import frame_tracking
    from harness_methods.omega.method import Omega

    config: dict = {"checkpoint": args.checkpoint}
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = {"true": True, "false": False}.get(value.lower(), value)
    import os

    root = os.environ.get("HARNESS_DEMO_ROOT")
    adapter = DemoDataset.open(Path(root) if root else None)
    method = Omega()
    method.load("cpu", config)
    source = adapter.load_view(ViewRef("901", "EXP-1-head", 0, "222200037"))
    source.tracking = frame_tracking(adapter, source.ref)
    refs = [ViewRef("901", "EXP-1-head", 0, c) for c in OBLIQUE]
    targets = [Target(r, adapter.camera(r.subject, r.sequence, r.frame, r.camera), frame_tracking(adapter, r))
               for r in refs]
    for _ in range(args.repeats):
        t0 = time.process_time()
        w0 = time.perf_counter()
        avatar = method.reconstruct([source])
        t1, w1 = time.process_time(), time.perf_counter()
        method.render(avatar, targets)
        t2, w2 = time.process_time(), time.perf_counter()
        print(f"reconstruct {t1 - t0:.2f} CPU-s ({w1 - w0:.2f} s wall); render {(t2 - t1) / len(targets):.3f} CPU-s "
              f"per target at {targets[0].camera.width}x{targets[0].camera.height} ({(w2 - w1) / len(targets):.3f} s "
              f"wall); {len(avatar.head.face_ids)} Gaussians; fit losses "
              f"{ {k: round(v, 4) for k, v in avatar.fit_losses.items()} }")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
