"""Photometric losses: L1, SSIM (Gaussian window 11, sigma 1.5), optional LPIPS (VGG) where its weights exist."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=4)
def _window(channels: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of (B, C, H, W) images."""
    c = a.shape[1]
    w = _window(c).to(a.device, a.dtype)
    pad = w.shape[-1] // 2
    mu_a, mu_b = F.conv2d(a, w, padding=pad, groups=c), F.conv2d(b, w, padding=pad, groups=c)
    saa = F.conv2d(a * a, w, padding=pad, groups=c) - mu_a ** 2
    sbb = F.conv2d(b * b, w, padding=pad, groups=c) - mu_b ** 2
    sab = F.conv2d(a * b, w, padding=pad, groups=c) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean()


def photometric(pred: torch.Tensor, target: torch.Tensor, w_l1: float, w_ssim: float, w_lpips: float = 0.0,
                lpips_model: torch.nn.Module | None = None) -> torch.Tensor:
    """(B, C, H, W) images: w_l1 * L1 + w_ssim * (1 - SSIM) + w_lpips * LPIPS."""
    loss = w_l1 * (pred - target).abs().mean()
    if w_ssim:
        loss = loss + w_ssim * (1 - ssim(pred, target))
    if w_lpips and lpips_model is not None:
        loss = loss + w_lpips * lpips_model(pred, target, normalize=True).mean()
    return loss


def lpips_loss_model(device: str) -> torch.nn.Module:
    """The LPIPS-VGG network from the harness weights cache, as a differentiable loss (weights frozen).

    Raises ``MissingWeightsError`` (from ``harness.weights.require``) when its weights are not present.
    """
    from harness.scoring.lpips_metric import LPIPSVGG

    return LPIPSVGG(device).model
