"""Registration of OMEGA-Avatar and its trainer: data only, nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec, TrainerSpec
from harness.plugins import hookimpl
from harness_methods.omega.config import METHOD_DEFAULTS, TRAIN_DEFAULTS


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="omega",
        display_name="OMEGA-Avatar",
        target="harness_methods.omega.method:Omega",
        description="One photo to a 360-degree animatable Gaussian head, feed-forward: multi-view generation at "
                    "SOAP's six azimuths (stage A), semantic-aware fitting of the head model with per-vertex "
                    "offsets (B), vertex and UV Gaussian branches with visibility-aware fusion of splatted image "
                    "features (C), driving, rendering and an image-space refiner (D). Our reimplementation (no public "
                    "code or weights). The shipped checkpoint is a synthetic-demo stand-in: small networks trained "
                    "for minutes on procedural template heads, not the paper's model; it runs by default only on "
                    "the demo datasets.",
        version="1",
        paper="OMEGA-Avatar (one-shot 360-degree animatable Gaussian head; no public code or weights)",
        paper_url="",  # not known offline
        licence="Apache-2.0",
        status="reimplementation",
        capabilities=Capabilities(inputs="one", animatable=True, full_head=True, needs_tracking=False),
        default_config=dict(METHOD_DEFAULTS),
        training_data=(),
    ))


@hookimpl
def register_trainers(register: Callable[[TrainerSpec], None]) -> None:
    register(TrainerSpec(
        name="omega",
        target="harness_methods.omega.trainer:OmegaTrainer",
        description="Stage A on the corpus's SOAP views; stages C/D by self-reenactment with the progressive "
                    "side-view loss decay. Data: a corpus made with camera_set=soap+rig, or DATASET:SPLIT.",
        data=("corpus", "nersemble-v2:train", "ava256:train"),
        default_config=dict(TRAIN_DEFAULTS),
    ))
