"""Pixel metrics, batched: every function takes (B, 3, H, W) tensors in [0, 1] and returns (B,) values.

Conventions (shown in every report):
- PSNR: data_range 1.0, per image, MSE accumulated in float64.
- SSIM: per image, RGB (mean over channels), Gaussian window 11 taps with sigma 1.5, K1 0.01, K2 0.03,
  data_range 1.0, population (not sample) covariance, averaged over the valid region (no padding). This equals
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1.0)``. torchmetrics' SSIM differs: it reflect-pads and averages over the padded border too
  (about 0.01 higher or lower on small images), so it is not used here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}")


def psnr(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    _check(pred, gt)
    mse = (pred.double() - gt.double()).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_taps(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    taps = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return (taps / taps.sum()).to(device=device, dtype=dtype)


def _blur_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur keeping only the valid region (no padding)."""
    channels = x.shape[1]
    kh = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    kv = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(x, kh, groups=channels), kv, groups=channels)


def ssim(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    _check(pred, gt)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(pred.shape[-2:])}")
    x, y = pred.float(), gt.float()
    taps = _gaussian_taps(x.device, x.dtype)
    channels = x.shape[1]
    # One grouped blur over the five moments at once.
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    blurred = _blur_valid(stacked, taps)
    mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_x, sigma_y, sigma_xy = xx - mu_xx, yy - mu_yy, xy - mu_xy
    numerator = (2 * mu_xy + c1) * (2 * sigma_xy + c2)
    denominator = (mu_xx + mu_yy + c1) * (sigma_x + sigma_y + c2)
    return (numerator / denominator).double().flatten(1).mean(dim=1)


class PSNR:
    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return psnr(pred, gt)


class SSIM:
    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return ssim(pred, gt)
