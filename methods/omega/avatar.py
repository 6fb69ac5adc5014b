"""Stage C (two Gaussian branches bound to the deformed mesh) and stage D (drive, render, refine).

The avatar is a set of ``BoundGaussians`` in triangle-local terms on the fitted mesh: one per vertex (vertex
branch) and one per covered UV texel (UV branch). Driving re-poses the mesh with new head parameters and the
Gaussians follow their triangles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api.types import Camera
from harness.geometry.mesh_raster import rasterize_mesh
from harness.geometry.uv_raster import texel_uv, uv_raster
from harness.heads.binding import BoundGaussians
from harness.heads.model import HeadModel
from harness.render.renderer import camera_tensors, render
from harness_methods.omega.fusion import FusedUV, fuse_views, splat_view
from harness_methods.omega.networks import NUM_VIEWS, MultiViewNet, Refiner, UVDecoder, VertexBranch, build_encoder

UV_SPLAT_SIZE = 0.6  # Gaussian scale in triangle sizes (a UV-64 texel is about 1.2 triangle sizes on the template)
VERTEX_SPLAT_SIZE = 0.5
VERTEX_OPACITY_BIAS = -3.0  # vertex Gaussians start nearly transparent (the UV branch carries the image's colours)


class OmegaNet(nn.Module):
    def __init__(self, arch: Mapping[str, Any], model: HeadModel) -> None:
        super().__init__()
        self.arch = dict(arch)
        self.mv = MultiViewNet(arch, len(model.landmark_faces))
        self.encoder = build_encoder(arch)
        self.vertex = VertexBranch(arch, len(model.v_template))
        self.uv = UVDecoder(arch)
        self.refiner = Refiner(arch)
        self.gamma_logit = nn.Parameter(torch.zeros(NUM_VIEWS))

    def avatar_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("mv.")]


@dataclass
class MeshBinding:
    """Where the Gaussians of both branches sit on the mesh (fixed per head model and UV resolution)."""

    vertex_faces: torch.Tensor
    vertex_bary: torch.Tensor
    texel_faces: torch.Tensor
    texel_bary: torch.Tensor
    texel_index: torch.Tensor  # flat indices of the covered texels
    uv_grid: torch.Tensor  # (2, R, R) texel uv


def mesh_binding(model: HeadModel, resolution: int) -> MeshBinding:
    faces = np.asarray(model.faces)
    first = np.full(len(model.v_template), -1, dtype=np.int64)
    corner = np.zeros(len(model.v_template), dtype=np.int64)
    for k in (2, 1, 0):  # the first face (lowest id) using each vertex
        order = np.arange(len(faces))[::-1]
        first[faces[order, k]] = order
    for k in range(3):
        corner[faces[first, k] == np.arange(len(first))] = k
    bary = np.eye(3, dtype=np.float32)[corner]
    raster = uv_raster(model, resolution)
    flat = raster.face_ids.reshape(-1)
    index = torch.nonzero(flat >= 0).squeeze(1)
    return MeshBinding(torch.as_tensor(np.maximum(first, 0)), torch.as_tensor(bary), flat[index],
                       raster.bary.reshape(-1, 3)[index].float(), index,
                       texel_uv(resolution).reshape(resolution, resolution, 2).permute(2, 0, 1))


def _decode(raw: torch.Tensor, colour: torch.Tensor | None, size: float, opacity_bias: float) -> dict[str, Any]:
    """Raw decoder channels (N, 14) -> bound-Gaussian attributes."""
    if colour is None:
        rgb = torch.sigmoid(raw[:, 0:3])
    else:
        c = colour.clamp(0.02, 0.98)
        rgb = torch.sigmoid(torch.log(c / (1 - c)) + raw[:, 0:3])
    log_scale = math.log(size) + 0.5 * torch.tanh(raw[:, 4:7]) + torch.tensor([0.0, 0.0, math.log(0.3)])
    quat = F.normalize(torch.tensor([1.0, 0.0, 0.0, 0.0]) + 0.2 * raw[:, 7:11], dim=-1)
    return {"rgb": rgb, "opacity_logits": raw[:, 3] + opacity_bias, "log_scales": log_scale, "quats": quat,
            "offsets": 0.2 * torch.tanh(raw[:, 11:14])}


@dataclass
class AvatarGaussians:
    head: BoundGaussians  # sh holds the RGB colour as (N, 1, 3) (rendered as features, not SH)
    fused: FusedUV | None = None


def build_gaussians(net: OmegaNet, model: HeadModel, binding: MeshBinding, images: torch.Tensor,
                    cameras: Sequence[Camera], vertices: torch.Tensor, visibility_fusion: bool = True,
                    views: Sequence[int] | None = None) -> AvatarGaussians:
    """Stage C. ``images`` (K, 3, R, R) on white in ``cameras`` (R x R), view 0 the frontal; ``vertices`` the
    fitted (or, in training, the ground-truth) mesh in world space; ``views``: which of the K views the UV branch
    uses (default all; the single-view ablation passes [0])."""
    arch = net.arch
    resolution = int(arch["uv_resolution"])
    feats, tokens = net.encoder(images)
    use = list(range(len(cameras))) if views is None else list(views)
    splats = []
    with torch.no_grad():
        rasters = [rasterize_mesh(vertices.detach(), model.faces, cameras[k]) for k in use]
    for k, raster in zip(use, rasters, strict=True):
        values = torch.cat([images[k], feats[k]], 0)
        splats.append(splat_view(values, raster, vertices.detach(), model.faces, cameras[k], model, resolution))
    gamma = F.softplus(net.gamma_logit[use] + 0.5413)  # softplus(0.5413) = 1
    fused = fuse_views(splats, gamma, int(arch["uv_levels"]), float(arch["density_tau"]), visibility_fusion)
    uv_input = torch.cat([fused.filled, fused.coverage[None], binding.uv_grid * 2 - 1], 0)
    raw_uv = net.uv(uv_input).flatten(1)[:, binding.texel_index].T
    colour = fused.filled[:3].flatten(1)[:, binding.texel_index].T
    uv = _decode(raw_uv, colour, UV_SPLAT_SIZE, 2.0)
    vert = _decode(net.vertex(tokens[0]), None, VERTEX_SPLAT_SIZE, VERTEX_OPACITY_BIAS)
    cat = lambda key: torch.cat([vert[key], uv[key]], 0)  # noqa: E731
    head = BoundGaussians(
        face_ids=torch.cat([binding.vertex_faces, binding.texel_faces]),
        bary=torch.cat([binding.vertex_bary, binding.texel_bary]),
        local_offsets=cat("offsets"), local_quats=cat("quats"), log_scales=cat("log_scales"),
        opacity_logits=cat("opacity_logits"), sh=cat("rgb")[:, None, :])
    return AvatarGaussians(head, fused)


def render_raw(head: BoundGaussians, vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[Camera]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw render on white: rgb (C, 3, H, W), alpha (C, 1, H, W)."""
    g = head.place(vertices, faces)
    viewmats, Ks, width, height = camera_tensors(cameras)
    out = render(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"][:, 0], viewmats, Ks, width, height,
                 backgrounds=torch.ones(len(cameras), 3))
    return out.rgb.permute(0, 3, 1, 2), out.alpha.permute(0, 3, 1, 2)


def render_refined(net: OmegaNet, head: BoundGaussians, vertices: torch.Tensor, faces: torch.Tensor,
                   camera: Camera, render_scale: float, refine: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage D for one target: raw render at ``render_scale`` of the target size, upsampled, refined.

    Returns refined rgb (3, H, W), alpha (1, H, W) and the upsampled raw rgb (3, H, W)."""
    w = max(8, round(camera.width * render_scale))
    h = max(8, round(camera.height * render_scale))
    rgb, alpha = render_raw(head, vertices, faces, [camera.resized(w, h)])
    size = (camera.height, camera.width)
    rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
    alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
    refined = net.refiner(rgb, alpha) if refine else rgb
    return refined[0], alpha[0], rgb[0]
