"""Attribute maps: vertex values interpolated into UV space or into an image, and UV maps read back at the mesh.

Vertex values go through ``faces`` (one value per 3D vertex, so both sides of a seam agree); uv coordinates go
through ``uv_faces``. UV maps are (D, R, R) with the texel convention of ``harness.geometry.uv_raster``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.geometry.mesh_raster import MeshRaster
from harness.geometry.uv_raster import HasUVLayout, UVRaster, uv_raster


def interpolate(values: torch.Tensor, faces: np.ndarray | torch.Tensor, face_ids: torch.Tensor,
                bary: torch.Tensor) -> torch.Tensor:
    """Values (V, D) at (face, barycentric) points: face_ids (...,), bary (..., 3) -> (..., D); 0 where face < 0."""
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=values.device)
    face_ids = face_ids.to(values.device)
    hit = face_ids >= 0
    corners = faces_t[face_ids.clamp_min(0)]  # (..., 3)
    out = (values[corners] * bary.to(device=values.device, dtype=values.dtype)[..., None]).sum(-2)
    return out * hit[..., None].to(values.dtype)


def uv_attribute_map(values: torch.Tensor, model: HasUVLayout, resolution: int,
                     raster: UVRaster | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertex values (V, D) rasterised into UV space: a (D, R, R) map (0 outside the charts) and its (R, R) mask."""
    raster = (raster or uv_raster(model, resolution)).to(values.device)
    attribute = interpolate(values, model.faces, raster.face_ids, raster.bary)
    return attribute.permute(2, 0, 1), raster.mask


def pixel_uv(raster: MeshRaster, model: HasUVLayout) -> torch.Tensor:
    """(H, W, 2) uv of the surface point seen at each pixel (0 on background), looked up through ``uv_faces``."""
    uv = torch.as_tensor(np.asarray(model.uv_coords), dtype=raster.bary.dtype, device=raster.bary.device)
    return interpolate(uv, model.uv_faces, raster.face_ids, raster.bary)


def dilate_uv_map(uv_map: torch.Tensor, mask: torch.Tensor, iterations: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow a (D, R, R) map into uncovered texels by the mean of covered 3x3 neighbours, ``iterations`` times.

    The gutter that bilinear reads at chart borders need: without it, sampling near a border mixes in texels no
    triangle covers. Covered texels keep their values. Returns the map and its grown mask.
    """
    out, grown = uv_map, mask.to(uv_map.dtype)[None]
    for _ in range(iterations):
        total = F.avg_pool2d((out * grown)[None], 3, stride=1, padding=1, count_include_pad=False)[0]
        weight = F.avg_pool2d(grown[None], 3, stride=1, padding=1, count_include_pad=False)[0]
        fill = (grown == 0) & (weight > 0)
        out = torch.where(fill, total / weight.clamp_min(1e-12), out)
        grown = torch.where(fill, torch.ones_like(grown), grown)
    return out, grown[0] > 0


def sample_uv_map(uv_map: torch.Tensor, uv: torch.Tensor, mask: torch.Tensor | None = None,
                  dilate: int = 2) -> torch.Tensor:
    """Bilinear read of a (D, R, R) map at uv (N, 2) -> (N, D) (``grid_sample``, ``align_corners=False``, border).

    With ``mask`` the read only uses covered texels: the map is first dilated by ``dilate`` texels, then the
    bilinear weights are renormalised over the (grown) mask; where none of the four texels is covered the result
    is 0.
    """
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1).to(uv_map.dtype)[None, :, None, :]

    def read(image: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, :, 0]

    if mask is None:
        return read(uv_map).T
    grown_map, grown = dilate_uv_map(uv_map, mask.to(uv_map.device), dilate)
    weight = grown.to(uv_map.dtype)[None]
    total, norm = read(grown_map * weight), read(weight)
    return (total / norm.clamp_min(1e-12) * (norm > 1e-12)).T


def vertex_uv_corners(model: HasUVLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct (vertex, uv index) pairs of a layout: a seam vertex appears once per uv it has."""
    pairs = np.unique(np.stack([np.asarray(model.faces).reshape(-1), np.asarray(model.uv_faces).reshape(-1)], 1),
                      axis=0)
    return torch.as_tensor(pairs[:, 0], dtype=torch.int64), torch.as_tensor(pairs[:, 1], dtype=torch.int64)


def sample_uv_map_at_vertices(uv_map: torch.Tensor, model: HasUVLayout, mask: torch.Tensor | None = None,
                              dilate: int = 2, num_vertices: int | None = None) -> torch.Tensor:
    """A (D, R, R) map read back at each vertex -> (V, D): the mean over the vertex's uv coordinates.

    ``num_vertices`` defaults to the largest vertex index in ``faces`` + 1; vertices no face uses get 0.
    """
    vertex, uv_index = vertex_uv_corners(model)
    uv = torch.as_tensor(np.asarray(model.uv_coords), dtype=uv_map.dtype, device=uv_map.device)[uv_index]
    samples = sample_uv_map(uv_map, uv, mask, dilate)
    vertex = vertex.to(uv_map.device)
    if num_vertices is None:
        num_vertices = int(vertex.max()) + 1 if len(vertex) else 0
    total = torch.zeros(num_vertices, uv_map.shape[0], dtype=uv_map.dtype, device=uv_map.device)
    total = total.index_add(0, vertex, samples)
    count = torch.zeros(num_vertices, dtype=uv_map.dtype, device=uv_map.device).index_add(
        0, vertex, torch.ones_like(vertex, dtype=uv_map.dtype))
    return total / count.clamp_min(1)[:, None]
