"""Feature rendering: D channels at once, per-camera features, D-channel backgrounds, normal and depth maps."""

from __future__ import annotations

import math

import pytest
import torch

from harness.render.cpu import SH_C0
from harness.render.renderer import render, render_normals_depth

F64 = torch.float64


def _intrinsics(f: float, size: int, cameras: int = 1) -> torch.Tensor:
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]], dtype=F64)
    return K.expand(cameras, 3, 3).clone()


def _rot_x(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=F64)


def _two_cameras() -> torch.Tensor:
    """The identity camera and one turned 0.1 rad about x and shifted, both seeing the cloud around z = 2."""
    second = torch.eye(4, dtype=F64)
    second[:3, :3] = _rot_x(0.1)
    second[:3, 3] = torch.tensor([0.05, -0.02, 0.1], dtype=F64)
    return torch.stack([torch.eye(4, dtype=F64), second])


def _cloud(n: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen, dtype=F64) * torch.tensor([0.25, 0.25, 0.2], dtype=F64)
    means[:, 2] += 2.0
    return {"means": means, "quats": torch.randn(n, 4, generator=gen, dtype=F64),
            "scales": torch.rand(n, 3, generator=gen, dtype=F64) * 0.05 + 0.01,
            "opacities": torch.rand(n, generator=gen, dtype=F64) * 0.8 + 0.1}


def test_d_channels_at_once_equal_single_channel_renders_and_the_rgb_render() -> None:
    g, viewmats, Ks = _cloud(), _two_cameras(), _intrinsics(30.0, 24, 2)
    features = torch.rand(len(g["means"]), 5, generator=torch.Generator().manual_seed(1), dtype=F64) * 2 - 0.5
    many = render(*g.values(), features, viewmats, Ks, 24, 24, backend="cpu")
    assert many.features.shape == (2, 24, 24, 5) and many.alpha.max() > 0.5
    for d in range(5):
        one = render(*g.values(), features[:, d:d + 1], viewmats, Ks, 24, 24, backend="cpu")
        assert torch.allclose(many.features[..., d:d + 1], one.features, rtol=0, atol=1e-12)
        assert torch.equal(many.alpha, one.alpha) and torch.equal(many.depth, one.depth)
    # Three of the channels as colours: the same image as the D-channel render and as SH degree 0 with those colours.
    rgb = features[:, 1:4].clamp_min(0)
    from_sh = render(*g.values(), ((rgb - 0.5) / SH_C0)[:, None, :], viewmats, Ks, 24, 24, sh_degree=0,
                     backend="cpu")
    stacked = torch.cat([render(*g.values(), rgb[:, d:d + 1], viewmats, Ks, 24, 24, backend="cpu").features
                         for d in range(3)], dim=-1)
    assert torch.allclose(from_sh.rgb, stacked, rtol=0, atol=1e-12)


def test_per_camera_features_equal_one_render_per_camera() -> None:
    g, viewmats, Ks = _cloud(), _two_cameras(), _intrinsics(30.0, 24, 2)
    features = torch.rand(2, len(g["means"]), 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    both = render(*g.values(), features, viewmats, Ks, 24, 24, backend="cpu")
    for c in range(2):
        alone = render(*g.values(), features[c], viewmats[c:c + 1], Ks[c:c + 1], 24, 24, backend="cpu")
        assert torch.allclose(both.features[c:c + 1], alone.features, rtol=0, atol=1e-12)
    assert not torch.allclose(both.features[1], render(*g.values(), features[0], viewmats[1:], Ks[1:], 24, 24,
                                                       backend="cpu").features[0])


def test_backgrounds_have_d_channels_and_must_match_them() -> None:
    means = torch.tensor([[0.0, 0.0, 2.0]], dtype=F64)
    quats, scales = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64), torch.full((1, 3), 0.05, dtype=F64)
    opac, feats = torch.tensor([0.9], dtype=F64), torch.tensor([[1.0, -2.0, 3.0, 0.5, 7.0]], dtype=F64)
    viewmats, Ks = torch.eye(4, dtype=F64).expand(2, 4, 4), _intrinsics(40.0, 16, 2)
    bg = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5], [-1.0, 0.0, 1.0, 2.0, 3.0]], dtype=F64)
    out = render(means, quats, scales, opac, feats, viewmats, Ks, 16, 16, backgrounds=bg, backend="cpu")
    for c in range(2):
        assert torch.equal(out.features[c, 0, 0], bg[c]) and out.alpha[c, 0, 0, 0] == 0
        a = out.alpha[c, 7, 7, 0]
        assert a > 0.5
        assert torch.allclose(out.features[c, 7, 7], a * feats[0] + (1 - a) * bg[c], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"backgrounds must be \(C, D\)"):
        render(means, quats, scales, opac, feats, viewmats, Ks, 16, 16, backgrounds=bg[:, :3], backend="cpu")
    with pytest.raises(ValueError, match="colors must be"):
        render(means, quats, scales, opac, feats[None].expand(3, 1, 5), viewmats, Ks, 16, 16, backend="cpu")


