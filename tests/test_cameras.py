from __future__ import annotations

import numpy as np
import pytest

from harness.api import Camera, ViewRef
from harness.data.demo import FULL_HEIGHT, FULL_WIDTH, rig_cameras
from harness.data.nersemble_v1 import FRONTAL_SERIAL, SERIALS


def test_rig_looks_at_the_head_from_every_camera() -> None:
    extrinsics, K = rig_cameras()
    target = np.array([[0.0, -0.02, 0.0]])
    for serial in SERIALS:
        cam = Camera(extrinsics[serial], K, FULL_WIDTH, FULL_HEIGHT)
        pix, depth = cam.project(target)
        assert pix[0] == pytest.approx([FULL_WIDTH / 2, FULL_HEIGHT / 2], abs=1e-9)
        assert depth[0] == pytest.approx(1.0)


def test_opencv_axes_of_the_frontal_camera() -> None:
    extrinsics, K = rig_cameras()
    cam = Camera(extrinsics[FRONTAL_SERIAL], K, FULL_WIDTH, FULL_HEIGHT)
    center = np.array([0.0, -0.02, 0.0])
    offsets = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0]])
    (u0, v0), (u_right, _), (_, v_up) = cam.project(center + offsets)[0]
    assert u_right > u0  # world +x is image right for a camera facing the head
    assert v_up < v0  # world up is image up: OpenCV y points down
    # 10 cm at 1 m with f = 1250 px lands 125 px away.
    assert u_right - u0 == pytest.approx(125.0)


def test_resizing_a_camera_scales_projections() -> None:
    extrinsics, K = rig_cameras()
    full = Camera(extrinsics["222200040"], K, FULL_WIDTH, FULL_HEIGHT)
    half = full.resized(FULL_WIDTH // 2, FULL_HEIGHT // 2)
    points = np.random.default_rng(0).normal(0, 0.1, (20, 3))
    np.testing.assert_allclose(half.project(points)[0], full.project(points)[0] / 2, atol=1e-9)


def test_v1_reader_rescales_the_full_resolution_intrinsics(demo_adapter) -> None:
    view = demo_adapter.load_view(ViewRef("901", "EXP-1-head", 0, "222200043"))
    extrinsics, K = rig_cameras()
    assert view.image.shape == (FULL_HEIGHT // 2, FULL_WIDTH // 2, 3)
    assert (view.camera.width, view.camera.height) == (FULL_WIDTH // 2, FULL_HEIGHT // 2)
    np.testing.assert_allclose(view.camera.K[:2], K[:2] / 2)
    np.testing.assert_allclose(view.camera.world_to_camera, extrinsics["222200043"])
    # The head is in the middle of the frame: the alpha at the projected head centre is 1, the corners are 0.
    (u, v), = view.camera.project(np.array([[0.0, 0.02, 0.0]]))[0]
    assert view.alpha[int(v), int(u)] == pytest.approx(1.0)
    assert view.alpha[0, 0] == 0.0 and view.alpha[-1, 0] == 0.0
