"""Pixel -> (face id, barycentric, depth): a z-buffer rasteriser of a posed mesh into a ``Camera``.

Conventions: OpenCV cameras (``Camera.world_to_camera``, pixel intrinsics ``K``), pixel ``(x, y)`` has its centre at
``(x + 0.5, y + 0.5)`` as in ``harness.render.cpu``. Depth is camera-space z (metres along the optical axis, as
``Camera.project`` returns), ``inf`` on background. Barycentrics are perspective-correct (weights of the 3D point on
the triangle, not of its projection), in corner order of ``faces``; the nearest depth wins, ties go to the lowest
face id. Both sides of every triangle are drawn unless ``cull_backfaces`` (the template is an open surface).

Triangles with a corner in front of ``near`` are dropped, not clipped: heads are far from the camera.

Face selection runs without gradients (in float64, for watertight coverage of shared edges); the barycentrics and
depth of the winning faces are then recomputed with torch ops in the vertices' dtype, so they are differentiable
with respect to the vertices (piecewise: the face ids themselves are discrete).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.api.types import Camera
from harness.geometry.triangles import DEFAULT_BUDGET, cell_centres, edge_barycentric, nearest_faces


@dataclass(frozen=True)
class MeshRaster:
    face_ids: torch.Tensor  # (H, W) long, -1 on background
    bary: torch.Tensor  # (H, W, 3) perspective-correct, zeros on background
    depth: torch.Tensor  # (H, W) camera-space z, inf on background

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool, pixels whose centre the mesh covers."""
        return self.face_ids >= 0

    @property
    def height(self) -> int:
        return self.face_ids.shape[0]

    @property
    def width(self) -> int:
        return self.face_ids.shape[1]


def camera_matrices(camera: Camera, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 4) world->camera and (3, 3) intrinsics of a camera as tensors."""
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    return as_t(camera.world_to_camera), as_t(camera.K)


def camera_centre(camera: Camera, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
                  ) -> torch.Tensor:
    return torch.as_tensor(camera.center, dtype=dtype, device=device)


def project(points: torch.Tensor, world_to_camera: torch.Tensor, K: torch.Tensor, near: float = 1e-3
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (N, 3) to pixel coordinates (N, 2) and camera-space depth (N,).

    Depth below ``near`` is clamped to ``near`` for the division only, so points behind the camera project to
    finite (meaningless) pixels; callers test the returned depth.
    """
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    pix = (cam @ K.T)[:, :2] / z.clamp_min(near)[:, None]
    return pix, z


def rasterize_mesh(vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, camera: Camera, *,
                   near: float = 1e-3, cull_backfaces: bool = False, eps: float = 1e-7,
                   budget: int = DEFAULT_BUDGET) -> MeshRaster:
    """Z-buffer a mesh (world-space vertices (V, 3), faces (F, 3)) into ``camera``'s image."""
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=vertices.device)
    width, height = int(camera.width), int(camera.height)
    with torch.no_grad():
        w2c, K = camera_matrices(camera, torch.float64, vertices.device)
        pix, z = project(vertices.detach().to(torch.float64), w2c, K, near)
        tri, tri_z = pix[faces_t], z[faces_t]
        valid = (tri_z > near).all(1)
        if cull_backfaces:
            corners = vertices.detach().to(torch.float64)[faces_t]
            normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
            to_camera = camera_centre(camera, torch.float64, vertices.device) - corners[:, 0]
            valid &= (normal * to_camera).sum(-1) > 0
        # Screen-space weights w interpolate 1/z linearly: depth = 1 / sum_k(w_k / z_k).
        face_ids = nearest_faces(tri, lambda f, w: 1 / (w / tri_z[f]).sum(-1), width, height, valid, eps, budget)

    flat = face_ids.reshape(-1)
    covered = torch.nonzero(flat >= 0).squeeze(1)
    w2c, K = camera_matrices(camera, vertices.dtype, vertices.device)
    pix, z = project(vertices, w2c, K, near)
    corners = faces_t[flat[covered]]
    screen, _ = edge_barycentric(cell_centres(covered, width, vertices.dtype), pix[corners])
    inv_z = screen / z[corners]
    inv_depth = inv_z.sum(-1)
    n = width * height
    bary = torch.zeros(n, 3, dtype=vertices.dtype, device=vertices.device).index_put(
        (covered,), inv_z / inv_depth[:, None])
    depth = torch.full((n,), torch.inf, dtype=vertices.dtype, device=vertices.device).index_put(
        (covered,), 1 / inv_depth)
    return MeshRaster(face_ids, bary.reshape(height, width, 3), depth.reshape(height, width))
