"""Stage B, semantic-aware mesh deformation: head-model shape, expression and pose plus per-vertex offsets fitted to
the generated views.

    L = w_normal L_nml + w_landmark L_lmk + w_symmetry L_sym + w_laplacian L_lap

- ``L_nml``: squared difference between the mesh's camera-space normals (z-buffer rasterised, interpolated vertex
  normals) and the generated normal maps, over pixels the generator marks as head whose surface is **not** a face
  region (face, lips, eyes): the face keeps the head model's shape and the landmarks' fit.
- ``L_lmk``: the head model's landmarks projected into the input camera against the landmarks stage A predicts
  (normalised image coordinates); ``L_sym``: the canonical (unposed, identity-shaped) landmarks are mirror-symmetric
  (each ``*_l``/``*_r`` pair reflects onto the other across x = 0).
- ``L_lap = sum_i w_i || d_i - mean_{j in N(i)} d_j ||^2 / sum_i w_i`` on the offsets d, the neighbour *mean*
  (the paper writes a sum), with large w_i on hair, ears and neck and small w_i on the face.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.api.types import Camera
from harness.geometry.mesh_raster import rasterize_mesh
from harness.geometry.visibility import surface_normals
from harness.heads.model import HeadModel, HeadParams, deform, landmarks_from
from harness_methods.omega.config import FACE_REGIONS

HAIR_REGIONS = ("hair", "ears", "neck")


def neighbour_mean_matrix(faces: np.ndarray, num_vertices: int) -> torch.Tensor:
    """Sparse (V, V) matrix M with (M x)_i the mean of x over the mesh neighbours of vertex i."""
    f = np.asarray(faces, dtype=np.int64)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges = np.unique(np.sort(edges, 1), axis=0)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    degree = np.bincount(rows, minlength=num_vertices).astype(np.float64)
    values = 1.0 / np.maximum(degree[rows], 1)
    index = torch.as_tensor(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(index, torch.as_tensor(values, dtype=torch.float32), (num_vertices, num_vertices),
                                   check_invariants=True).coalesce()


def weighted_laplacian(x: torch.Tensor, mean_matrix: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i || x_i - mean(neighbours of i) ||^2 / sum_i w_i for x (V, 3)."""
    delta = x - torch.sparse.mm(mean_matrix, x)
    return (weights * (delta ** 2).sum(1)).sum() / weights.sum()


def laplacian_weights(model: HeadModel, hair: float, face: float) -> torch.Tensor:
    """w_i: ``hair`` on hair/ears/neck (and vertices of no region: the boundary), ``face`` on the face regions."""
    w = np.full(len(model.v_template), hair, dtype=np.float32)
    for name in FACE_REGIONS:
        if name in model.regions:
            w[np.asarray(model.regions[name])] = face
    return torch.as_tensor(w)


def symmetric_pairs(model: HeadModel) -> list[tuple[int, int]]:
    """Landmark index pairs (left, right) by name: ``*_l*``/``*_r*`` with the rest of the name equal."""
    names = list(model.landmark_names)
    pairs = []
    for i, name in enumerate(names):
        for tag_l, tag_r in (("_l", "_r"), ("_left", "_right")):
            if tag_l + "_" in name + "_" or name.endswith(tag_l):
                other = name.replace(tag_l, tag_r, 1)
                if other in names and other != name:
                    pairs.append((i, names.index(other)))
                    break
    return sorted(set(pairs))


def nonface_faces(model: HeadModel) -> torch.Tensor:
    """(F,) bool, faces outside the face regions (where the normal loss applies)."""
    regions = model.face_regions()
    return torch.as_tensor(~np.isin(regions, FACE_REGIONS))


@dataclass
class TorchParams:
    """Head parameters as tensors, so ``deform`` is differentiable with respect to them."""

    shape: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    jaw: torch.Tensor
    neck: torch.Tensor
    eyes: torch.Tensor
    scale: float = 1.0

    @classmethod
    def from_params(cls, p: HeadParams) -> TorchParams:
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32).clone()  # noqa: E731
        return cls(t(p.shape), t(p.expression), t(p.rotation), t(p.translation), t(p.jaw), t(p.neck), t(p.eyes),
                   float(p.scale))

    def head_params(self) -> HeadParams:
        n = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
        return HeadParams(n(self.shape), n(self.expression), n(self.rotation), n(self.translation), self.scale,
                          n(self.jaw), n(self.neck), n(self.eyes))

    def as_head_params_t(self) -> HeadParams:
        return HeadParams(self.shape, self.expression, self.rotation, self.translation, self.scale, self.jaw,
                          self.neck, self.eyes)  # type: ignore[arg-type]


def posed(model: HeadModel, params: HeadParams | TorchParams, offsets: torch.Tensor | None = None) -> Any:
    """``deform`` with per-vertex offsets (model space, added to the template before blendshapes and skinning)."""
    if isinstance(params, TorchParams):
        params = params.as_head_params_t()
    if offsets is not None:
        template = torch.as_tensor(model.v_template, dtype=torch.float32) + offsets
        model = dataclasses.replace(model, v_template=template)  # type: ignore[arg-type]
    return deform(model, params)


