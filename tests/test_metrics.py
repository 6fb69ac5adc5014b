from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from harness.scoring.metrics import psnr, ssim


def _smooth_images(seed: int, n: int = 3, size: tuple[int, int] = (48, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size[0] // 4, size[1] // 4, generator=gen)
    gt = torch.nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)
    pred = (gt + 0.08 * torch.randn(gt.shape, generator=gen)).clamp(0, 1)
    return pred, gt


def test_psnr_of_constant_images_is_known() -> None:
    pred = torch.full((1, 3, 16, 16), 0.5)
    gt = torch.full((1, 3, 16, 16), 0.25)
    # MSE = 0.0625 -> PSNR = 10 log10(1 / 0.0625) = 12.0412 dB
    assert psnr(pred, gt).item() == pytest.approx(10 * math.log10(16), abs=1e-9)


def test_an_exact_match_scores_the_psnr_cap_and_unit_ssim() -> None:
    _, gt = _smooth_images(0)
    assert torch.equal(psnr(gt, gt), torch.full((3,), 100.0, dtype=torch.float64))
    assert torch.allclose(ssim(gt, gt), torch.ones(3, dtype=torch.float64), atol=1e-12)
    # The smallest difference an 8-bit image can have stays far below the cap.
    nudged = gt.clone()
    nudged[0, 0, 0, 0] += 1 / 255
    assert 60 < psnr(nudged[:1], gt[:1]).item() < 100


@pytest.mark.parametrize("seed", [1, 2])
def test_psnr_and_ssim_match_scikit_image(seed: int) -> None:
    pred, gt = _smooth_images(seed)
    ours_psnr, ours_ssim = psnr(pred, gt), ssim(pred, gt)
    for i in range(pred.shape[0]):
        p = pred[i].permute(1, 2, 0).double().numpy()
        g = gt[i].permute(1, 2, 0).double().numpy()
        ref_psnr = peak_signal_noise_ratio(g, p, data_range=1.0)
        ref_ssim = structural_similarity(g, p, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        assert ours_psnr[i].item() == pytest.approx(ref_psnr, abs=1e-9)
        assert ours_ssim[i].item() == pytest.approx(ref_ssim, abs=1e-9)  # float64 like scikit-image


def test_values_do_not_depend_on_batch_composition() -> None:
    pred, gt = _smooth_images(4, n=6)
    batched = ssim(pred, gt)
    single = torch.cat([ssim(pred[i:i + 1], gt[i:i + 1]) for i in range(6)])
    assert torch.equal(batched, single)
    assert torch.equal(psnr(pred, gt), torch.cat([psnr(pred[i:i + 1], gt[i:i + 1]) for i in range(6)]))


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_worse_prediction_scores_lower() -> None:
    _, gt = _smooth_images(5)
    rng = np.random.default_rng(0)
    small = (gt + torch.from_numpy(rng.normal(0, 0.02, gt.shape)).float()).clamp(0, 1)
    large = (gt + torch.from_numpy(rng.normal(0, 0.2, gt.shape)).float()).clamp(0, 1)
    assert (psnr(small, gt) > psnr(large, gt)).all()
    assert (ssim(small, gt) > ssim(large, gt)).all()
