"""Texture initialisation: the input images back-projected into UV space through the tracked (posed) mesh.

Each covered texel's surface point is projected into every input view; it takes the view's colour (bilinear)
where it passes the z-buffer depth test (``harness.geometry.texel_visibility``), faces the camera by at least
``min_facing`` and lands on the foreground (alpha > 0.5). Views are averaged, weighted by how squarely they see
the texel; the weight map (0..1) says where the texture is observed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.api.types import Camera
from harness.geometry.attributes import interpolate
from harness.geometry.mesh_raster import camera_matrices, project, rasterize_mesh
from harness.geometry.uv_raster import uv_raster
from harness.geometry.visibility import facing, surface_normals, texel_visibility
from harness.heads.model import HeadModel


def backproject(model: HeadModel, resolution: int, views: list[tuple[np.ndarray, np.ndarray, Camera, torch.Tensor]],
                min_facing: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """views: (colour (H, W, 3) in [0, 1], alpha (H, W), camera, posed world vertices (V, 3)).

    Returns texture (3, R, R) and observation weight (R, R) in [0, 1].
    """
    texels = uv_raster(model, resolution)
    flat = texels.face_ids.reshape(-1)
    covered = torch.nonzero(flat >= 0).squeeze(1)
    face_ids, bary = flat[covered], texels.bary.reshape(-1, 3)[covered]
    total = torch.zeros(len(covered), 3)
    weight = torch.zeros(len(covered))
    with torch.no_grad():
        for colour, alpha, camera, vertices in views:
            raster = rasterize_mesh(vertices, model.faces, camera)
            visible = texel_visibility(texels, vertices, model.faces, camera, raster).reshape(-1)[covered]
            points = interpolate(vertices, model.faces, face_ids, bary)
            cosine = facing(points, surface_normals(vertices, model.faces, face_ids, bary), camera)
            w2c, K = camera_matrices(camera)
            pix, _ = project(points, w2c, K)
            grid = torch.stack([pix[:, 0] / camera.width * 2 - 1, pix[:, 1] / camera.height * 2 - 1], -1)
            image = torch.as_tensor(np.concatenate([colour, alpha[..., None]], -1), dtype=torch.float32)
            read = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, :, None], mode="bilinear",
                                 padding_mode="border", align_corners=False)[0, :, :, 0].T
            w = (visible & (cosine > min_facing) & (read[:, 3] > 0.5)).float() * cosine.clamp_min(0)
            total += read[:, :3] * w[:, None]
            weight += w
    texture = torch.zeros(resolution * resolution, 3)
    observed = torch.zeros(resolution * resolution)
    seen = weight > 0
    texture[covered[seen]] = total[seen] / weight[seen, None]
    observed[covered] = weight.clamp(max=1.0)
    return texture.T.reshape(3, resolution, resolution), observed.reshape(resolution, resolution)
