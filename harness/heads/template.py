"""An open head template of our own making, with FLAME's interface, so everything runs without FLAME.

The head and neck are one latitude-longitude surface (a pole on top, ``HEAD_ROWS`` rings of an ellipsoidal cranium
shaped by smooth bumps for nose, brows, eye sockets, cheeks, lips, chin and ears, then ``NECK_ROWS`` rings of neck),
plus two eyeballs. Frame: metres, y up, the face looks along +z, the head's left is +x. Everything is generated
from the constants below, deterministically; identity and expression blendshapes are exact finite differences of
the generator (it is linear in each coefficient), so the model is linear like FLAME.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.heads.model import HeadModel

TEMPLATE_NAME = "open-head-template-v1"
N_LON = 72
HEAD_ROWS = 56
NECK_ROWS = 10
THETA_RIM = 2.5
CENTRE = np.array([0.0, 0.01, 0.0])
RADII = np.array([0.075, 0.11, 0.095])
NECK_TOP, NECK_BOTTOM = -0.09, -0.21
EYE_CENTRES = np.array([[0.031, 0.033, 0.068], [-0.031, 0.033, 0.068]])
EYE_RADIUS = 0.0125
EYE_LAT, EYE_LON = 10, 16
MOUTH_Y = -0.045

SHAPE_NAMES = ("width", "height", "depth", "nose_size", "nose_length", "chin", "ears", "cheeks", "hair_volume",
               "brow_ridge", "neck_width", "jaw_width")
EXPRESSION_NAMES = ("smile", "lips_part", "brow_raise", "brow_furrow", "pucker", "cheek_puff", "nose_wrinkle",
                    "smirk_left")
LANDMARKS = {
    "eye_l_outer": (0.046, 0.033, 0.07), "eye_l_inner": (0.017, 0.033, 0.08), "eye_r_inner": (-0.017, 0.033, 0.08),
    "eye_r_outer": (-0.046, 0.033, 0.07), "nose_tip": (0.0, -0.012, 0.13), "nose_base": (0.0, -0.025, 0.11),
    "mouth_l": (0.022, MOUTH_Y, 0.09), "mouth_r": (-0.022, MOUTH_Y, 0.09), "lip_upper": (0.0, -0.038, 0.1),
    "lip_lower": (0.0, -0.052, 0.1), "chin": (0.0, -0.075, 0.075), "brow_l": (0.032, 0.052, 0.09),
    "brow_r": (-0.032, 0.052, 0.09), "ear_l": (0.1, 0.015, -0.005), "ear_r": (-0.1, 0.015, -0.005),
}


def _bump(p: np.ndarray, mu: tuple[float, float, float], sigma: tuple[float, float, float]) -> np.ndarray:
    return np.exp(-0.5 * (((p - np.asarray(mu)) / np.asarray(sigma)) ** 2).sum(-1))


def _mirrored(mu: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    return [mu, (-mu[0], mu[1], mu[2])]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _base_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undeformed head (pole + rings) and neck rings; returns points, per-point outward normals, is-neck flags."""
    phis = -np.pi + 2 * np.pi * np.arange(N_LON) / N_LON
    thetas = THETA_RIM * np.arange(1, HEAD_ROWS + 1) / HEAD_ROWS
    th, ph = np.meshgrid(thetas, phis, indexing="ij")
    d = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1).reshape(-1, 3)
    head = np.concatenate([[CENTRE + RADII * [0, 1, 0]], CENTRE + RADII * d])
    head_normals = (head - CENTRE) / RADII**2
    ys = np.linspace(NECK_TOP, NECK_BOTTOM, NECK_ROWS)
    yy, pp = np.meshgrid(ys, phis, indexing="ij")
    neck = np.stack([0.05 * np.sin(pp), yy, -0.012 + 0.052 * np.cos(pp)], -1).reshape(-1, 3)
    neck_normals = np.stack([np.sin(pp), np.zeros_like(pp), np.cos(pp)], -1).reshape(-1, 3)
    points = np.concatenate([head, neck])
    normals = np.concatenate([head_normals, neck_normals])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    is_neck = np.r_[np.zeros(len(head), bool), np.ones(len(neck), bool)]
    return points, normals, is_neck


