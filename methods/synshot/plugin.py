"""Registration of SynShot (method and trainer): data only, nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec, TrainerSpec
from harness.plugins import hookimpl
from harness_methods.synshot.config import ARCHITECTURE, INVERSION, TRAINING

DESCRIPTION = (
    "Our reimplementation of SynShot (no public code or weights): a UV-space VQ prior of 3D Gaussian heads (E_id, "
    "E_expr with codebook quantisation, D_feat/D_id/D_expr, per-part colour and Gaussian regressors) inverted by "
    "pivotal tuning from a few tracked images. The shipped checkpoint is a synthetic-demo stand-in: a 64x64-UV "
    "prior trained for minutes on procedural heads of the harness's synthetic corpus, not the paper's model; "
    "numbers made with it describe the demo only.")


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="synshot",
        display_name="SynShot",
        target="harness_methods.synshot.method:SynShot",
        description=DESCRIPTION,
        version="1",
        paper="Zielonka et al., Synthetic Prior for Few-Shot Drivable Head Avatar Inversion (CVPR 2025)",
        paper_url="https://arxiv.org/abs/2501.06903",
        licence="Apache-2.0",
        status="reimplementation",
        capabilities=Capabilities(inputs="few", animatable=True, full_head=True, needs_tracking=True),
        default_config={**INVERSION, "head_model": ARCHITECTURE["head_model"]},
        training_data=("synthetic corpus (harness synth)",),
    ))


@hookimpl
def register_trainers(register: Callable[[TrainerSpec], None]) -> None:
    register(TrainerSpec(
        name="synshot",
        target="harness_methods.synshot.trainer:SynShotTrainer",
        description="The SynShot prior on a synthetic corpus (harness synth): UV maps + multi-view renders.",
        data=("corpus",),
        default_config={**ARCHITECTURE, **TRAINING},
    ))
