"""SynShot inversion on CPU: time (process CPU seconds and wall) and peak memory per unit of a demo dataset.

    HARNESS_THREADS=1 .venv/bin/python benchmarks/bench_synshot.py [--dataset demo-sweep] [--k 1 3 8]
        [--checkpoint PATH] [--config key=value ...]
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from harness.api import RunContext
    from harness.data.resolve import open_reader
    from harness.plugins.registry import get_registry
    from harness.runner import with_tracking
    from harness_methods.synshot.method import SynShot

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="demo-sweep")
    parser.add_argument("--subject", default="911")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 8])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--config", nargs="*", default=[])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    registry = get_registry()
    reader = open_reader(registry.dataset(args.dataset), None)
    method = SynShot()
    method.run_context = RunContext(dataset=args.dataset, protocol="bench", synthetic_subjects=True)
    config = {"checkpoint": args.checkpoint}
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = type(method_default(key))(value) if method_default(key) is not None else value
    method.load("cpu", config)
    from harness.api import ViewRef

    for k in args.k:
        refs = [ViewRef(args.subject, "EXP-1-head", f, "222200037") for f in range(k)]
        views = [with_tracking(reader.load_view(r), reader) for r in refs]
        c0, t0 = time.process_time(), time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            avatar = profiler.runcall(method.reconstruct, views)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        else:
            avatar = method.reconstruct(views)
        c1, t1 = time.process_time(), time.perf_counter()
        print(f"k={k}: reconstruct {c1 - c0:.1f} CPU-s ({t1 - t0:.1f} s wall); {avatar.history}; peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def method_default(key: str):
    from harness_methods.synshot.method import METHOD_DEFAULTS

    return METHOD_DEFAULTS.get(key)


if __name__ == "__main__":
    main()
