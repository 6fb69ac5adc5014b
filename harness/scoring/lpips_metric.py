"""LPIPS through the ``lpips`` package (version 0.1 linear heads), AlexNet headline, VGG selectable.

Inputs in [0, 1] are mapped to [-1, 1] by the package itself (``normalize=True``). The backbone is read from the
harness weights cache through a guarded torch.hub directory, never downloaded at scoring time.
"""

from __future__ import annotations

import torch

from harness.api.specs import WeightsSpec
from harness.scoring.sources import LPIPS_ALEX, LPIPS_VGG, TORCH_HUB, loading
from harness.scoring.torchhub import torch_hub_dir
from harness.weights import require

# Largest |bf16 or tf32 value - fp32 value| allowed (harness.scoring.precision): bf16 keeps 8 significant bits
# (relative rounding 2^-9 per operation), so values of order 1 move by a few 1e-3 at most; the stand-in networks
# of tests/test_metric_precision.py stay within it, benchmarks/gpu_scorer.py checks the real ones.
PRECISION_TOLERANCE = 5e-3


class _LPIPS:
    net: str = "alex"
    weights: WeightsSpec = LPIPS_ALEX
    precision_tolerance = PRECISION_TOLERANCE

    def __init__(self, device: str = "cpu") -> None:
        root = require(self.weights, f"LPIPS-{self.net}")
        import lpips

        with loading(f"LPIPS-{self.net}", [self.weights]), torch_hub_dir(root / TORCH_HUB):
            model = lpips.LPIPS(net=self.net, version="0.1", verbose=False)
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return self.model(pred.float(), gt.float(), normalize=True).flatten()


class LPIPSAlex(_LPIPS):
    net = "alex"
    weights = LPIPS_ALEX


class LPIPSVGG(_LPIPS):
    net = "vgg"
    weights = LPIPS_VGG
