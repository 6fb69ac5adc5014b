"""Gaussians bound to a mesh follow it; the renderer interface picks and checks its backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from harness.api.types import Camera
from harness.heads.binding import BoundGaussians, rotmat_to_quat, sample_surface
from harness.heads.template import head_template
from harness.render.cpu import quat_to_rotmat, rasterize
from harness.render.renderer import camera_tensors, choose_backend, gsplat_available, render


def test_quaternion_round_trip_covers_all_rotations() -> None:
    mats = torch.tensor(Rotation.random(500, random_state=0).as_matrix(), dtype=torch.float64)
    mats = torch.cat([mats, torch.diag_embed(torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1.0]],
                                                          dtype=torch.float64))])  # 180-degree turns
    assert torch.allclose(quat_to_rotmat(rotmat_to_quat(mats)), mats, atol=1e-12)


def _bound(count: int = 400) -> BoundGaussians:
    model = head_template()
    samples = sample_surface(model.v_template, model.faces, count, np.random.default_rng(0))
    gen = torch.Generator().manual_seed(0)
    return BoundGaussians(
        face_ids=torch.as_tensor(samples.face_ids), bary=torch.as_tensor(samples.bary, dtype=torch.float64),
        local_offsets=0.1 * torch.randn(count, 3, generator=gen, dtype=torch.float64),
        local_quats=torch.randn(count, 4, generator=gen, dtype=torch.float64),
        log_scales=torch.randn(count, 3, generator=gen, dtype=torch.float64) - 1,
        opacity_logits=torch.zeros(count, dtype=torch.float64), sh=torch.zeros(count, 1, 3, dtype=torch.float64))


def test_bound_gaussians_follow_a_similarity_transform_of_the_mesh() -> None:
    model = head_template()
    head = _bound()
    vertices = torch.tensor(model.v_template)
    faces = torch.tensor(model.faces)
    rot = torch.tensor(Rotation.from_euler("XYZ", [0.3, -0.8, 0.2]).as_matrix())
    shift, scale = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), 1.7
    rest = head.place(vertices, faces)
    moved = head.place(scale * vertices @ rot.T + shift, faces)
    assert torch.allclose(moved["means"], scale * rest["means"] @ rot.T + shift, atol=1e-12)
    assert torch.allclose(moved["scales"], scale * rest["scales"], atol=1e-12)
    assert torch.allclose(quat_to_rotmat(moved["quats"]), rot @ quat_to_rotmat(rest["quats"]), atol=1e-10)


def test_surface_samples_are_spread_by_area() -> None:
    model = head_template()
    samples = sample_surface(model.v_template, model.faces, 20000, np.random.default_rng(1))
    v = model.v_template[model.faces]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    counts = np.bincount(samples.face_ids, minlength=len(model.faces))
    assert len(samples.face_ids) == 20000 and np.all(samples.bary >= 0) and np.allclose(samples.bary.sum(1), 1)
    assert np.all(np.abs(counts - 20000 * area / area.sum()) <= 1)


def _scene() -> tuple[dict[str, torch.Tensor], list[Camera]]:
    gen = torch.Generator().manual_seed(3)
    n = 200
    gaussians = {"means": torch.randn(n, 3, generator=gen) * 0.05, "quats": torch.randn(n, 4, generator=gen),
                 "scales": torch.rand(n, 3, generator=gen) * 0.01 + 0.002, "opacities": torch.rand(n, generator=gen),
                 "colors": torch.rand(n, 3, generator=gen)}
    w2c = np.diag([1.0, -1.0, -1.0, 1.0])
    w2c[2, 3] = 0.5
    K = np.array([[120.0, 0, 32], [0, 120.0, 24], [0, 0, 1]])
    return gaussians, [Camera(w2c, K, 64, 48)]


def test_cpu_backend_is_the_reference_rasteriser() -> None:
    g, cameras = _scene()
    viewmats, Ks, width, height = camera_tensors(cameras)
    out = render(*g.values(), viewmats, Ks, width, height, backgrounds=torch.ones(1, 3), backend="cpu")
    rgb, alpha, depth = rasterize(*g.values(), viewmats, Ks, width, height, backgrounds=torch.ones(1, 3))
    assert torch.equal(out.rgb, rgb) and torch.equal(out.alpha, alpha) and torch.equal(out.depth, depth)
    assert choose_backend("auto", torch.device("cpu")) == "cpu"


def test_cameras_of_different_sizes_are_refused_together() -> None:
    _, cameras = _scene()
    with pytest.raises(ValueError, match="share one resolution"):
        camera_tensors([cameras[0], cameras[0].resized(32, 24)])


@pytest.mark.skipif(gsplat_available(), reason="gsplat and CUDA are present")
def test_gsplat_backend_says_what_it_needs() -> None:
    with pytest.raises(RuntimeError, match="gsplat package and a CUDA device"):
        choose_backend("gsplat", torch.device("cpu"))


@pytest.mark.skipif(not gsplat_available(), reason="needs gsplat and a CUDA device")
def test_gsplat_agrees_with_the_cpu_backend() -> None:
    g, cameras = _scene()
    viewmats, Ks, width, height = camera_tensors(cameras)
    cpu = render(*g.values(), viewmats, Ks, width, height, backend="cpu")
    cuda = render(*(t.cuda() for t in g.values()), viewmats.cuda(), Ks.cuda(), width, height, backend="gsplat")
    assert (cuda.rgb.cpu() - cpu.rgb).abs().max() < 2e-3
    assert (cuda.alpha.cpu() - cpu.alpha).abs().max() < 2e-3
