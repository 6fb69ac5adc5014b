"""Head models: the open template, FLAME loaded from a stand-in pickle, skinning, landmarks and conventions."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from harness.api.types import Camera
from harness.heads.binding import triangle_frames
from harness.heads.flame import FlameFormatError, load_flame, params_from_nersemble_tracking
from harness.heads.model import axis_angle_to_matrix, deform, euler_xyz_to_matrix
from harness.heads.template import CENTRE, EYE_CENTRES, EYE_RADIUS, LANDMARKS, head_template


def test_euler_xyz_is_the_intrinsic_convention_of_scipy() -> None:
    angles = np.array([[0.3, -0.7, 1.1], [-1.2, 0.4, 0.05]])
    ours = euler_xyz_to_matrix(torch.tensor(angles, dtype=torch.float64)).numpy()
    assert np.allclose(ours, Rotation.from_euler("XYZ", angles).as_matrix(), atol=1e-12)


def test_axis_angle_matches_scipy_and_is_exact_at_zero() -> None:
    vectors = np.array([[0.0, 0.0, 0.0], [0.2, -0.5, 0.9], [1e-9, 0.0, 0.0]])
    ours = axis_angle_to_matrix(torch.tensor(vectors, dtype=torch.float64)).numpy()
    assert np.allclose(ours, Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12)
    assert np.array_equal(ours[0], np.eye(3))


def test_template_has_the_full_interface_and_outward_faces() -> None:
    model = head_template()
    assert model.v_template.shape[1] == 3 and model.faces.max() < len(model.v_template)
    assert model.uv_faces.shape == model.faces.shape and model.uv_coords.min() >= 0 and model.uv_coords.max() <= 1
    assert np.allclose(model.lbs_weights.sum(1), 1.0)
    assert set(model.regions) >= {"face", "hair", "neck", "eye_l", "eye_r"}
    assert len(model.landmark_names) == len(model.landmark_faces) == len(LANDMARKS)
    # Every triangle's normal points away from the centre of its own part: the cranium's centre, the neck's axis at
    # the triangle's height, the eyeball's centre.
    v = torch.tensor(model.v_template)
    faces = torch.tensor(model.faces)
    normals = triangle_frames(v, faces)[0][..., 2].numpy()
    centroid = v[faces].mean(1).numpy()
    centre = np.tile(CENTRE, (len(faces), 1))
    on_neck = np.isin(model.faces, model.regions["neck"]).all(1)
    centre[on_neck] = np.c_[np.zeros(on_neck.sum()), centroid[on_neck, 1], np.full(on_neck.sum(), -0.012)]
    for name, eye_centre in zip(("eye_l", "eye_r"), EYE_CENTRES, strict=True):
        centre[np.isin(model.faces[:, 0], model.regions[name])] = eye_centre
    outward = ((centroid - centre) * normals).sum(1)
    assert (outward > 0).mean() > 0.99


def test_neutral_parameters_give_the_template_and_blendshapes_are_linear() -> None:
    model = head_template()
    neutral = deform(model, model.params(), dtype=torch.float64).vertices.numpy()
    assert np.allclose(neutral, model.v_template, atol=1e-12)
    shape = np.linspace(-1, 1, model.num_shape)
    expression = np.linspace(1, -1, model.num_expression)
    posed = deform(model, model.params(shape=shape, expression=expression), dtype=torch.float64).vertices.numpy()
    assert np.allclose(posed, model.v_template + model.shapedirs @ shape + model.exprdirs @ expression, atol=1e-12)


def test_skinning_moves_only_the_weighted_vertices() -> None:
    model = head_template()
    rest = deform(model, model.params(), dtype=torch.float64)
    jaw_open = deform(model, model.params(jaw=[0.3, 0, 0]), dtype=torch.float64)
    moved = np.linalg.norm(jaw_open.vertices.numpy() - rest.vertices.numpy(), axis=1) > 1e-9
    jaw_weight = model.lbs_weights[:, 2]
    assert np.array_equal(moved, jaw_weight > 0) and 0 < moved.sum() < 0.2 * len(moved)
    # The chin goes down when the jaw opens; the eyes and scalp stay put.
    chin = model.landmark_names.index("chin")
    assert jaw_open.landmarks[chin, 1] < rest.landmarks[chin, 1] - 0.005
    # Eyes rotate about their own centres: eyeball vertices stay on the sphere, nothing else moves.
    look = deform(model, model.params(eyes=[0, 0.4, 0, 0, 0, 0]), dtype=torch.float64).vertices.numpy()
    moved = np.flatnonzero(np.linalg.norm(look - model.v_template, axis=1) > 1e-9)
    assert set(moved) <= set(model.regions["eye_l"]) and len(moved) > 0
    assert np.allclose(np.linalg.norm(look[moved] - EYE_CENTRES[0], axis=1), EYE_RADIUS, atol=1e-9)


def test_landmarks_project_where_the_convention_puts_them() -> None:
    """Landmarks of a head turned by Euler XYZ angles, scaled and moved, seen from a frontal camera."""
    model = head_template()
    rotation, translation, scale = np.array([0.1, 0.5, -0.05]), np.array([0.01, -0.02, 0.03]), 1.1
    posed = deform(model, model.params(rotation=rotation, translation=translation, scale=scale), dtype=torch.float64)
    neutral = deform(model, model.params(), dtype=torch.float64).landmarks.numpy()
    expected_world = scale * neutral @ Rotation.from_euler("XYZ", rotation).as_matrix().T + translation
    w2c = np.diag([1.0, -1.0, -1.0, 1.0])  # camera at the origin... moved to z = 1 m looking down -z
    w2c[2, 3] = 1.0
    camera = Camera(w2c, np.array([[500.0, 0, 256], [0, 500.0, 256], [0, 0, 1]]), 512, 512)
    pixels, _ = camera.project(posed.landmarks.numpy())
    expected, _ = camera.project(expected_world)
    assert np.allclose(pixels, expected, atol=1e-6)
    # Unposed, the nose tip is on the image's vertical centre line and the left eye on the image's right.
    pixels, _ = camera.project(neutral)
    names = model.landmark_names
    assert pixels[names.index("nose_tip"), 0] == pytest.approx(256.0, abs=1e-6)
    assert pixels[names.index("eye_l_outer"), 0] > 256 > pixels[names.index("eye_r_outer"), 0]
    assert pixels[names.index("chin"), 1] > pixels[names.index("nose_tip"), 1] > pixels[names.index("brow_l"), 1]


# ----------------------------------------------------------------------------------------------- FLAME stand-in


def _fake_chumpy() -> types.ModuleType:
    """A module tree shaped like chumpy's, so pickles name ``chumpy.ch.Ch`` as the real FLAME file does."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars, self._itr, self._depends_on_deps = set(), None, {}
            self._make_dense = self._make_sparse = False

        def __getstate__(self) -> dict:
            return dict(self.__dict__)

    class Select(Ch):
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch.Ch, chumpy.ch = Ch, ch
    reordering = types.ModuleType("chumpy.reordering")
    reordering.Select = Select
    chumpy.reordering = reordering
    return chumpy


