"""The pure-PyTorch rasteriser: analytic placement and footprint, compositing order, background, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from harness.render.cpu import SH_C0, rasterize

K = torch.tensor([[[100.0, 0.0, 32.0], [0.0, 100.0, 32.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
IDENTITY = torch.eye(4, dtype=torch.float64)[None]


def _scene(means, scales, opacities, colors):
    n = len(means)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n, dtype=torch.float64)
    return t(means), quats, t(scales), t(opacities), t(colors)


def test_one_gaussian_lands_on_the_predicted_pixel_with_the_predicted_footprint() -> None:
    # Camera-space (0.11, -0.05, 2): u = 100 * 0.11 / 2 + 32 = 37.5, v = 100 * -0.05 / 2 + 32 = 29.5, the centre of
    # pixel (37, 29). Isotropic scale 0.02: image-space variance (100 * 0.02 / 2)^2 + 0.3 (low-pass) = 1.3 px^2.
    means, quats, scales, opac, colors = _scene([[0.11, -0.05, 2.0]], [[0.02] * 3], [0.8], [[1.0, 0.5, 0.25]])
    rgb, alpha, depth = rasterize(means, quats, scales, opac, colors, IDENTITY, K, 64, 64)
    a = alpha[0, ..., 0]
    assert a[29, 37].item() == pytest.approx(0.8, abs=1e-12)
    assert a[29, 37] == a.max()
    ys, xs = torch.meshgrid(torch.arange(64.0, dtype=torch.float64) + 0.5,
                            torch.arange(64.0, dtype=torch.float64) + 0.5, indexing="ij")
    w = a / a.sum()
    cx, cy = (w * xs).sum().item(), (w * ys).sum().item()
    assert (cx, cy) == pytest.approx((37.5, 29.5), abs=1e-6)
    assert (w * (xs - cx) ** 2).sum().item() == pytest.approx(1.3, rel=2e-2)
    # One pixel to the right: opacity * exp(-0.5 * conic_xx), from the exact projected covariance
    # s^2 J J^T + 0.3 I with J = [[f/z, 0, -f x/z^2], [0, f/z, -f y/z^2]] (the off-axis terms are small but real).
    f, x, y, z, s2 = 100.0, 0.11, -0.05, 2.0, 0.02**2
    var_x = s2 * (f / z) ** 2 * (1 + (x / z) ** 2) + 0.3
    var_y = s2 * (f / z) ** 2 * (1 + (y / z) ** 2) + 0.3
    cov_xy = s2 * f * f * x * y / z**4
    conic_xx = var_y / (var_x * var_y - cov_xy**2)
    assert a[29, 38].item() == pytest.approx(0.8 * math.exp(-0.5 * conic_xx), rel=1e-9)
    assert torch.allclose(rgb[0, 29, 37], torch.tensor([0.8, 0.4, 0.2], dtype=torch.float64))
    assert depth[0, 29, 37, 0].item() == pytest.approx(0.8 * 2.0)


def test_compositing_is_front_to_back_by_depth_whatever_the_input_order() -> None:
    red_front = ([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for order in ([0, 1], [1, 0]):
        pos = [red_front[0][i] for i in order]
        col = [red_front[1][i] for i in order]
        scales = [[0.05] * 3, [0.1] * 3]
        means, quats, sc, opac, colors = _scene(pos, [scales[i] for i in order], [0.5, 0.5], col)
        rgb, alpha, _ = rasterize(means, quats, sc, opac, colors, IDENTITY, K, 64, 64)
        # Pixel (31, 31) has centre (31.5, 31.5): both Gaussians are centred at (32, 32), 0.5 px away on each axis.
        a_front = 0.5 * math.exp(-0.5 * 0.5 / (25.0 + 0.3))
        a_back = 0.5 * math.exp(-0.5 * 0.5 / (25.0 + 0.3))
        expected = torch.tensor([a_front, 0.0, (1 - a_front) * a_back], dtype=torch.float64)
        assert torch.allclose(rgb[0, 31, 31], expected, atol=1e-12)
        assert alpha[0, 31, 31, 0].item() == pytest.approx(1 - (1 - a_front) * (1 - a_back))


def test_background_fills_what_the_gaussians_leave_and_sh_degree_zero_matches_colours() -> None:
    means, quats, scales, opac, colors = _scene([[0.0, 0.0, 2.0]], [[0.01] * 3], [0.9], [[0.2, 0.4, 0.6]])
    white = torch.ones(1, 3, dtype=torch.float64)
    rgb, alpha, _ = rasterize(means, quats, scales, opac, colors, IDENTITY, K, 64, 64, backgrounds=white)
    assert torch.equal(rgb[0, 0, 0], white[0]) and alpha[0, 0, 0, 0] == 0
    centre = rgb[0, 31, 31]
    a = alpha[0, 31, 31, 0]
    assert torch.allclose(centre, a * colors[0] + (1 - a) * white[0])
    sh = ((colors - 0.5) / SH_C0)[:, None, :]
    rgb_sh, _, _ = rasterize(means, quats, scales, opac, sh, IDENTITY, K, 64, 64, sh_degree=0, backgrounds=white)
    assert torch.allclose(rgb_sh, rgb)


def test_gaussians_behind_the_camera_are_dropped() -> None:
    means, quats, scales, opac, colors = _scene([[0.0, 0.0, -2.0]], [[0.5] * 3], [0.9], [[1.0, 1.0, 1.0]])
    _, alpha, _ = rasterize(means, quats, scales, opac, colors, IDENTITY, K, 16, 16)
    assert alpha.abs().max() == 0


def test_gradients_match_finite_differences() -> None:
    means, quats, scales, opac, colors = _scene(
        [[0.01, 0.02, 1.5], [-0.03, 0.0, 2.0], [0.02, -0.02, 2.5]], [[0.03, 0.02, 0.04], [0.05] * 3, [0.04] * 3],
        [0.6, 0.5, 0.7], [[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9]])
    small_k = K.clone()
    small_k[0, :2, 2] = 4.0
    small_k[0, 0, 0] = small_k[0, 1, 1] = 40.0

    def render(m, s, o, c):
        rgb, alpha, depth = rasterize(m, quats, s, o, c, IDENTITY, small_k, 8, 8, tile=4)
        return rgb.sum(-1) + alpha[..., 0] + 0.1 * depth[..., 0]

    inputs = tuple(x.clone().requires_grad_(True) for x in (means, scales, opac, colors))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5)
