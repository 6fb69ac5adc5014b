"""Stage C's UV branch input: image features of the k views splatted into UV and fused by visibility.

Per view k and pyramid level l (level 0 the finest; each coarser level sums 2 x 2 texels of the finer one):

    U_kl = sum_p B(u_p) f_p,  D_kl = sum_p B(u_p)           bilinear splatting (``harness.geometry.splat``)
    C_kl = sum_p B(u_p) max(0, n_p . v_k) / (D_kl + eps)     visibility confidence: the mean facing of the pixels
                                                             that landed there (in [0, 1]; 0 for back-facing ones)
    W_kl = gamma_k C_kl D_kl                                  gamma_k: a learned weight per SOAP view
    F_l  = sum_k W_kl (U_kl / D_kl) / (sum_k W_kl + eps)

The paper writes C_k = sum_p B(u_p) max(0, n . v); we normalise it by the density so that W = gamma C D is the
density times the mean facing (without the normalisation W would count the density twice). Density-only fusion
(the ablation) sets C = 1. Holes are filled coarse to fine through the soft density mask of the fused weights,
a_l = 1 - exp(-sum_k W_kl / tau): ``F'_l = a_l F_l + (1 - a_l) up(F'_{l+1})``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.api.types import Camera
from harness.geometry.mesh_raster import MeshRaster
from harness.geometry.splat import fill_from_coarse, splat_to_uv
from harness.geometry.uv_raster import HasUVLayout
from harness.geometry.visibility import pixel_confidence


@dataclass
class ViewSplat:
    total: torch.Tensor  # (C, R, R) sum_p B f_p
    density: torch.Tensor  # (R, R) sum_p B
    confidence_total: torch.Tensor  # (R, R) sum_p B max(0, n . v)


@dataclass
class FusedUV:
    filled: torch.Tensor  # (C, R, R) the finest level, holes filled from coarser ones
    coverage: torch.Tensor  # (R, R) in [0, 1]
    levels: list[torch.Tensor]  # fused F_l per level, before filling
    weights: list[torch.Tensor]  # sum_k W_kl per level


def splat_view(features: torch.Tensor, raster: MeshRaster, vertices: torch.Tensor, faces: np.ndarray,
               camera: Camera, model: HasUVLayout, resolution: int) -> ViewSplat:
    """Splat one view's features (C, H, W) (the raster and camera at H x W) and its n . v confidence into UV."""
    splat = splat_to_uv(features, raster, model, resolution)
    confidence = pixel_confidence(raster, vertices, faces, camera)
    conf = splat_to_uv(confidence[None].to(features.dtype), raster, model, resolution)
    return ViewSplat(splat.total, splat.density, conf.total[0])


def view_confidence(view: ViewSplat, eps: float = 1e-6) -> torch.Tensor:
    """C_k (R, R): the mean facing of what landed on each texel, 0 where nothing did."""
    return view.confidence_total / (view.density + eps)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x[None], 2)[0] * 4


def fuse_views(views: list[ViewSplat], gamma: torch.Tensor, levels: int = 3, tau: float = 0.5,
               use_confidence: bool = True, eps: float = 1e-6) -> FusedUV:
    """Fuse k view splats with W_kl = gamma_k C_kl D_kl (C = 1 when ``use_confidence`` is False)."""
    totals = torch.stack([v.total for v in views])  # (K, C, R, R)
    densities = torch.stack([v.density for v in views])  # (K, R, R)
    conf = torch.stack([v.confidence_total for v in views])
    pyramid = [(totals, densities, conf)]
    while len(pyramid) < levels and pyramid[-1][1].shape[-1] % 2 == 0 and pyramid[-1][1].shape[-1] > 1:
        t, d, c = pyramid[-1]
        pyramid.append((torch.stack([_pool(x) for x in t]), _pool(d), _pool(c)))
    fused, weights = [], []
    g = gamma.reshape(-1, 1, 1).to(totals.dtype)
    for t, d, c in pyramid:
        normalised = t / (d + eps)[:, None]
        confidence = c / (d + eps) if use_confidence else torch.ones_like(d)
        w = g * confidence * d
        fused.append((w[:, None] * normalised).sum(0) / (w.sum(0) + eps))
        weights.append(w.sum(0))
    filled, coverage = fill_from_coarse(fused, weights, tau)
    return FusedUV(filled, coverage, fused, weights)