def _surface(knobs: np.ndarray) -> np.ndarray:
    """Head and neck vertices for identity coefficients ``knobs`` (len(SHAPE_NAMES),); linear in each one."""
    base, normals, is_neck = _base_grid()
    k = dict(zip(SHAPE_NAMES, knobs, strict=True))
    head = ~is_neck
    p = base.copy()
    z_dir = np.array([0.0, 0.0, 1.0])
    nose = _bump(base, (0, 0.0, 0.095), (0.011, 0.022, 0.03))
    nose_tip = _bump(base, (0, -0.015, 0.095), (0.009, 0.009, 0.03))
    p += (0.024 * (1 + 0.5 * k["nose_size"]) * nose)[:, None] * z_dir
    p += (0.008 * nose_tip)[:, None] * np.array([0, -0.3, 1]) + (0.005 * k["nose_length"] * nose_tip)[:, None] * [0,
                                                                                                          -1, 0]
    for mu in _mirrored((0.03, 0.05, 0.085)):
        p += ((0.006 + 0.004 * k["brow_ridge"]) * _bump(base, mu, (0.022, 0.009, 0.03)))[:, None] * normals
    for mu in _mirrored((0.031, 0.033, 0.085)):
        p -= (0.012 * _bump(base, mu, (0.015, 0.011, 0.03)))[:, None] * normals
    for mu in _mirrored((0.045, -0.005, 0.075)):
        p += ((0.006 + 0.005 * k["cheeks"]) * _bump(base, mu, (0.02, 0.02, 0.03)))[:, None] * normals
    p += ((0.008 + 0.008 * k["chin"]) * _bump(base, (0, -0.07, 0.06), (0.02, 0.012, 0.04)))[:, None] * z_dir
    for y in (-0.038, -0.052):
        p += (0.004 * _bump(base, (0, y, 0.09), (0.018, 0.005, 0.03)))[:, None] * z_dir
    for side in (1.0, -1.0):
        ear = _bump(base, (side * 0.075, 0.015, -0.005), (0.012, 0.026, 0.016))
        p += ((0.016 + 0.006 * k["ears"]) * ear)[:, None] * np.array([side, 0, 0])
    hairness = _sigmoid((base[:, 1] - 0.04) / 0.015) + _sigmoid(-(base[:, 2] + 0.03) / 0.015) * _sigmoid(
        (base[:, 1] + 0.02) / 0.015)
    p += (0.008 * k["hair_volume"] * np.clip(hairness, 0, 1) * head)[:, None] * normals
    lower = _sigmoid((-0.02 - base[:, 1]) / 0.02) * head
    p[:, 0] *= 1 + 0.06 * k["jaw_width"] * lower
    p[head, 0] *= 1 + 0.08 * k["width"]
    p[head, 1] = CENTRE[1] + (p[head, 1] - CENTRE[1]) * (1 + 0.06 * k["height"])
    p[head, 2] *= 1 + 0.06 * k["depth"]
    p[is_neck, 0] *= 1 + 0.12 * k["neck_width"]
    p[is_neck, 2] = -0.012 + (p[is_neck, 2] + 0.012) * (1 + 0.12 * k["neck_width"])
    return p


def _expression_fields(p: np.ndarray) -> np.ndarray:
    """(V, 3, E) expression displacements, defined on the neutral surface."""
    fields = np.zeros((len(p), 3, len(EXPRESSION_NAMES)))
    e = {name: i for i, name in enumerate(EXPRESSION_NAMES)}
    for side in (1.0, -1.0):
        corner = _bump(p, (side * 0.022, MOUTH_Y, 0.088), (0.011, 0.01, 0.03))
        fields[:, :, e["smile"]] += corner[:, None] * [side * 0.006, 0.007, -0.002]
        fields[:, :, e["cheek_puff"]] += _bump(p, (side * 0.045, -0.03, 0.07), (0.018, 0.018, 0.03))[:, None] * [
            side * 0.008, 0, 0.003]
        inner_brow = _bump(p, (side * 0.018, 0.055, 0.09), (0.012, 0.01, 0.03))
        fields[:, :, e["brow_furrow"]] += inner_brow[:, None] * [-side * 0.003, -0.004, 0.001]
        fields[:, :, e["brow_raise"]] += _bump(p, (side * 0.032, 0.056, 0.088), (0.02, 0.012, 0.03))[:, None] * [
            0, 0.006, 0]
    fields[:, :, e["smirk_left"]] += _bump(p, (0.022, MOUTH_Y, 0.088), (0.011, 0.01, 0.03))[:, None] * [0.004, 0.008,
                                                                                                       0]
    upper = _bump(p, (0, -0.039, 0.09), (0.02, 0.005, 0.03))
    lower = _bump(p, (0, -0.051, 0.09), (0.02, 0.005, 0.03))
    fields[:, :, e["lips_part"]] += upper[:, None] * [0, 0.003, 0] + lower[:, None] * [0, -0.005, 0]
    lips = _bump(p, (0, MOUTH_Y, 0.09), (0.02, 0.01, 0.03))
    fields[:, :, e["pucker"]] += lips[:, None] * [0, 0, 0.008] - (lips * p[:, 0] * 0.3)[:, None] * [1, 0, 0]
    fields[:, :, e["nose_wrinkle"]] += _bump(p, (0, 0.01, 0.1), (0.012, 0.012, 0.03))[:, None] * [0, 0.003, 0]
    return fields


