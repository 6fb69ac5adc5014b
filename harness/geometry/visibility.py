"""Visibility of vertices, texels and pixels in a camera: the z-buffer depth test and the facing test.

A surface point x with unit normal n is visible when it lies in the image in front of ``near``, passes the depth
test against the z-buffer at its pixel (its depth at most ``(1 + depth_tol)`` times the nearest depth there, or
the z-buffer shows its own face there, or the pixel centre misses the mesh, as on the silhouette), and faces the
camera: ``n . v > 0`` with ``v`` the unit direction from x to the camera centre. The relative tolerance absorbs
that a point is compared with the depth at its pixel's centre, up to 0.7 px away on the surface.

Normals are area-weighted vertex normals, interpolated and renormalised at surface points (smooth, as a feature
confidence wants), oriented by the faces' winding: ``cross(b - a, c - a)``.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.api.types import Camera
from harness.geometry.attributes import interpolate
from harness.geometry.mesh_raster import MeshRaster, camera_centre, camera_matrices, project, rasterize_mesh
from harness.geometry.uv_raster import UVRaster

DEPTH_TOL = 0.01


def face_normals(vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, unit: bool = True) -> torch.Tensor:
    """(F, 3) face normals; with ``unit=False`` their length is twice the face area."""
    corners = vertices[torch.as_tensor(faces, dtype=torch.int64, device=vertices.device)]
    normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    return torch.nn.functional.normalize(normal, dim=-1) if unit else normal


def vertex_normals(vertices: torch.Tensor, faces: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(V, 3) area-weighted unit vertex normals (zero for vertices no face uses)."""
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=vertices.device)
    weighted = face_normals(vertices, faces_t, unit=False)
    total = torch.zeros_like(vertices).index_add(0, faces_t.reshape(-1), weighted.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(total, dim=-1)


def surface_normals(vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, face_ids: torch.Tensor,
                    bary: torch.Tensor) -> torch.Tensor:
    """Interpolated unit vertex normals at (face, barycentric) points (..., 3); zero where face < 0."""
    normals = interpolate(vertex_normals(vertices, faces), faces, face_ids, bary)
    return torch.nn.functional.normalize(normals, dim=-1)


def facing(points: torch.Tensor, normals: torch.Tensor, camera: Camera) -> torch.Tensor:
    """``n . v`` per point (..., ): cosine between the normal and the direction to the camera centre."""
    to_camera = camera_centre(camera, points.dtype, points.device) - points
    return (normals * torch.nn.functional.normalize(to_camera, dim=-1)).sum(-1)


def depth_test(points: torch.Tensor, raster: MeshRaster, camera: Camera, depth_tol: float = DEPTH_TOL,
               face_ids: torch.Tensor | None = None, near: float = 1e-3) -> torch.Tensor:
    """(N,) bool: the points (N, 3) project into the image, in front of ``near``, and are not occluded.

    With ``face_ids`` (N,) (the face each point lies on), a pixel showing that face passes whatever the depth.
    """
    w2c, K = camera_matrices(camera, points.dtype, points.device)
    pix, z = project(points, w2c, K, near)
    ix, iy = torch.floor(pix[:, 0]).long(), torch.floor(pix[:, 1]).long()
    inside = (z > near) & (ix >= 0) & (ix < raster.width) & (iy >= 0) & (iy < raster.height)
    ix, iy = ix.clamp(0, raster.width - 1), iy.clamp(0, raster.height - 1)
    zbuf = raster.depth.to(points.device)[iy, ix]
    passes = z <= zbuf * (1 + depth_tol)  # inf on background: a silhouette point passes
    if face_ids is not None:
        passes |= raster.face_ids.to(points.device)[iy, ix] == face_ids.to(points.device)
    return inside & passes


def vertex_visibility(vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, camera: Camera,
                      raster: MeshRaster | None = None, depth_tol: float = DEPTH_TOL) -> torch.Tensor:
    """(V,) bool, each vertex visible in ``camera`` (``raster`` is the mesh's z-buffer there, made if not given)."""
    with torch.no_grad():
        raster = raster or rasterize_mesh(vertices, faces, camera)
        front = facing(vertices, vertex_normals(vertices, faces), camera) > 0
        return front & depth_test(vertices, raster, camera, depth_tol)


def texel_visibility(texels: UVRaster, vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, camera: Camera,
                     raster: MeshRaster | None = None, depth_tol: float = DEPTH_TOL) -> torch.Tensor:
    """(R, R) bool, the surface point of each covered texel visible in ``camera``; False outside the charts."""
    with torch.no_grad():
        raster = raster or rasterize_mesh(vertices, faces, camera)
        texels = texels.to(vertices.device)
        flat_faces = texels.face_ids.reshape(-1)
        covered = torch.nonzero(flat_faces >= 0).squeeze(1)
        face_ids, bary = flat_faces[covered], texels.bary.reshape(-1, 3)[covered]
        points = interpolate(vertices, faces, face_ids, bary)
        front = facing(points, surface_normals(vertices, faces, face_ids, bary), camera) > 0
        visible = front & depth_test(points, raster, camera, depth_tol, face_ids)
        out = torch.zeros(flat_faces.shape, dtype=torch.bool, device=vertices.device)
        out[covered] = visible
        return out.reshape(texels.face_ids.shape)


def pixel_confidence(raster: MeshRaster, vertices: torch.Tensor, faces: np.ndarray | torch.Tensor,
                     camera: Camera) -> torch.Tensor:
    """(H, W) ``max(0, n_p . v_p)`` at each covered pixel's surface point, 0 on background.

    Differentiable with respect to the vertices (through the raster's barycentrics and the normals).
    """
    points = interpolate(vertices, faces, raster.face_ids, raster.bary)
    normals = surface_normals(vertices, faces, raster.face_ids, raster.bary)
    return facing(points, normals, camera).clamp_min(0) * raster.mask.to(vertices.dtype)