def write_flame_standin(path: Path, rng: np.random.Generator, exotic: bool = False) -> dict[str, np.ndarray]:
    """A tiny FLAME-structured pickle: chumpy Ch arrays, a sparse csc J_regressor, kintree_table, lbs weights."""
    v, f = 12, np.array([[0, 1, 2], [2, 3, 0], [4, 5, 6], [6, 7, 4], [8, 9, 10], [10, 11, 8]], dtype=np.uint32)
    arrays = {
        "v_template": rng.normal(0, 0.05, (v, 3)), "shapedirs": rng.normal(0, 0.01, (v, 3, 400)),
        "posedirs": rng.normal(0, 0.01, (v, 3, 36)), "weights": rng.dirichlet(np.ones(5), v),
        "J_regressor": rng.dirichlet(np.ones(v), 5),
    }
    chumpy = _fake_chumpy()
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch", "chumpy.reordering")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": chumpy.ch, "chumpy.reordering": chumpy.reordering})
    try:
        wrap = chumpy.reordering.Select if exotic else chumpy.ch.Ch
        raw = {
            "v_template": chumpy.ch.Ch(arrays["v_template"]), "f": f, "shapedirs": wrap(arrays["shapedirs"]),
            "posedirs": chumpy.ch.Ch(arrays["posedirs"]), "weights": chumpy.ch.Ch(arrays["weights"]),
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
            "bs_style": "lbs", "bs_type": "lrotmin",
        }
        path.write_bytes(pickle.dumps(raw, protocol=2))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return {**arrays, "f": f}


