"""The demo few-shot sweep: 12 held-out template heads (their own identity stream, see ``harness.synth.streams``),
8 input frames of the demo's motion and 2 frames at novel expressions none of the inputs shows, from the 16-camera
rig, written in the NeRSemble v1 layout with tracking, like the demo. Generated on first use (about 4 minutes on 2
cores); protocol ``demo-sweep`` takes k = 1, 3, 8 inputs and scores the novel expressions on all 16 cameras, with
enough subjects that paired comparisons have power.
"""

from __future__ import annotations

import numpy as np

from harness.data.demo import DemoDataset, DemoSpec
from harness.heads.model import HeadModel, HeadParams
from harness.heads.template import EXPRESSION_NAMES, head_template
from harness.synth.heads import Identity, frame_params
from harness.synth.streams import SWEEP_SUBJECTS, SWEEP_TAG, sweep_identity

SWEEP_VERSION = 1
INPUT_FRAMES = 8
NOVEL_FRAMES = 2


def _identity(seed: int, index: int) -> Identity:
    return sweep_identity(head_template(), index)


def _params(model: HeadModel, identity: Identity, frame: int) -> HeadParams:
    if frame < INPUT_FRAMES:
        return frame_params(model, identity, frame, INPUT_FRAMES)
    # A novel expression: every component drawn outside the inputs' range of motion (which only smiles, raises
    # the brows and parts the lips), and a head turn the inputs do not make.
    rng = np.random.default_rng([SWEEP_TAG, frame, 99])
    expression = np.clip(rng.normal(0, 0.6, model.num_expression), -1, 1)
    for name in ("smile", "brow_raise", "lips_part"):
        expression[EXPRESSION_NAMES.index(name)] = 0.0
    turn = np.radians([6.0, -18.0 if frame % 2 else 18.0, 4.0])
    return model.params(shape=identity.shape, expression=expression, rotation=turn, jaw=[0.25, 0.0, 0.0])


SWEEP = DemoSpec("demo-sweep", SWEEP_VERSION, SWEEP_SUBJECTS, INPUT_FRAMES + NOVEL_FRAMES, _identity, _params,
                 num_gaussians=8000, marker="DEMO_SWEEP.json")


class DemoSweep(DemoDataset):
    spec = SWEEP
