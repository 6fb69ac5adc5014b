"""Registration of SplatShot: data only, nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from harness.api import Capabilities, MethodSpec, TrainerSpec, WeightsSpec
from harness.plugins import hookimpl
from harness_methods.splatshot.defaults import DEFAULTS, TRAINER_DEFAULTS


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    from harness_methods.splatshot.sources import SOURCES

    register(MethodSpec(
        name="splatshot",
        display_name="SplatShot",
        target="harness_methods.splatshot.method:SplatShot",
        description="One photo -> static 3DGS head, training-free: DDIM img2img of all target views at once from "
                    "renders of a base head, identity from the photo through IP-Adapter-Plus, with a 3DGS refit to "
                    "the denoised views and its render fed back into the noise estimate at every step. Our own "
                    "reimplementation of the paper. The shipped checkpoint is a SYNTHETIC-DEMO STAND-IN for Stable "
                    "Diffusion 1.5: a ~1.3M-parameter denoiser in a pixel-unshuffle latent space trained on "
                    "procedural template heads (harness train splatshot); full-size SD-1.5 + IP-Adapter-Plus-face "
                    "weights are used with --config pretrained=DIR.",
        version="1",
        paper="SplatShot: one-shot 3D Gaussian head avatars from a single in-the-wild photo by consistent "
              "multi-view denoising with 3DGS feedback",
        paper_url="https://github.com/hliang2/SplatShot",
        licence="Apache-2.0",
        status="reimplementation",
        capabilities=Capabilities(inputs="one", animatable=False, full_head=True, needs_tracking=False),
        default_config=dict(DEFAULTS),
        weights=tuple(s.name for s in SOURCES),
    ))


@hookimpl
def register_trainers(register: Callable[[TrainerSpec], None]) -> None:

    register(TrainerSpec(
        name="splatshot",
        target="harness_methods.splatshot.trainer:SplatShotTrainer",
        description="The synthetic-demo denoiser prior: x0-prediction (converted to eps with the scheduler's "
                    "alphas_cumprod) on corpus renders (rig cameras, 64 px) "
                    "conditioned on a reference view of the same identity through IP-Adapter-Plus, with condition "
                    "dropout for classifier-free guidance.",
        data=("corpus",),
        default_config=dict(TRAINER_DEFAULTS),
    ))


@hookimpl
def register_weights(register: Callable[[WeightsSpec], None]) -> None:
    from harness_methods.splatshot.sources import SOURCES

    for spec in SOURCES:
        register(spec)
