"""Corpus generation throughput and the training loop's own overhead per step (run by hand, not a test).

    python benchmarks/bench_corpus_train.py [--identities 4] [--workers 2]

Throughput: images rendered per second by ``generate_corpus`` (all views of all samples, UV ground truth
included) at 64x64 and 128x128 on the rig camera set. Loop overhead: the wall time per step outside
``train_step`` (logging, checkpointing every 50 steps, plotting), measured with a trainer whose step does nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from harness.api.specs import TrainerSpec
from harness.checkpoints import Checkpoint
from harness.synth.corpus import CorpusConfig, generate_corpus
from harness.training.loop import TrainRequest, train


class IdleTrainer:
    """Does no work per step: what remains is the loop's own cost."""

    def setup(self, context) -> None:
        self.weight = torch.zeros(1000)

    def train_step(self, step: int) -> dict[str, float]:
        return {"loss": 1.0 / (step + 1)}

    def state_dict(self) -> dict:
        return {"weight": self.weight}

    def load_state_dict(self, state: dict) -> None:
        self.weight = state["weight"]

    def export(self) -> Checkpoint:
        return Checkpoint("idle", {}, {"weight": self.weight})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = None
        for resolution in (64, 128):
            config = CorpusConfig(identities=args.identities, expressions_per_identity=2, resolution=resolution,
                                  uv_resolution=64, camera_set="rig", num_gaussians=6000, shard_size=2)
            root = Path(tmp) / f"corpus{resolution}"
            t0 = time.perf_counter()
            generate_corpus(root, config, workers=args.workers)
            seconds = time.perf_counter() - t0
            images = config.count * 16
            print(f"corpus {resolution}x{resolution}: {images} images in {seconds:.1f} s = {images / seconds:.1f} "
                  f"images/s ({args.workers} processes, 6000 Gaussians, UV 64)")
            corpus = corpus or root
        sys.modules.setdefault("bench_corpus_train", sys.modules[__name__])
        spec = TrainerSpec(name="idle", target="bench_corpus_train:IdleTrainer")
        result = train(TrainRequest("idle", corpus, runs_dir=Path(tmp) / "runs", steps=args.steps,
                                    checkpoint_every=50, command="bench"), spec)
        print(f"train loop overhead: {1000 * result.loop_overhead_s:.3f} ms per step "
              f"({args.steps} steps, a state and a loss plot every 50)")


if __name__ == "__main__":
    main()
