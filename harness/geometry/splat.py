"""Splatting image features into UV space with bilinear weights, and a density-weighted hole-filling pyramid.

For each covered pixel p with surface uv ``u_p`` and feature ``f_p``: ``U = sum_p w_p B(u_p) f_p`` and
``D = sum_p w_p B(u_p)``, where ``B`` spreads a point over its four nearest texel centres with bilinear weights
(the exact adjoint of ``grid_sample(..., align_corners=False)`` with zero padding: weights falling off the map are
dropped) and ``w_p`` is an optional per-pixel weight such as ``visibility.pixel_confidence``. Everything is
differentiable with respect to the features and weights (``index_add``); on CUDA the sums are accumulated in a
nondeterministic order (float rounding differences only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.geometry.attributes import pixel_uv
from harness.geometry.mesh_raster import MeshRaster
from harness.geometry.uv_raster import HasUVLayout, uv_to_grid


@dataclass
class UVSplat:
    total: torch.Tensor  # (C, R, R), sum of weighted features
    density: torch.Tensor  # (R, R), sum of weights
    normalised: torch.Tensor  # (C, R, R), total / (density + eps)


@dataclass
class UVPyramid:
    filled: torch.Tensor  # (C, R, R), the finest level with holes filled from coarser ones
    coverage: torch.Tensor  # (R, R) in [0, 1], how much of ``filled`` comes from some level's own observations
    normalised: list[torch.Tensor]  # per level (C, R / 2^l, R / 2^l), total / (density + eps)
    density: list[torch.Tensor]  # per level (R / 2^l, R / 2^l), sums of the finer level's 2x2 densities


def bilinear_texel_weights(uv: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat texel indices (N, 4) and bilinear weights (N, 4) of uv points on an R x R map; weight 0 off the map."""
    grid = uv_to_grid(uv, resolution) - 0.5  # texel centres at integers
    base = torch.floor(grid)
    frac = grid - base
    base = base.long()
    fx, fy = frac[:, 0], frac[:, 1]
    offsets = ((0, 0), (1, 0), (0, 1), (1, 1))
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
    ix = torch.stack([base[:, 0] + dx for dx, _ in offsets], -1)
    iy = torch.stack([base[:, 1] + dy for _, dy in offsets], -1)
    inside = (ix >= 0) & (ix < resolution) & (iy >= 0) & (iy < resolution)
    index = iy.clamp(0, resolution - 1) * resolution + ix.clamp(0, resolution - 1)
    return index, weights * inside.to(weights.dtype)


def splat_points(values: torch.Tensor, uv: torch.Tensor, resolution: int, weights: torch.Tensor | None = None,
                 eps: float = 1e-6) -> UVSplat:
    """Splat values (N, C) at uv (N, 2), each weighted by ``weights`` (N,) (default 1), onto an R x R map."""
    index, kernel = bilinear_texel_weights(uv.to(values.dtype), resolution)
    if weights is not None:
        kernel = kernel * weights.to(values.dtype)[:, None]
    flat_index, flat_kernel = index.reshape(-1), kernel.reshape(-1)
    n = resolution * resolution
    total = torch.zeros(n, values.shape[1], dtype=values.dtype, device=values.device).index_add(
        0, flat_index, (values[:, None, :] * kernel[:, :, None]).reshape(-1, values.shape[1]))
    density = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, flat_index, flat_kernel)
    total = total.T.reshape(-1, resolution, resolution)
    density = density.reshape(resolution, resolution)
    return UVSplat(total, density, total / (density + eps))


def splat_to_uv(features: torch.Tensor, raster: MeshRaster, model: HasUVLayout, resolution: int,
                weights: torch.Tensor | None = None, eps: float = 1e-6) -> UVSplat:
    """Splat an image's features (C, H, W) into the UV space of the mesh rasterised in ``raster`` (H x W).

    ``raster`` must be at the features' resolution (rasterise with ``camera.resized(W, H)`` for feature maps
    smaller than the image); ``weights`` (H, W) scales each pixel's contribution.
    """
    if tuple(features.shape[1:]) != tuple(raster.face_ids.shape):
        raise ValueError(f"features are {tuple(features.shape[1:])} (H, W) but the raster is "
                         f"{tuple(raster.face_ids.shape)}")
    covered = raster.mask.reshape(-1).to(features.device)
    uv = pixel_uv(raster, model).reshape(-1, 2).to(features.device)[covered]
    values = features.reshape(features.shape[0], -1)[:, covered].T
    w = None if weights is None else weights.reshape(-1).to(features.device)[covered]
    return splat_points(values, uv, resolution, w, eps)


def splat_pyramid(splat: UVSplat, levels: int = 4, tau: float = 0.5, eps: float = 1e-6) -> UVPyramid:
    """Fill the holes of a splat from coarser levels (R, R/2, R/4, ...), blended by a soft density mask.

    Coarser levels sum the 2x2 totals and densities of the finer one. From the coarsest up, each level keeps its
    own normalised value where it is well observed and takes the upsampled coarser result elsewhere:
    ``filled_l = a_l * normalised_l + (1 - a_l) * up(filled_{l+1})`` with ``a_l = 1 - exp(-density_l / tau)``
    (density 1 is one full pixel's weight). ``levels`` is capped where R stops being divisible by 2.
    """
    totals, densities = [splat.total], [splat.density]
    while len(totals) < levels and totals[-1].shape[-1] % 2 == 0 and totals[-1].shape[-1] > 1:
        totals.append(F.avg_pool2d(totals[-1][None], 2)[0] * 4)
        densities.append(F.avg_pool2d(densities[-1][None, None], 2)[0, 0] * 4)
    normalised = [t / (d + eps) for t, d in zip(totals, densities, strict=True)]
    filled, coverage = fill_from_coarse(normalised, densities, tau)
    return UVPyramid(filled, coverage, normalised, densities)


def fill_from_coarse(values: list[torch.Tensor], weights: list[torch.Tensor],
                     tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend a pyramid (finest first: values (C, R_l, R_l), weights (R_l, R_l)) from the coarsest up:
    ``filled_l = a_l * values_l + (1 - a_l) * up(filled_{l+1})``, ``a_l = 1 - exp(-weights_l / tau)``; returns the
    finest filled level and its coverage in [0, 1]."""
    filled, coverage = values[-1], 1 - torch.exp(-weights[-1] / tau)
    for level in range(len(values) - 2, -1, -1):
        size = values[level].shape[-2:]
        up = F.interpolate(filled[None], size=size, mode="bilinear", align_corners=False)[0]
        up_coverage = F.interpolate(coverage[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        a = 1 - torch.exp(-weights[level] / tau)
        filled = a * values[level] + (1 - a) * up
        coverage = a + (1 - a) * up_coverage
    return filled, coverage
