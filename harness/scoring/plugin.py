"""Built-in metrics, registered through the same hook a third-party metric plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from harness.api.specs import MetricSpec
from harness.plugins.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec(
        name="psnr", display_name="PSNR", target="harness.scoring.metrics:PSNR", direction="higher",
        value_range=(0.0, float("inf")),
        settings="per image, data_range 1.0, MSE in float64 over all pixels and RGB channels (dB)",
    ))
    register(MetricSpec(
        name="ssim", display_name="SSIM", target="harness.scoring.metrics:SSIM", direction="higher",
        value_range=(-1.0, 1.0),
        settings="per image, RGB mean, Gaussian window 11 / sigma 1.5, K1 0.01, K2 0.03, data_range 1.0, "
                 "valid region (no padding)",
    ))
