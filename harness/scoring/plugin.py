"""Built-in metrics and their weight sources, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from harness.api.specs import MetricSpec, WeightsSpec
from harness.plugins.hookspecs import hookimpl
from harness.scoring import sources


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec(
        name="psnr", display_name="PSNR", target="harness.scoring.metrics:PSNR", direction="higher",
        value_range=(0.0, 100.0),
        settings="per image, data_range 1.0, MSE in float64 over all pixels and RGB channels, floored at 1e-10 "
                 "(an exact match scores the cap, 100 dB) (dB)",
    ))
    register(MetricSpec(
        name="ssim", display_name="SSIM", target="harness.scoring.metrics:SSIM", direction="higher",
        value_range=(-1.0, 1.0),
        settings="per image, float64, RGB mean, Gaussian window 11 / sigma 1.5, K1 0.01, K2 0.03, data_range 1.0, "
                 "valid region (no padding)",
    ))
    register(MetricSpec(
        name="lpips", display_name="LPIPS", target="harness.scoring.lpips_metric:LPIPSAlex", direction="lower",
        value_range=(0.0, float("inf")),
        settings="lpips package, version 0.1 linear heads, AlexNet backbone (torchvision IMAGENET1K_V1), "
                 "inputs [0,1] mapped to [-1,1], spatial mean, full image",
        weights=(sources.LPIPS_ALEX.name,),
    ))
    register(MetricSpec(
        name="lpips_vgg", display_name="LPIPS-VGG", target="harness.scoring.lpips_metric:LPIPSVGG",
        direction="lower", value_range=(0.0, float("inf")),
        settings="lpips package, version 0.1 linear heads, VGG-16 backbone (torchvision IMAGENET1K_V1), "
                 "inputs [0,1] mapped to [-1,1], spatial mean, full image",
        weights=(sources.LPIPS_VGG.name,), default=False,
    ))
    csim_settings = ("insightface buffalo_l: SCRFD det_10g keypoints (det size 640, threshold 0.5, largest central "
                     "face), similarity warp to the 112x112 ArcFace template, ArcFace w600k_r50 embedding "
                     "((x-127.5)/127.5, RGB), cosine; ")
    register(MetricSpec(
        name="csim", display_name="CSIM", target="harness.scoring.identity:CSIM", direction="higher",
        value_range=(-1.0, 1.0),
        settings=csim_settings + "keypoints from the ground truth, the same warp for both images; "
                                 "pairs with no face detected are counted and excluded",
        weights=(sources.ARCFACE.name,),
    ))
    register(MetricSpec(
        name="csim_detect_both", display_name="CSIM (detect both)", target="harness.scoring.identity:CSIMDetectBoth",
        direction="higher", value_range=(-1.0, 1.0),
        settings=csim_settings + "keypoints detected on each image; pairs with no face detected are counted and "
                                 "excluded",
        weights=(sources.ARCFACE.name,), default=False,
    ))
    register(MetricSpec(
        name="dreamsim", display_name="DreamSim", target="harness.scoring.dreamsim_metric:DreamSim",
        direction="lower", value_range=(0.0, 2.0),
        settings="dreamsim 0.2.1 ensemble (DINO + CLIP + OpenCLIP ViT-B/16, LoRA), square head crop from the "
                 "ground-truth alpha (1.1 x bbox, white outside the frame; centred square without alpha), same crop "
                 "for both images, bicubic antialiased resize to 224x224, distance 1 - cosine",
        weights=(sources.DREAMSIM_ENSEMBLE.name, sources.DINO_BACKBONE.name, sources.DINO_HUB_REPO.name),
    ))


@hookimpl
def register_weights(register: Callable[[WeightsSpec], None]) -> None:
    for spec in sources.ALL:
        register(spec)
