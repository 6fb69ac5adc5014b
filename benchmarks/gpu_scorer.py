"""The scorer's GPU numbers: pairs/s per metric and for the five-metric suite in fp32, tf32 and bf16, cold and warm
ground-truth cache, and the largest difference of each reduced precision from fp32, checked against each metric's
documented tolerance. Run it once on a machine with a CUDA GPU:

    python benchmarks/gpu_scorer.py [--pairs 256] [--size 512] [--precisions fp32,tf32,bf16] [--naive]

It uses the real metric weights when ``harness weights status`` shows them all verified (``harness weights fetch
lpips-alex insightface-buffalo_l dreamsim-ensemble dino-vitb16 dino-hub-repo``) and otherwise random stand-ins in
the real layouts, labelled as such on every line: stand-in timings are representative for LPIPS and DreamSim (real
architectures), not for CSIM (tiny ONNX graphs), and stand-in differences say nothing about the real networks.
CSIM runs in onnxruntime: on the GPU only with ``onnxruntime-gpu`` installed (the providers are printed).
The measurement itself is ``benchmarks/bench_scorer.py`` (the scorer's compute path, batch 16 on CUDA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TARGET_SUITE_PAIRS_PER_S = 1000.0  # five-metric suite, reduced precision, one H100-class GPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precisions", default="fp32,tf32,bf16")
    parser.add_argument("--metrics", default="psnr,ssim,lpips,csim,dreamsim")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--naive", action="store_true", help="also time the naive loop (slow: CPU scikit-image)")
    args = parser.parse_args()
    import torch

    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        print(f"gpu_scorer: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is "
              f"{torch.cuda.is_available()}, device {args.device!r}); run it on a machine with an NVIDIA GPU",
              file=sys.stderr)
        return 2
    import onnxruntime

    print(f"device {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bf16 supported: {torch.cuda.is_bf16_supported()}, onnxruntime providers: "
          f"{', '.join(onnxruntime.get_available_providers())}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_scorer

    argv = ["--pairs", str(args.pairs), "--size", str(args.size), "--metrics", args.metrics, "--device", args.device,
            "--precisions", args.precisions, "--threads", "4"] + ([] if args.naive else ["--no-naive"])
    results = bench_scorer.main(argv)

    from harness.api.specs import load_target
    from harness.plugins.registry import build_registry

    registry = build_registry()
    failed = False
    print("tolerance check (|reduced - fp32| against each metric's documented precision_tolerance)")
    for (mode, name), diff in sorted(results.get("differences", {}).items()):
        tolerance = getattr(load_target(registry.metric(name).target), "precision_tolerance", None)
        verdict = ("fp32 in every mode" if tolerance is None else
                   "PASS" if diff <= tolerance else "FAIL")
        failed |= verdict == "FAIL"
        print(f"{mode:>5} {name:>10}: {diff:.3g}  (tolerance {tolerance if tolerance is not None else '-'}) {verdict}")
    for timing in results["timings"]:
        if timing.label.startswith("harness suite"):
            rate = timing.pairs / timing.wall
            print(f"{timing.label}: {rate:.0f} pairs/s, target {TARGET_SUITE_PAIRS_PER_S:.0f}: "
                  f"{'met' if rate >= TARGET_SUITE_PAIRS_PER_S else 'not met'}")
    print(results["weights"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