def test_flame_pickle_loads_without_chumpy_and_poses_like_flame(tmp_path: Path) -> None:
    arrays = write_flame_standin(tmp_path / "flame2023.pkl", np.random.default_rng(0))
    assert "chumpy" not in sys.modules
    model = load_flame(tmp_path / "flame2023.pkl")
    assert model.name == "flame2023" and model.num_shape == 300 and model.num_expression == 100
    assert np.array_equal(model.v_template, arrays["v_template"])
    assert np.array_equal(model.exprdirs, arrays["shapedirs"][:, :, 300:])
    assert np.array_equal(model.J_regressor, arrays["J_regressor"]) and model.parents == (-1, 0, 1, 1, 1)
    # Shape only: v_template + shapedirs @ beta. Jaw open: FLAME's pose correctives (R - I) . posedirs then LBS.
    beta = np.random.default_rng(1).normal(size=300)
    shaped = deform(model, model.params(shape=beta), dtype=torch.float64).vertices.numpy()
    v_shaped = arrays["v_template"] + arrays["shapedirs"][:, :, :300] @ beta
    assert np.allclose(shaped, v_shaped, atol=1e-10)
    jaw = np.array([0.2, 0.0, 0.0])
    posed = deform(model, model.params(jaw=jaw), dtype=torch.float64).vertices.numpy()
    rot = [np.eye(3), np.eye(3), Rotation.from_rotvec(jaw).as_matrix(), np.eye(3), np.eye(3)]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rot[1:]])
    v_posed = arrays["v_template"] + (arrays["posedirs"] @ feature)
    joints = arrays["J_regressor"] @ arrays["v_template"]
    # Jaw (joint 2) hangs off the neck (joint 1), which has no rotation: points rotate about the jaw joint.
    jaw_moved = (v_posed - joints[2]) @ rot[2].T + joints[2]
    w = arrays["weights"]
    expected = v_posed * (1 - w[:, 2:3]) + jaw_moved * w[:, 2:3]
    assert np.allclose(posed, expected, atol=1e-10)


def test_flame_loader_names_what_it_cannot_read(tmp_path: Path) -> None:
    write_flame_standin(tmp_path / "exotic.pkl", np.random.default_rng(0), exotic=True)
    with pytest.raises(FlameFormatError, match=r"chumpy chumpy.reordering.Select"):
        load_flame(tmp_path / "exotic.pkl")
    with pytest.raises(FlameFormatError, match=r"missing FLAME file .*absent.pkl.*flame.is.tue.mpg.de"):
        load_flame(tmp_path / "absent.pkl")
    (tmp_path / "partial.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(FlameFormatError, match=r"partial.pkl: a FLAME pickle needs keys"):
        load_flame(tmp_path / "partial.pkl")


def test_nersemble_tracking_frames_become_head_parameters(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frames = 4
    tracking = {"shape": rng.normal(size=(1, 300)), "expression": rng.normal(size=(frames, 100)),
                "rotation": rng.normal(size=(frames, 3)), "rotation_matrices": np.zeros((frames, 3, 3)),
                "translation": rng.normal(size=(frames, 3)), "jaw": rng.normal(size=(frames, 3)),
                "neck": rng.normal(size=(frames, 3)), "eyes": rng.normal(size=(frames, 6)),
                "frames": np.arange(frames), "scale": np.array([[1.3]])}
    np.savez(tmp_path / "flame2023_tracking_v2.npz", **tracking)
    loaded = np.load(tmp_path / "flame2023_tracking_v2.npz")
    params = params_from_nersemble_tracking(loaded, 2)
    assert params["model"] == "flame2023" and params["scale"] == pytest.approx(1.3)
    assert np.array_equal(params["eyes"], tracking["eyes"][2]) and np.array_equal(params["shape"], tracking["shape"][0])
