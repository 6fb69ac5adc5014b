"""gs-fit: Gaussians bound to the tracked head mesh, fitted to the source views with no learned prior.

1. The source frame's head parameters (the dataset's tracking) pose the head model; ``num_gaussians`` Gaussians are
   spread over its surface by area and bound to their triangles.
2. Colours start from the source pixels they project to where they are visible (depth test against the rendered
   depth); a hidden Gaussian takes the colour of the visible Gaussian nearest its mirror image on the neutral head
   (faces are nearly symmetric), else the mean colour of its region.
3. Colours, opacities, scales and small offsets are optimised with Adam against the source images composited on
   white (L1 on colour and on alpha), at ``fit_scale`` times the source resolution.
4. Targets are rendered with the head posed by the target's tracking (animatable), else the source pose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api import Target, View
from harness.heads.binding import BoundGaussians, sample_surface, triangle_frames
from harness.heads.loading import head_model_for, params_from_tracking
from harness.heads.model import HeadModel, HeadParams, deform, surface_points
from harness.render.cpu import SH_C0
from harness.render.gaussians import Gaussians
from harness.render.renderer import camera_tensors, render

DEFAULTS: dict[str, Any] = {
    "num_gaussians": 6000, "steps": 40, "lr": 0.02, "fit_scale": 0.5, "splat_size": 0.4, "head_model": "template",
}

# Colours are taken only where the surface faces the camera: at grazing angles pixels mix with the background.
MIN_FACING = 0.35


@dataclass
class FittedHead:
    model: HeadModel
    head: BoundGaussians
    source_params: HeadParams


class GsFit:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"gs-fit: unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.config = {**DEFAULTS, **config}
        self.device = torch.device(device)

    def reconstruct(self, sources: Sequence[View]) -> FittedHead:
        if not sources:
            raise ValueError("gs-fit needs at least one source view")
        model = head_model_for(sources[0].tracking, self.config["head_model"])
        params = [params_from_tracking(view.tracking, model) for view in sources]
        rng = np.random.default_rng(int(torch.initial_seed() % 2**32))
        shaped = deform(model, params[0].replace(expression=np.zeros(model.num_expression), jaw=np.zeros(3),
                                                  neck=np.zeros(3), eyes=np.zeros(6), rotation=np.zeros(3),
                                                  translation=np.zeros(3), scale=1.0)).vertices
        samples = sample_surface(shaped.numpy(), model.faces, int(self.config["num_gaussians"]), rng)
        head = _initial_head(samples, float(self.config["splat_size"]))
        faces = torch.as_tensor(model.faces)
        posed = [deform(model, p).vertices for p in params]
        head.sh, seen = _initial_colours(model, head, posed, faces, sources)
        _fit(head, seen, posed, faces, sources, self.config)
        return FittedHead(model, head, params[0])

    def render(self, avatar: FittedHead, targets: Sequence[Target]) -> list[np.ndarray]:
        faces = torch.as_tensor(avatar.model.faces)
        images = []
        for target in targets:
            params = (params_from_tracking(target.driving, avatar.model) if target.driving is not None
                      else avatar.source_params)
            with torch.no_grad():
                premultiplied, alpha = _render_head(avatar.head, deform(avatar.model, params).vertices, faces,
                                                    [target.camera], background=0.0)
            images.append(torch.cat([straight_colour(premultiplied[0], alpha[0]), alpha[0]], -1).numpy())
        return images

    def save(self, avatar: FittedHead, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        g = avatar.head.place(deform(avatar.model, avatar.source_params).vertices, torch.as_tensor(avatar.model.faces))
        gaussians = Gaussians(
            means=g["means"].detach().numpy(), quats=g["quats"].detach().numpy(),
            log_scales=torch.log(g["scales"]).detach().numpy(),
            opacity_logits=avatar.head.opacity_logits.detach().numpy(), sh=g["sh"].detach().numpy())
        gaussians.save_ply(path / "gaussians.ply")


def _initial_head(samples: Any, splat_size: float) -> BoundGaussians:
    n = len(samples.face_ids)
    return BoundGaussians(
        face_ids=torch.as_tensor(samples.face_ids), bary=torch.as_tensor(samples.bary, dtype=torch.float32),
        local_offsets=torch.zeros(n, 3), local_quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        log_scales=torch.log(torch.tensor([[splat_size, splat_size, 0.2 * splat_size]])).repeat(n, 1),
        opacity_logits=torch.full((n,), 2.0), sh=torch.zeros(n, 1, 3))


def _render_head(head: BoundGaussians, vertices: torch.Tensor, faces: torch.Tensor, cameras: list[Any],
                 background: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = head.place(vertices, faces)
    viewmats, Ks, width, height = camera_tensors(cameras)
    out = render(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], viewmats, Ks, width, height,
                 sh_degree=0, backgrounds=torch.full((len(cameras), 3), background))
    return out.rgb, out.alpha


def straight_colour(premultiplied: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """RGBA predictions carry straight (not premultiplied) colour, as PNG stores it; white where nothing is drawn."""
    covered = alpha > 1e-4
    return torch.where(covered, premultiplied / alpha.clamp_min(1e-4), torch.ones_like(premultiplied)).clamp(0, 1)


def _on_white(view: View) -> np.ndarray:
    if view.alpha is None:
        return view.image
    return view.image * view.alpha[..., None] + (1 - view.alpha[..., None])


@torch.no_grad()
def _initial_colours(model: HeadModel, head: BoundGaussians, posed: list[torch.Tensor], faces: torch.Tensor,
                     sources: Sequence[View]) -> tuple[torch.Tensor, torch.Tensor]:
    """SH colours from the sources, and which Gaussians some source sees face-on."""
    n = len(head.face_ids)
    colour_sum, weight = np.zeros((n, 3)), np.zeros(n)
    for vertices, view in zip(posed, sources, strict=True):
        g = head.place(vertices, faces)
        cam = view.camera
        viewmats, Ks, width, height = camera_tensors([cam])
        solid = render(g["means"], g["quats"], g["scales"], torch.ones(n), torch.zeros(n, 3), viewmats, Ks, width,
                       height)
        depth = (solid.depth[0, ..., 0] / solid.alpha[0, ..., 0].clamp_min(1e-6)).numpy()
        pixels, z = cam.project(g["means"].numpy())
        col, row = np.floor(pixels[:, 0]).astype(int), np.floor(pixels[:, 1]).astype(int)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (z > 0)
        col, row = np.clip(col, 0, width - 1), np.clip(row, 0, height - 1)
        facing = _facing(head, vertices, faces, g["means"], cam)
        alpha = view.alpha[row, col] if view.alpha is not None else np.ones(n)
        visible = inside & (z <= depth[row, col] + 0.004) & (facing > MIN_FACING) & (alpha > 0.95)
        image = _on_white(view)
        colour_sum[visible] += image[row[visible], col[visible]]
        weight[visible] += 1
    seen = weight > 0
    colours = np.zeros((n, 3))
    colours[seen] = colour_sum[seen] / weight[seen, None]
    colours[~seen] = _fill_hidden(model, head, seen, colours)
    sh = torch.as_tensor((colours - 0.5) / SH_C0, dtype=torch.float32)[:, None, :]
    return sh, torch.as_tensor(seen)


def _facing(head: BoundGaussians, vertices: torch.Tensor, faces: torch.Tensor, means: torch.Tensor,
            camera: Any) -> np.ndarray:
    """Cosine between each Gaussian's surface normal and the direction to the camera."""
    normals = triangle_frames(vertices, faces)[0][head.face_ids, :, 2].numpy()
    to_camera = camera.center[None, :] - means.numpy()
    return (normals * to_camera).sum(1) / np.linalg.norm(to_camera, axis=1)


