"""Where the head is: a similarity transform from the head frame (the head model's own coordinates, the frame the
corpus and the loop's views live in: head at the origin, +y up, face towards +z) to the dataset's world frame, and
the source photo re-framed into a square work view.

- With the source view's tracking: the head model posed by it against the same head with zero global rotation and
  translation and unit scale; the similarity between the two vertex sets (Umeyama) is the placement.
- Without tracking (in-the-wild): the head faces the source camera at the distance where the model's head height
  matches the photo's alpha bounding box (else ``FILL`` of the image height), centred on that box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.api.types import Camera, View
from harness.synth.cameras import DISTANCE, FIELD_OF_VIEW_DEG, TARGET

FILL = 0.8  # fraction of an un-matted photo's height the head covers (the in-the-wild crop's convention)


@dataclass(frozen=True)
class Placement:
    matrix: np.ndarray  # (4, 4) head frame -> world, a similarity s R | t

    @property
    def scale(self) -> float:
        return float(np.cbrt(np.linalg.det(self.matrix[:3, :3])))

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3] / self.scale

    def camera_in_head_frame(self, camera: Camera) -> Camera:
        """The same camera with a world->camera matrix for head-frame points (scale folded into the intrinsics'
        depth: a similarity is not rigid, so points are scaled first, which a pinhole sees as the same image)."""
        s = self.scale
        rigid = np.eye(4)
        rigid[:3, :3], rigid[:3, 3] = self.rotation, self.matrix[:3, 3] / s
        w2c = camera.world_to_camera.copy()
        w2c[:3, 3] = w2c[:3, 3] / s
        return Camera(w2c @ rigid, camera.K, camera.width, camera.height)


def umeyama(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The similarity (4, 4) minimising ||s R source + t - target||."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(b.T @ a / len(source))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / a.var(0).sum()
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = scale * rotation, mu_t - scale * rotation @ mu_s
    return out


def canonical_params(params):
    return params.replace(rotation=np.zeros(3), translation=np.zeros(3), scale=1.0)


def placement_from_tracking(model, params) -> Placement:
    from harness.heads.model import deform

    posed = deform(model, params).vertices.double().numpy()
    canonical = deform(model, canonical_params(params)).vertices.double().numpy()
    return Placement(umeyama(canonical, posed))


def placement_from_photo(view: View, head_height: float) -> Placement:
    camera = view.camera
    height = camera.height
    if view.alpha is not None and (view.alpha > 0.5).any():
        rows, cols = np.nonzero(view.alpha > 0.5)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        centre = np.array([(left + right) / 2, (top + bottom) / 2])
        extent = bottom - top
    else:
        centre, extent = np.array([camera.width / 2, height / 2]), FILL * height
    focal = camera.K[1, 1]
    depth = focal * head_height / extent
    ray = np.linalg.solve(camera.K, np.r_[centre, 1.0])
    cam_from_head = np.eye(4)
    cam_from_head[:3, :3] = np.diag([1.0, -1.0, -1.0])  # head +y up -> camera -y; face (+z) towards the camera
    cam_from_head[:3, 3] = ray * depth - cam_from_head[:3, :3] @ TARGET
    return Placement(np.linalg.inv(camera.world_to_camera) @ cam_from_head)


def work_focal(resolution: int) -> float:
    """Focal length of the corpus cameras at ``resolution`` (the views the prior was trained on)."""
    return 0.5 * resolution / np.tan(np.radians(FIELD_OF_VIEW_DEG / 2))


def reframe(image: np.ndarray, camera: Camera, placement: Placement, resolution: int) -> torch.Tensor:
    """The source image (H, W, C) re-framed into a square ``resolution`` view centred on the head, at the scale the
    corpus cameras see a head from ``DISTANCE``: (C, R, R)."""
    head = placement.matrix @ np.r_[TARGET, 1.0]
    (centre,), (depth,) = camera.project(head[None, :3])
    side = resolution * (camera.K[0, 0] / depth) * placement.scale * DISTANCE / work_focal(resolution)
    scale = resolution / side
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32).permute(2, 0, 1)[None]
    small = torch.nn.functional.interpolate(tensor, scale_factor=scale, mode="bilinear", antialias=True,
                                            align_corners=False, recompute_scale_factor=False)
    h, w = small.shape[-2:]
    sx, sy = w / camera.width, h / camera.height
    offsets = (torch.arange(resolution, dtype=torch.float32) + 0.5 - resolution / 2)
    xs = (centre[0] * sx + offsets) / w * 2 - 1
    ys = (centre[1] * sy + offsets) / h * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None]
    return torch.nn.functional.grid_sample(small, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)[0]
