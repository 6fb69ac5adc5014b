"""Texel -> (face id, barycentric) for a mesh's UV layout, cached per (layout hash, resolution).

Texel convention (used by every UV map in ``harness.geometry``): a UV map of resolution R is an R x R grid, row
``j``, column ``i``; the texel centre is at ``u = (i + 0.5) / R``, ``v = 1 - (j + 0.5) / R``. Row 0 is the top of
the image, at v near 1 (image convention, as textures are stored), so ``grid_sample`` reads a map at uv with the
normalised coordinates ``(2u - 1, 1 - 2v)`` and ``align_corners=False``.

Barycentrics are in corner order: weight ``k`` belongs to ``uv_faces[f, k]`` for the uv lookup and to
``faces[f, k]`` for vertex attributes (the same corner), summing to 1, as ``harness.heads.model.surface_points``.
UV lookups always go through ``uv_faces``: at a seam one vertex has several uv coordinates.

Where two UV triangles cover a texel centre (only on shared edges, or where charts overlap), the one with the
largest minimum barycentric wins (the texel is deepest inside it), then the lowest face id. Zero-area UV triangles
(collapsed pole fans) cover nothing, so they never produce NaN barycentrics.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from harness.geometry.triangles import DEFAULT_BUDGET, cell_centres, edge_barycentric, nearest_faces

CACHE_SIZE = 16


class HasUVLayout(Protocol):
    """What the UV functions need of a mesh: a ``HeadModel`` has these, so does ``UVLayout``."""

    @property
    def faces(self) -> np.ndarray: ...  # (F, 3) vertex indices

    @property
    def uv_coords(self) -> np.ndarray: ...  # (Vt, 2) in [0, 1]

    @property
    def uv_faces(self) -> np.ndarray: ...  # (F, 3) indices into uv_coords


@dataclass(frozen=True)
class UVLayout:
    """A UV layout as plain arrays, for meshes that are not head models (toy meshes in tests)."""

    faces: np.ndarray
    uv_coords: np.ndarray
    uv_faces: np.ndarray


@dataclass(frozen=True)
class UVRaster:
    """Which face and where in it each texel centre lies. Cached instances are shared: do not modify in place."""

    face_ids: torch.Tensor  # (R, R) long, -1 for texels no UV triangle covers
    bary: torch.Tensor  # (R, R, 3) float32, zeros where uncovered

    @property
    def resolution(self) -> int:
        return self.face_ids.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """(R, R) bool, texels inside some UV triangle."""
        return self.face_ids >= 0

    def to(self, device: torch.device | str) -> UVRaster:
        return UVRaster(self.face_ids.to(device), self.bary.to(device))


def texel_uv(resolution: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
             ) -> torch.Tensor:
    """(R, R, 2) uv of each texel centre (row 0 at v near 1)."""
    centres = (torch.arange(resolution, dtype=dtype, device=device) + 0.5) / resolution
    v, u = torch.meshgrid(1 - centres, centres, indexing="ij")
    return torch.stack([u, v], -1)


def uv_to_grid(uv: torch.Tensor, resolution: int) -> torch.Tensor:
    """uv (..., 2) to grid units of an R x R map (cell centres at integer + 0.5, y down the rows)."""
    return torch.stack([uv[..., 0] * resolution, (1 - uv[..., 1]) * resolution], -1)


def uv_layout_hash(model: HasUVLayout) -> str:
    """Short sha256 of a UV layout (faces, uv_coords, uv_faces), for cache keys and for checkpoints to record.

    Arrays are hashed in canonical dtypes (little-endian int64, float64) with their shapes, so the same layout
    hashes the same whatever dtype it was loaded in. ``faces`` is included because face ids index both.
    """
    digest = hashlib.sha256()
    for name, array, dtype in (("faces", model.faces, "<i8"), ("uv_coords", model.uv_coords, "<f8"),
                               ("uv_faces", model.uv_faces, "<i8")):
        canonical = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        digest.update(f"{name}:{canonical.shape};".encode())
        digest.update(canonical.tobytes())
    return digest.hexdigest()[:16]


def rasterize_uv(uv_coords: np.ndarray | torch.Tensor, uv_faces: np.ndarray | torch.Tensor, resolution: int,
                 eps: float = 1e-7, budget: int = DEFAULT_BUDGET) -> UVRaster:
    """Rasterise a UV layout at R x R texels (uncached; see ``uv_raster`` for the cached form, kept on the CPU).

    Runs on the device of ``uv_coords`` when it is a tensor.
    """
    if len(uv_faces) == 0:
        raise ValueError("this mesh has no UV layout (uv_faces is empty)")
    uv = torch.as_tensor(uv_coords, dtype=torch.float64)
    uvf = torch.as_tensor(uv_faces, dtype=torch.int64, device=uv.device)
    tri = uv_to_grid(uv, resolution)[uvf]  # (F, 3, 2)
    # Score 1 - min barycentric (in [2/3, 1 + eps]): the texel deepest inside a triangle wins.
    face_ids = nearest_faces(tri, lambda _faces, bary: 1 - bary.amin(-1), resolution, resolution, eps=eps,
                             budget=budget)
    flat = face_ids.reshape(-1)
    covered = torch.nonzero(flat >= 0).squeeze(1)
    bary = torch.zeros(resolution * resolution, 3, dtype=torch.float64, device=uv.device)
    points = cell_centres(covered, resolution, torch.float64)
    bary[covered], _ = edge_barycentric(points, tri[flat[covered]])
    return UVRaster(face_ids, bary.to(torch.float32).reshape(resolution, resolution, 3))


_cache: OrderedDict[tuple[str, int], UVRaster] = OrderedDict()
_cache_lock = threading.Lock()


def uv_raster(model: HasUVLayout, resolution: int) -> UVRaster:
    """The cached ``rasterize_uv`` of a model's layout (in memory, the ``CACHE_SIZE`` latest (hash, R) pairs)."""
    key = (uv_layout_hash(model), int(resolution))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    raster = rasterize_uv(model.uv_coords, model.uv_faces, resolution)
    with _cache_lock:
        _cache[key] = raster
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return raster


def clear_uv_raster_cache() -> None:
    with _cache_lock:
        _cache.clear()