def _fill_hidden(model: HeadModel, head: BoundGaussians, seen: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Colours for Gaussians no source sees: the mirror image's nearest visible neighbour, else the region mean."""
    from scipy.spatial import cKDTree

    points = surface_points(torch.as_tensor(model.v_template, dtype=torch.float32), model.faces, head.face_ids,
                            head.bary).numpy()
    hidden = np.flatnonzero(~seen)
    if not seen.any():
        return np.full((len(hidden), 3), 0.5)
    mirrored = points[hidden] * [-1.0, 1.0, 1.0]
    distance, nearest = cKDTree(points[seen]).query(mirrored)
    filled = colours[seen][nearest]
    far = distance > 0.006
    region = model.face_regions()[head.face_ids.numpy()]
    fallback = colours[seen].mean(0)
    for r in np.unique(region[hidden][far]):
        members = seen & (region == r)
        filled[far & (region[hidden] == r)] = colours[members].mean(0) if members.any() else fallback
    return filled


def _fit(head: BoundGaussians, seen: torch.Tensor, posed: list[torch.Tensor], faces: torch.Tensor,
         sources: Sequence[View], config: Mapping[str, Any]) -> None:
    scale = float(config["fit_scale"])
    cameras, images, alphas = [], [], []
    for view in sources:
        cam = view.camera.resized(max(1, round(view.camera.width * scale)), max(1, round(view.camera.height * scale)))
        cameras.append(cam)
        image = torch.as_tensor(_on_white(view)).permute(2, 0, 1)[None]
        images.append(torch.nn.functional.interpolate(image, size=(cam.height, cam.width), mode="area")[0]
                      .permute(1, 2, 0))
        alpha = torch.as_tensor(view.alpha if view.alpha is not None else np.ones(view.image.shape[:2], np.float32))
        alphas.append(torch.nn.functional.interpolate(alpha[None, None], size=(cam.height, cam.width),
                                                      mode="area")[0, 0])
    learned = [head.sh, head.opacity_logits, head.log_scales, head.local_offsets]
    # Only Gaussians some source sees face-on are fitted: the others (grazing or hidden) keep their filled-in
    # colours, which the photometric loss would otherwise bleach towards the silhouette's background.
    for tensor in learned:
        tensor.requires_grad_(True)
        tensor.register_hook(lambda grad: grad * seen.reshape(-1, *([1] * (grad.dim() - 1))))
    lr = float(config["lr"])
    optimiser = torch.optim.Adam([{"params": [head.sh], "lr": lr * 2}, {"params": [head.opacity_logits], "lr": lr * 2},
                                  {"params": [head.log_scales], "lr": lr}, {"params": [head.local_offsets], "lr": lr}])
    for step in range(int(config["steps"])):
        i = step % len(sources)
        rgb, alpha = _render_head(head, posed[i], faces, [cameras[i]])
        loss = (rgb[0] - images[i]).abs().mean() + 0.5 * (alpha[0, ..., 0] - alphas[i]).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for tensor in learned:
        tensor.requires_grad_(False)