def _eyeball(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front pole, EYE_LAT - 1 rings, back pole; polar angle measured from +z."""
    alphas = np.pi * np.arange(1, EYE_LAT) / EYE_LAT
    betas = 2 * np.pi * np.arange(EYE_LON) / EYE_LON
    al, be = np.meshgrid(alphas, betas, indexing="ij")
    d = np.stack([np.sin(al) * np.cos(be), np.sin(al) * np.sin(be), np.cos(al)], -1).reshape(-1, 3)
    d = np.concatenate([[[0, 0, 1]], d, [[0, 0, -1]]])
    return centre + EYE_RADIUS * d, alphas, betas


def _grid_faces(first: int, rows: int, cols: int, pole_top: int | None, pole_bottom: int | None) -> np.ndarray:
    """Triangles of a closed-in-longitude grid ``first + r * cols + c``, outward for (rows down, cols around)."""
    idx = lambda r, c: first + r * cols + (c % cols)  # noqa: E731
    faces = []
    if pole_top is not None:
        faces += [(pole_top, idx(0, c), idx(0, c + 1)) for c in range(cols)]
    for r in range(rows - 1):
        for c in range(cols):
            faces += [(idx(r, c), idx(r + 1, c), idx(r, c + 1)), (idx(r, c + 1), idx(r + 1, c), idx(r + 1, c + 1))]
    if pole_bottom is not None:
        faces += [(idx(rows - 1, c), pole_bottom, idx(rows - 1, c + 1)) for c in range(cols)]
    return np.asarray(faces, dtype=np.int64)


def _grid_uv(rows: int, cols: int, box: tuple[float, float, float, float], poles: tuple[bool, bool]
             ) -> tuple[np.ndarray, np.ndarray]:
    """UVs for the same grid with a seam column; returns uv coords and uv faces matching ``_grid_faces``."""
    u0, v0, u1, v1 = box
    us = u0 + (u1 - u0) * np.arange(cols + 1) / cols
    n_rows = rows + sum(poles)
    vs = v1 - (v1 - v0) * (np.arange(rows) + poles[0]) / max(n_rows - 1, 1)
    grid = np.stack(np.meshgrid(us, vs, indexing="xy"), -1).reshape(-1, 2)
    coords = [grid]
    top = bottom = 0
    if poles[0]:
        top = len(grid)
        coords.append(np.stack([us[:-1] + 0.5 * (u1 - u0) / cols, np.full(cols, v1)], -1))
    if poles[1]:
        bottom = len(grid) + (cols if poles[0] else 0)
        coords.append(np.stack([us[:-1] + 0.5 * (u1 - u0) / cols, np.full(cols, v0)], -1))
    idx = lambda r, c: r * (cols + 1) + c  # noqa: E731
    faces = []
    if poles[0]:
        faces += [(top + c, idx(0, c), idx(0, c + 1)) for c in range(cols)]
    for r in range(rows - 1):
        for c in range(cols):
            faces += [(idx(r, c), idx(r + 1, c), idx(r, c + 1)), (idx(r, c + 1), idx(r + 1, c), idx(r + 1, c + 1))]
    if poles[1]:
        faces += [(idx(rows - 1, c), bottom + c, idx(rows - 1, c + 1)) for c in range(cols)]
    return np.concatenate(coords), np.asarray(faces, dtype=np.int64)


def _nearest_faces(vertices: np.ndarray, faces: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each target snapped to its nearest vertex, expressed as (face index, one-hot barycentric)."""
    face_ids, bary = [], []
    for t in targets:
        v = int(np.argmin(np.linalg.norm(vertices - t, axis=1)))
        f, corner = np.argwhere(faces == v)[0]
        face_ids.append(f)
        bary.append(np.eye(3)[corner])
    return np.asarray(face_ids), np.asarray(bary)


@lru_cache(maxsize=1)
def head_template() -> HeadModel:
    """The open head template (built once per process, ~5k vertices)."""
    neutral = _surface(np.zeros(len(SHAPE_NAMES)))
    shapedirs = np.stack([_surface(np.eye(len(SHAPE_NAMES))[i]) - neutral for i in range(len(SHAPE_NAMES))], -1)
    _, _, is_neck = _base_grid()
    n_surface = len(neutral)
    eyes = [_eyeball(c)[0] for c in EYE_CENTRES]
    n_eye = len(eyes[0])
    vertices = np.concatenate([neutral, *eyes])
    n_v = len(vertices)

    rows = HEAD_ROWS + NECK_ROWS
    faces = [_grid_faces(1, rows, N_LON, pole_top=0, pole_bottom=None)]
    uv_coords, uv_faces = [], []
    uv, uvf = _grid_uv(rows, N_LON, (0.0, 0.25, 1.0, 1.0), (True, False))
    uv_coords.append(uv)
    uv_faces.append(uvf)
    for i, start in enumerate((n_surface, n_surface + n_eye)):
        faces.append(_grid_faces(start + 1, EYE_LAT - 1, EYE_LON, pole_top=start, pole_bottom=start + n_eye - 1))
        box = (0.02 + 0.25 * i, 0.02, 0.22 + 0.25 * i, 0.22)
        uv, uvf = _grid_uv(EYE_LAT - 1, EYE_LON, box, (True, True))
        uv_faces.append(uvf + sum(len(u) for u in uv_coords))
        uv_coords.append(uv)
    faces_arr = np.concatenate(faces)

    padding = np.zeros((n_v - n_surface, 3, len(SHAPE_NAMES)))
    shapedirs = np.concatenate([shapedirs, padding])
    exprdirs = np.concatenate([_expression_fields(neutral), np.zeros((n_v - n_surface, 3, len(EXPRESSION_NAMES)))])

    is_head = np.r_[~is_neck, np.zeros(2 * n_eye, bool)]
    neck_rows = np.r_[is_neck, np.zeros(2 * n_eye, bool)]
    eye_l = np.r_[np.zeros(n_surface, bool), np.ones(n_eye, bool), np.zeros(n_eye, bool)]
    eye_r = np.r_[np.zeros(n_surface + n_eye, bool), np.ones(n_eye, bool)]
    regressor = np.zeros((5, n_v))
    neck_y = vertices[:, 1]
    regressor[0] = neck_rows & np.isclose(neck_y, NECK_BOTTOM)
    regressor[1] = neck_rows & np.isclose(neck_y, NECK_TOP)
    tmj = is_head & (
        (np.linalg.norm(vertices - [0.07, -0.005, 0.0], axis=1) < 0.015)
        | (np.linalg.norm(vertices - [-0.07, -0.005, 0.0], axis=1) < 0.015))
    regressor[2] = tmj
    regressor[3], regressor[4] = eye_l, eye_r
    regressor /= regressor.sum(1, keepdims=True)

    weights = np.zeros((n_v, 5))
    x, y, z = vertices.T
    jaw = _sigmoid((MOUTH_Y - y) / 0.004) * _sigmoid((z - 0.0) / 0.012) * is_head
    jaw = np.where(jaw < 1e-3, 0.0, jaw)  # local support, as FLAME's weights: the skull does not follow the jaw
    weights[:, 2] = jaw
    weights[:, 1] = is_head * (1 - jaw)
    neck_blend = np.clip((y - NECK_BOTTOM) / (NECK_TOP - NECK_BOTTOM), 0, 1)
    weights[neck_rows, 1] = neck_blend[neck_rows]
    weights[neck_rows, 0] = 1 - neck_blend[neck_rows]
    weights[eye_l, 3] = 1.0
    weights[eye_r, 4] = 1.0

    ears = is_head & (np.abs(x) > 0.065) & (np.abs(y - 0.015) < 0.04) & (np.abs(z + 0.005) < 0.03)
    hair = is_head & ~ears & ((y > 0.075) | ((z < -0.015) & (y > -0.035)) | ((z < 0.02) & (y > 0.045)))
    face = is_head & ~ears & ~hair
    lips = face & (np.abs(x) < 0.025) & (np.abs(y - MOUTH_Y) < 0.0075) & (z > 0.06)
    regions = {name: np.flatnonzero(mask) for name, mask in {
        "face": face, "lips": lips, "hair": hair, "ears": ears, "neck": neck_rows, "eye_l": eye_l, "eye_r": eye_r,
    }.items()}
    landmark_targets = np.asarray(list(LANDMARKS.values()))
    landmark_faces, landmark_bary = _nearest_faces(vertices[:n_surface], faces_arr, landmark_targets)
    return HeadModel(
        name=TEMPLATE_NAME, v_template=vertices, faces=faces_arr, shapedirs=shapedirs, exprdirs=exprdirs,
        J_regressor=regressor, lbs_weights=weights, uv_coords=np.concatenate(uv_coords),
        uv_faces=np.concatenate(uv_faces), landmark_faces=landmark_faces, landmark_bary=landmark_bary,
        landmark_names=tuple(LANDMARKS), regions=regions,
    )