def canonical_landmarks(model: HeadModel, shape: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(model.v_template, dtype=torch.float32) + offsets
    v = v + torch.as_tensor(model.shapedirs, dtype=torch.float32) @ shape
    return landmarks_from(model, v)


def symmetry_loss(landmarks: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    if not pairs:
        return landmarks.sum() * 0
    left, right = zip(*pairs, strict=True)
    mirrored = landmarks[list(right)] * torch.tensor([-1.0, 1.0, 1.0])
    return ((landmarks[list(left)] - mirrored) ** 2).sum(1).mean()


def project_normalised(points: torch.Tensor, camera: Camera) -> torch.Tensor:
    w2c = torch.as_tensor(camera.world_to_camera, dtype=points.dtype)
    K = torch.as_tensor(camera.K, dtype=points.dtype)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pix = (cam @ K.T)[:, :2] / cam[:, 2:3].clamp_min(1e-3)
    return pix / torch.tensor([camera.width, camera.height], dtype=points.dtype)


def camera_normals(vertices: torch.Tensor, faces: np.ndarray, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space normals (H, W, 3) of the z-buffered mesh and its face ids (H, W)."""
    raster = rasterize_mesh(vertices, faces, camera)
    normals = surface_normals(vertices, faces, raster.face_ids, raster.bary)
    R = torch.as_tensor(camera.world_to_camera[:3, :3], dtype=vertices.dtype)
    return normals @ R.T, raster.face_ids


@dataclass
class FitResult:
    params: HeadParams
    offsets: torch.Tensor  # (V, 3) model space
    losses: dict[str, float]


def fit_head(model: HeadModel, init: HeadParams, input_camera: Camera, landmarks: torch.Tensor,
             normals: torch.Tensor, alphas: torch.Tensor, cameras: Sequence[Camera], config: Mapping[str, Any],
             cache: dict[str, Any] | None = None) -> FitResult:
    """Fit shape/expression/pose/offsets. ``landmarks`` (L, 2) normalised in ``input_camera``; ``normals``
    (K, 3, R, R) and ``alphas`` (K, R, R) generated in ``cameras`` (at R x R)."""
    cache = cache if cache is not None else {}
    if "mean_matrix" not in cache:
        cache["mean_matrix"] = neighbour_mean_matrix(model.faces, len(model.v_template))
        cache["lap_weights"] = laplacian_weights(model, float(config["laplacian_hair"]),
                                                 float(config["laplacian_face"]))
        cache["nonface"] = nonface_faces(model)
        cache["pairs"] = symmetric_pairs(model)
    p = TorchParams.from_params(init)
    raw_offsets = torch.zeros(len(model.v_template), 3)
    learned = [p.shape, p.expression, p.rotation, p.translation, p.jaw, raw_offsets]
    for x in learned:
        x.requires_grad_(True)
    lr = float(config["fit_lr"])
    optimiser = torch.optim.Adam([{"params": [p.shape, p.expression, p.jaw], "lr": lr * 10},
                                  {"params": [p.rotation], "lr": lr},
                                  {"params": [p.translation], "lr": lr * 0.3},
                                  {"params": [raw_offsets], "lr": lr * 0.1}])
    limit = float(config["offset_limit"])
    target_mask = alphas > 0.5
    losses: dict[str, float] = {}
    faces = model.faces
    for _ in range(int(config["fit_steps"])):
        offsets = limit * torch.tanh(raw_offsets / limit)
        head = posed(model, p, offsets)
        l_lmk = ((project_normalised(head.landmarks, input_camera) - landmarks) ** 2).sum(1).mean() * 1e3
        l_sym = symmetry_loss(canonical_landmarks(model, p.shape, offsets), cache["pairs"]) * 1e3
        l_nml = head.vertices.sum() * 0
        for k, camera in enumerate(cameras):
            rendered, face_ids = camera_normals(head.vertices, faces, camera)
            use = (face_ids >= 0) & target_mask[k]
            use &= cache["nonface"][face_ids.clamp_min(0)]
            if use.any():
                l_nml = l_nml + ((rendered - normals[k].permute(1, 2, 0)) ** 2).sum(-1)[use].mean() / len(cameras)
        l_lap = weighted_laplacian(offsets, cache["mean_matrix"], cache["lap_weights"]) * 1e4
        l_reg = 1e-3 * ((p.shape ** 2).sum() + (p.expression ** 2).sum())
        loss = (float(config["w_normal"]) * l_nml + float(config["w_landmark"]) * l_lmk
                + float(config["w_symmetry"]) * l_sym + float(config["w_laplacian"]) * l_lap + l_reg)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses = {"normal": float(l_nml.detach()), "landmark": float(l_lmk.detach()), "symmetry": float(l_sym.detach()),
                  "laplacian": float(l_lap.detach()), "loss": float(loss.detach())}
    for x in learned:
        x.requires_grad_(False)
    offsets = (limit * torch.tanh(raw_offsets / limit)).detach()
    return FitResult(p.head_params(), offsets, losses)
