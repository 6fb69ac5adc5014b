"""Methods used by the tests, registered through an entry point like any third-party plugin."""

from __future__ import annotations

import os
import time

import numpy as np

from harness.api import Capabilities, MethodSpec
from harness.plugins import hookimpl
from harness_methods.nearest_input.method import NearestInput


class SlowNearest(NearestInput):
    def reconstruct(self, sources):
        time.sleep(float(os.environ.get("HARNESS_TEST_SLEEP", "0")))
        return super().reconstruct(sources)


class NanOnFirstSubject(NearestInput):
    def render(self, avatar, targets):
        images = super().render(avatar, targets)
        if targets[0].ref.subject == "901":
            images[0] = images[0].copy()
            images[0][0, 0, 0] = np.nan
        return images


class OneSourceOnly(NearestInput):
    def reconstruct(self, sources):
        assert len(sources) == 1, "the runner gave a one-shot method several sources"
        return super().reconstruct(sources)


class CheckpointedNearest(NearestInput):
    """Nearest-input behind a checkpoint chosen like a learned method's (``HARNESS_TEST_DEMO_CHECKPOINT``)."""

    def load(self, device, config):
        from pathlib import Path

        from harness.checkpoints import select_checkpoint

        super().load(device, config)
        self.checkpoint = select_checkpoint(
            "checkpointed", config.get("checkpoint", "auto"), Path(os.environ["HARNESS_TEST_DEMO_CHECKPOINT"]),
            getattr(self, "run_context", None), "open-head-template", "abc123", "harness train checkpointed ...")


FLOOR = Capabilities(inputs="few", floor_baseline=True)


@hookimpl
def register_methods(register):
    register(MethodSpec(name="slow-nearest", target="harness_test_methods:SlowNearest", status="experimental",
                        capabilities=FLOOR))
    register(MethodSpec(name="nan-render", target="harness_test_methods:NanOnFirstSubject", capabilities=FLOOR))
    register(MethodSpec(name="checkpointed", target="harness_test_methods:CheckpointedNearest", capabilities=FLOOR,
                        default_config={"checkpoint": "auto"}))
    register(MethodSpec(name="one-shot-static", target="harness_test_methods:OneSourceOnly",
                        capabilities=Capabilities(inputs="one", animatable=False)))
