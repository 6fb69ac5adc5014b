"""The demo's heads: identities on the open head template, their per-frame head parameters, and their rendering.

A head is the template with an identity's shape coefficients, covered by Gaussians bound to its triangles and
coloured by a procedural albedo (skin, hair, brows, lips, eyes) with baked soft shading. Each frame poses it with
head parameters in NeRSemble's tracking convention, which the demo ships as its "tracking".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.api.types import Camera
from harness.heads.binding import BoundGaussians, sample_surface, triangle_frames
from harness.heads.model import HeadModel, HeadParams, deform, surface_points
from harness.heads.template import EXPRESSION_NAMES, EYE_CENTRES, EYE_RADIUS, MOUTH_Y
from harness.render.cpu import SH_C0
from harness.render.renderer import camera_tensors, render

NUM_GAUSSIANS = 16000
SPLAT_SIGMA = 0.0021  # metres: in-plane standard deviation of each demo Gaussian, on the neutral head
LIGHT = np.array([0.3, 0.6, 0.75]) / np.linalg.norm([0.3, 0.6, 0.75])


@dataclass(frozen=True)
class Identity:
    shape: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    fringe: float  # how far the hair comes down the forehead, 0..1


def make_identity(rng: np.random.Generator, model: HeadModel) -> Identity:
    skin = np.array([0.80, 0.60, 0.50]) * rng.uniform(0.6, 1.1) + rng.uniform(-0.05, 0.05, 3)
    return Identity(
        shape=np.clip(rng.normal(0, 0.8, model.num_shape), -1.5, 1.5),
        skin=np.clip(skin, 0, 1),
        hair=rng.uniform(0.05, 0.55) * np.array([1.0, 0.8, 0.6]) + rng.uniform(0, 0.1, 3),
        iris=rng.uniform(0.1, 0.6, 3),
        lips=np.clip(skin * np.array([0.95, 0.55, 0.55]), 0, 1),
        fringe=float(rng.uniform(0, 1)),
    )


def frame_params(model: HeadModel, identity: Identity, frame: int, num_frames: int) -> HeadParams:
    """Head turns a little, the jaw opens, the mouth smiles and the brows rise over the sequence."""
    phase = 2 * np.pi * frame / num_frames
    yaw, pitch = np.radians(12.0 * np.sin(phase)), np.radians(5.0 * np.sin(2 * phase))
    jaw, smile, brow = 0.5 * (1 - np.cos(phase)), 0.5 * (1 + np.sin(phase + 1.0)), 0.5 * (1 + np.cos(2 * phase))
    expression = np.zeros(model.num_expression)
    expression[EXPRESSION_NAMES.index("smile")] = smile
    expression[EXPRESSION_NAMES.index("brow_raise")] = brow
    expression[EXPRESSION_NAMES.index("lips_part")] = jaw
    gaze = np.array([0.0, 0.3 * yaw, 0.0])
    return model.params(shape=identity.shape, expression=expression, rotation=[pitch, yaw, 0.0],
                        jaw=[0.2 * jaw, 0.0, 0.0], eyes=np.r_[gaze, gaze])


def albedo(model: HeadModel, identity: Identity, face_ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Procedural colour of surface points given on the neutral template (no identity shape)."""
    region = model.face_regions()[face_ids]
    x, y, z = points.T
    pores = 1.0 + 0.04 * np.sin(220 * x) * np.sin(260 * y) * np.sin(180 * z)
    colour = identity.skin[None, :] * pores[:, None]
    strands = 0.85 + 0.15 * np.sin(300 * x + 80 * z) * np.sin(40 * y)
    hair = identity.hair[None, :] * strands[:, None]
    fringe = (region == "face") & (y > 0.085 - 0.025 * identity.fringe)
    colour = np.where(((region == "hair") | fringe)[:, None], hair, colour)
    brows = (region == "face") & (np.abs(x) > 0.012) & (np.abs(x) < 0.046) & (y > 0.054) & (y < 0.062) & (z > 0.05)
    colour = np.where(brows[:, None], identity.hair[None, :] * 0.7, colour)
    colour = np.where((region == "lips")[:, None], identity.lips[None, :], colour)
    mouth = (np.abs(y - MOUTH_Y) < 0.0016) & (np.abs(x) < 0.021) & (z > 0.06)
    colour = np.where(mouth[:, None], np.array([0.25, 0.05, 0.07])[None, :], colour)
    nostrils = sum(np.linalg.norm(points - [s * 0.008, -0.022, 0.105], axis=1) < 0.0045 for s in (1, -1)) > 0
    colour = np.where(nostrils[:, None], identity.skin[None, :] * 0.35, colour)
    for side, centre in zip(("eye_l", "eye_r"), EYE_CENTRES, strict=True):
        on_eye = region == side
        facing = ((points - centre) / EYE_RADIUS)[:, 2]
        eye = np.where((facing > 0.8)[:, None], identity.iris[None, :], np.array([0.93, 0.93, 0.9])[None, :])
        eye = np.where((facing > 0.95)[:, None], np.array([0.03, 0.03, 0.03])[None, :], eye)
        colour = np.where(on_eye[:, None], eye, colour)
    return np.clip(colour, 0, 1)


def build_head(model: HeadModel, identity: Identity, rng: np.random.Generator,
               count: int = NUM_GAUSSIANS) -> BoundGaussians:
    """Gaussians spread over the neutral head, coloured by the identity's albedo with baked shading."""
    samples = sample_surface(model.v_template, model.faces, count, rng)
    neutral = torch.as_tensor(model.v_template, dtype=torch.float32)
    frames, size = triangle_frames(neutral, torch.as_tensor(model.faces))
    face_ids = torch.as_tensor(samples.face_ids)
    points = surface_points(neutral, model.faces, samples.face_ids, samples.bary)
    normals = frames[face_ids, :, 2].numpy()
    shade = 0.45 + 0.55 * np.clip(normals @ LIGHT, 0, 1)
    rgb = albedo(model, identity, samples.face_ids, points.numpy()) * shade[:, None]
    sigma = torch.tensor([SPLAT_SIGMA, SPLAT_SIGMA, 0.2 * SPLAT_SIGMA])
    n = len(face_ids)
    return BoundGaussians(
        face_ids=face_ids, bary=torch.as_tensor(samples.bary, dtype=torch.float32),
        local_offsets=torch.zeros(n, 3), local_quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        log_scales=torch.log(sigma[None, :] / size[face_ids, None]), opacity_logits=torch.full((n,), 3.0),
        sh=torch.as_tensor((rgb - 0.5) / SH_C0, dtype=torch.float32)[:, None, :],
    )


def render_posed(model: HeadModel, head: BoundGaussians, params: HeadParams, cameras: list[Camera]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied colour (C, H, W, 3) and alpha (C, H, W) of a posed head, no background."""
    posed = deform(model, params)
    g = head.place(posed.vertices, torch.as_tensor(model.faces))
    viewmats, Ks, width, height = camera_tensors(cameras)
    with torch.no_grad():
        out = render(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], viewmats, Ks, width, height,
                     sh_degree=0, backend="cpu")
    return out.rgb.numpy(), out.alpha[..., 0].numpy()