def test_feature_path_gradients_match_finite_differences() -> None:
    means = torch.tensor([[0.01, 0.02, 1.5], [-0.03, 0.0, 2.0], [0.02, -0.02, 2.5], [0.0, 0.03, 1.8]], dtype=F64)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, -0.2, 0.3], [1.0, 0.0, 0.0, 0.0], [0.7, 0.0, 0.7, 0.1]],
                         dtype=F64)
    scales = torch.tensor([[0.03, 0.02, 0.04], [0.05] * 3, [0.04] * 3, [0.02, 0.03, 0.025]], dtype=F64)
    opac = torch.tensor([0.6, 0.5, 0.7, 0.4], dtype=F64)
    feats = torch.tensor([[0.9, 0.1, 0.2, -1.0], [0.1, 0.8, 0.3, 2.0], [0.2, 0.3, 0.9, 0.5], [1.0, 1.0, 0.0, 0.3]],
                         dtype=F64)
    Ks = _intrinsics(40.0, 8)
    bg = torch.tensor([[0.5, -0.5, 1.0, 2.0]], dtype=F64)

    def image(m: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return render(m, quats, scales, opac, f, torch.eye(4, dtype=F64)[None], Ks, 8, 8, backgrounds=bg,
                      backend="cpu").features

    inputs = (means.clone().requires_grad_(True), feats.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


def _layer(extent: float, spacing: float, rotation: torch.Tensor, centre: tuple[float, float, float],
           x_max: float | None = None) -> dict[str, torch.Tensor]:
    """Thin disks (thickness 1e-4) tiling a plane through ``centre`` spanned by ``rotation``'s first two columns.

    The quaternions alternate between the plane's frame and the same frame turned 180 degrees about its first axis
    (so half of the raw smallest-scale axes point the other way), and every third disk is described with its thin
    axis first and the frame turned accordingly (so the smallest scale is not always the third).
    """
    steps = torch.arange(-extent, extent + 1e-9, spacing, dtype=F64)
    u, v = torch.meshgrid(steps, steps, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    if x_max is not None:
        keep = u <= x_max
        u, v = u[keep], v[keep]
    n = len(u)
    means = torch.tensor(centre, dtype=F64) + u[:, None] * rotation[:, 0] + v[:, None] * rotation[:, 1]
    frames = rotation.expand(n, 3, 3).clone()
    frames[1::2] = frames[1::2] @ torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    scales = torch.tensor([spacing, spacing, 1e-4], dtype=F64).expand(n, 3).clone()
    # Columns (z, y, -x) of the frame: the same disk with its thin axis listed first.
    swap = torch.tensor([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64)
    frames[::3] = frames[::3] @ swap
    scales[::3] = torch.tensor([1e-4, spacing, spacing], dtype=F64)
    return {"means": means, "quats": _matrix_to_quat(frames), "scales": scales,
            "opacities": torch.full((n,), 0.9, dtype=F64)}


def _matrix_to_quat(mats: torch.Tensor) -> torch.Tensor:
    from harness.heads.binding import rotmat_to_quat

    return rotmat_to_quat(mats)


def test_a_layer_facing_the_camera_has_normal_minus_z_and_depth_two() -> None:
    g = _layer(1.0, 0.15, torch.eye(3, dtype=F64), (0.0, 0.0, 2.0), x_max=0.0)
    out = render_normals_depth(*g.values(), torch.eye(4, dtype=F64)[None], _intrinsics(20.0, 24), 24, 24,
                               backend="cpu")
    alpha = out.alpha[0, ..., 0]
    solid, empty = alpha > 0.9, alpha == 0
    assert solid.sum() > 100 and empty.sum() > 20  # the layer covers the left half of the image only
    expected = torch.tensor([0.0, 0.0, -1.0], dtype=F64)
    assert torch.allclose(out.normals[0][solid], expected.expand(int(solid.sum()), 3), rtol=0, atol=1e-6)
    assert torch.allclose(out.depth[0, ..., 0][solid], torch.full((int(solid.sum()),), 2.0, dtype=F64), atol=1e-9)
    assert torch.equal(out.depth[0, ..., 0][empty], torch.zeros(int(empty.sum()), dtype=F64))
    assert torch.equal(out.normals[0][empty], torch.zeros(int(empty.sum()), 3, dtype=F64))
    # Unit normals wherever anything is seen, and gradients stay finite through the empty pixels.
    seen = alpha > 0
    assert torch.allclose(out.normals[0][seen].norm(dim=-1), torch.ones(int(seen.sum()), dtype=F64))
    quats = g["quats"].clone().requires_grad_(True)
    means = g["means"].clone().requires_grad_(True)
    again = render_normals_depth(means, quats, g["scales"], g["opacities"], torch.eye(4, dtype=F64)[None],
                                 _intrinsics(20.0, 24), 24, 24, backend="cpu")
    (again.normals.sum() + again.depth.sum()).backward()
    assert torch.isfinite(quats.grad).all() and torch.isfinite(means.grad).all() and means.grad.abs().max() > 0


def test_a_tilted_plane_gives_the_tilted_normal_in_each_camera() -> None:
    theta = 0.5
    tilt = _rot_x(theta)
    # The plane turned by theta about x, 2 units from the origin along its normal tilt[:, 2], seen by an identity
    # camera and by one turned with the plane (its optical axis along the normal), both at the origin.
    g = _layer(2.4, 0.15, tilt, tuple((2.0 * tilt[:, 2]).tolist()))
    turned = torch.eye(4, dtype=F64)
    turned[:3, :3] = tilt.T
    viewmats = torch.stack([torch.eye(4, dtype=F64), turned])
    Ks = _intrinsics(20.0, 16, 2)
    out = render_normals_depth(*g.values(), viewmats, Ks, 16, 16, backend="cpu")
    # Facing the camera: -(third column of the tilt) = (0, sin, -cos) for the identity camera, -z for the other.
    expected = [torch.tensor([0.0, math.sin(theta), -math.cos(theta)], dtype=F64),
                torch.tensor([0.0, 0.0, -1.0], dtype=F64)]
    for c in range(2):
        solid = out.alpha[c, ..., 0] > 0.9
        assert solid.sum() > 150
        assert torch.allclose(out.normals[c][solid], expected[c].expand(int(solid.sum()), 3), rtol=0, atol=1e-6)
    # The turned camera looks square-on at the plane 2 units away: depth 2 wherever it is covered.
    solid = out.alpha[1, ..., 0] > 0.9
    assert torch.allclose(out.depth[1, ..., 0][solid], torch.full((int(solid.sum()),), 2.0, dtype=F64), atol=1e-9)
    # The identity camera sees the plane recede downwards in the image (y down): along the ray through pixel row v
    # the plane is at z = 2 / (cos - sin * (v + 0.5 - cy) / f). The blend of disk centres sits a few percent in front
    # of it (nearer disks composite first), so: within 8 %, and increasing down the image.
    solid = out.alpha[0, ..., 0] > 0.9
    v = torch.arange(16, dtype=F64)[:, None].expand(16, 16) + 0.5
    plane_z = 2.0 / (math.cos(theta) - math.sin(theta) * (v - 8.0) / 20.0)
    assert torch.allclose(out.depth[0, ..., 0][solid], plane_z[solid], rtol=0.08)
    rows = out.depth[0, ..., 0].mean(dim=1)
    assert solid.all() and (rows[1:] > rows[:-1]).all() and rows[-1] - rows[0] > 0.8
