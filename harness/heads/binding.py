"""Gaussians bound to a head mesh's triangles, so they follow its shape, expression and pose.

Each Gaussian lives in its triangle's local frame (as in GaussianAvatars): a point given by barycentric
coordinates, an offset and a rotation expressed in the frame (edge, in-plane perpendicular, normal), and a scale
multiplied by the triangle's size, so when the mesh deforms the Gaussians move, turn and stretch with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.heads.model import surface_points


@dataclass(frozen=True)
class SurfaceSamples:
    face_ids: np.ndarray  # (N,)
    bary: np.ndarray  # (N, 3)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator,
                   face_mask: np.ndarray | None = None) -> SurfaceSamples:
    """``count`` points spread over the surface by area (stratified: each triangle gets its expected share)."""
    v = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    if face_mask is not None:
        area = area * face_mask
    expected = count * area / area.sum()
    per_face = np.floor(expected).astype(np.int64)
    remainder = count - per_face.sum()
    if remainder > 0:
        leftover = expected - per_face
        extra = rng.choice(len(faces), size=remainder, replace=False, p=leftover / leftover.sum())
        per_face[extra] += 1
    face_ids = np.repeat(np.arange(len(faces)), per_face)
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    return SurfaceSamples(face_ids, bary)


def triangle_frames(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-triangle orthonormal frames (F, 3, 3) with columns (edge, perpendicular, normal) and sizes (F,)."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    edge = torch.nn.functional.normalize(b - a, dim=-1)
    normal = torch.nn.functional.normalize(torch.cross(b - a, c - a, dim=-1), dim=-1)
    perp = torch.cross(normal, edge, dim=-1)
    size = ((b - a).norm(dim=-1) + (c - b).norm(dim=-1) + (a - c).norm(dim=-1)) / 3
    return torch.stack([edge, perp, normal], dim=-1), size


def rotmat_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) to quaternions (w, x, y, z) with w >= 0, stable for all rotations."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                     m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m00 - m11 + m22], -1),
    ], -2)
    best = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
                       -1).argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


@dataclass
class BoundGaussians:
    """Gaussian parameters in triangle-local terms; ``place`` turns them into world-space Gaussians on a mesh."""

    face_ids: torch.Tensor  # (N,) long
    bary: torch.Tensor  # (N, 3)
    local_offsets: torch.Tensor  # (N, 3), in units of triangle size, in the triangle frame
    local_quats: torch.Tensor  # (N, 4) w, x, y, z, relative to the triangle frame
    log_scales: torch.Tensor  # (N, 3), log of scale in units of triangle size
    opacity_logits: torch.Tensor  # (N,)
    sh: torch.Tensor  # (N, K, 3)

    def place(self, vertices: torch.Tensor, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        frames, size = triangle_frames(vertices, faces)
        frames, size = frames[self.face_ids], size[self.face_ids]
        anchor = surface_points(vertices, faces, self.face_ids, self.bary)
        means = anchor + size[:, None] * (frames @ self.local_offsets[:, :, None])[..., 0]
        quats = _quat_multiply(rotmat_to_quat(frames), self.local_quats)
        scales = torch.exp(self.log_scales) * size[:, None]
        return {"means": means, "quats": quats, "scales": scales, "opacities": torch.sigmoid(self.opacity_logits),
                "sh": self.sh}


def _quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)
