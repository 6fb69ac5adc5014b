"""Pixel metrics, batched: every function takes (B, 3, H, W) tensors in [0, 1] and returns (B,) values.

Conventions (shown in every report):
- PSNR: data_range 1.0, per image, MSE accumulated in float64 and floored at 1e-10, so an exact match scores
  100 dB (the cap) instead of infinity: every pair keeps a finite value and the mean is never biased by dropping
  exact matches. 8-bit images that differ at all have an MSE of at least 1/255^2/(3 H W), far above the floor
  for any image under 10^5 x 10^5 pixels, so the cap touches exact matches only.
- Every per-image value is reduced from that image alone, in a fixed order (the image made contiguous, summed by
  numpy in float64 on the CPU), so it is bitwise the same whatever the batch it came in, its memory layout or the
  thread count; PSNR is also bitwise the same scored on CPU or GPU (the squared differences of float32 values are
  exact in float64, only the sum rounds).
- SSIM: computed in float64, per image, RGB (mean over channels), Gaussian window 11 taps with sigma 1.5, K1 0.01,
  K2 0.03, data_range 1.0, population (not sample) covariance, averaged over the valid region (no padding). This equals
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1.0)``. torchmetrics' SSIM differs: it reflect-pads and averages over the padded border too
  (about 0.01 higher or lower on small images), so it is not used here. On CPU the Gaussian blur is scipy.ndimage's
  separable correlation (as scikit-image's), on CUDA torch's convolutions; the two agree to rounding (~1e-15).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
PSNR_MSE_FLOOR = 1e-10  # PSNR of an exact match: 10 log10(1 / 1e-10) = 100 dB
PSNR_CAP_DB = 100.0


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}")


def _image_mean(values: torch.Tensor) -> float:
    """The float64 mean of one image's values, in an order fixed by the image alone."""
    array = values.detach().contiguous().double().cpu().numpy()
    return float(np.add.reduce(array.ravel(), dtype=np.float64) / array.size)


def _per_image(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, device=like.device)


def psnr(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    _check(pred, gt)
    mse = np.array([_image_mean((p.double() - g.double()).square()) for p, g in zip(pred, gt, strict=True)])
    mse = np.maximum(mse, PSNR_MSE_FLOOR * data_range**2)
    return _per_image((10.0 * np.log10(data_range**2 / mse)).tolist(), pred)


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
    if pred.device.type == "cpu":  # scipy's separable correlation: 2.4x faster than torch's float64 conv2d
        return _per_image([_ssim_numpy(_canonical(p)[0].numpy(), _canonical(g)[0].numpy(), data_range)
                           for p, g in zip(pred, gt, strict=True)], pred)
    return _per_image([_ssim_one(_canonical(p), _canonical(g), data_range)
                       for p, g in zip(pred, gt, strict=True)], pred)


def _canonical(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (1, C, H, W) float64 in one fixed memory layout (contiguous NCHW), whatever layout the batch
    had. float64 throughout, like scikit-image: the moments' differences (E[x^2] - E[x]^2) cancel badly in float32."""
    return image[None].double().contiguous()


def _ssim_numpy(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """SSIM of one (C, H, W) float64 pair on the CPU: the blur is scipy.ndimage's separable correlation (the filter
    scikit-image uses), cut to the valid region, so the value is the same whatever thread count torch has."""
    from scipy.ndimage import correlate1d

    taps = _gaussian_taps(torch.device("cpu"), torch.float64).numpy()
    r = SSIM_WINDOW // 2
    stacked = np.concatenate([x, y, x * x, y * y, x * y], axis=0)
    blurred = correlate1d(correlate1d(stacked, taps, axis=-1, mode="constant")[..., r:-r], taps, axis=-2,
                          mode="constant")[..., r:-r, :]
    mu_x, mu_y, xx, yy, xy = np.split(blurred, 5, axis=0)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    numerator = (2 * mu_xy + c1) * (2 * (xy - mu_xy) + c2)
    denominator = (mu_xx + mu_yy + c1) * ((xx - mu_xx) + (yy - mu_yy) + c2)
    ratio = numerator / denominator
    return float(np.add.reduce(ratio.ravel(), dtype=np.float64) / ratio.size)


def _ssim_one(x: torch.Tensor, y: torch.Tensor, data_range: float) -> float:
    """SSIM of one (1, C, H, W) pair, computed on that pair alone (the convolution never sees a batch)."""
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
    return _image_mean(numerator / denominator)


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
