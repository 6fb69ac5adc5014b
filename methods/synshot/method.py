"""SynShot inversion (pivotal tuning) of the UV prior from a few tracked images, and rendering of the avatar.

1. Texture initialisation: the sources back-projected into UV space through their tracked meshes (depth- and
   facing-tested, ``backproject``); identity offsets from the tracking's shape, expression offsets per source.
2. Stage 1: only E_id is fine-tuned (E_expr, codebooks, decoders and regressors frozen) so that the decoded head
   renders the sources: z_id = q(E_id(texture, identity offsets)).
3. Stage 2: z_id is frozen; D_feat, D_id, D_expr and the regressors are fine-tuned on the same loss.
   Both stages: L1 + SSIM on the sources composited on white, L1 on alpha (the ArcFace identity terms when
   ``w_identity`` > 0 and ArcFace weights exist: not on the demo); steps per input frame and early stopping
   (warm-up, EMA of the loss, patience) are config values.
4. A target is rendered from the frozen z_id and E_expr of the target's expression, posed by the target's tracking
   (neck, jaw, eyes by LBS, then the global transform).

``prior=random`` runs the very same inversion from a randomly initialised network of the checkpoint's
architecture (its codebooks started from its own latents of the inputs): the "no prior" arm of the paper's Fig. 7.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.api import Target, View
from harness.checkpoints import select_checkpoint
from harness.geometry.uv_raster import uv_layout_hash
from harness.heads.loading import head_model_for, load_head_model, params_from_tracking
from harness.heads.model import HeadModel, HeadParams, deform
from harness.render.gaussians import Gaussians
from harness.render.renderer import camera_tensors, render
from harness_methods.synshot.backproject import backproject
from harness_methods.synshot.config import INVERSION
from harness_methods.synshot.losses import photometric
from harness_methods.synshot.prior import SynShotPrior, dilate, pose_gaussians, uv_offset_maps

DEMO_CHECKPOINT = Path(__file__).parent / "checkpoints" / "demo.pt"
HOW_TO_TRAIN = ("harness synth --out CORPUS ... && harness train synshot --data CORPUS --full "
                "--config uv_resolution=256 --config feature_channels=128 ... (see methods/synshot/README.md)")
METHOD_DEFAULTS: dict[str, Any] = {**INVERSION, "head_model": "template"}
STAGE1 = ("e_id",)
STAGE2 = ("d_feat", "d_id", "d_expr", "r_color", "r_gauss")


@dataclass
class FitData:
    """The sources prepared for the inversion."""

    texture: torch.Tensor  # (1, 3, R, R)
    visibility: torch.Tensor  # (1, R, R)
    identity_offset: torch.Tensor  # (1, 3, R, R)
    q_expr: list[torch.Tensor]  # per source (1, D, h, w), from the frozen E_expr
    geometry: list[torch.Tensor | None]  # per source (1, 3, R, R) tracked offset maps, or None (decoded geometry)
    params: list[HeadParams]
    cameras: list[Any]
    images: list[torch.Tensor]  # (H, W, 3) on white at the fit resolution
    alphas: list[torch.Tensor]  # (H, W)


@dataclass
class SynShotAvatar:
    model: HeadModel
    prior: SynShotPrior
    z_id: torch.Tensor
    source_params: HeadParams
    history: dict[str, Any] = field(default_factory=dict)


def _on_white(view: View) -> np.ndarray:
    if view.alpha is None:
        return view.image
    return view.image * view.alpha[..., None] + (1 - view.alpha[..., None])


def render_prior(prior: SynShotPrior, q_id: torch.Tensor, q_expr: torch.Tensor, params: HeadParams,
                 cameras: list[Any], background: float = 1.0, geometry: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    out = prior.decode(q_id, q_expr, geometry=geometry)
    g = pose_gaussians(prior, out.gaussians, 0, params)
    viewmats, Ks, width, height = camera_tensors(cameras, g["means"].device)
    rendered = render(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], viewmats, Ks, width, height,
                      sh_degree=int(prior.arch["sh_degree"]),
                      backgrounds=torch.full((len(cameras), 3), background, device=g["means"].device))
    return rendered.rgb, rendered.alpha[..., 0]


def _source_loss(prior: SynShotPrior, q_id: torch.Tensor, data: FitData, i: int, config: Mapping[str, Any]
                 ) -> torch.Tensor:
    rgb, alpha = render_prior(prior, q_id, data.q_expr[i], data.params[i], [data.cameras[i]],
                              geometry=data.geometry[i])
    loss = photometric(rgb.permute(0, 3, 1, 2), data.images[i].permute(2, 0, 1)[None], float(config["w_color_l1"]),
                       float(config["w_color_ssim"]))
    return loss + float(config["w_alpha"]) * (alpha[0] - data.alphas[i]).abs().mean()


class EarlyStop:
    """Stop when the EMA of the loss has not improved by ``tol`` (relative) for ``patience`` steps after warm-up."""

    def __init__(self, warmup: int, patience: int, ema: float, tol: float) -> None:
        self.warmup, self.patience, self.decay, self.tol = warmup, patience, ema, tol
        self.value: float | None = None
        self.best = float("inf")
        self.since = 0

    def update(self, step: int, loss: float) -> bool:
        self.value = loss if self.value is None else self.decay * self.value + (1 - self.decay) * loss
        if self.value < self.best * (1 - self.tol):
            self.best, self.since = self.value, 0
        else:
            self.since += 1
        return step + 1 >= self.warmup and self.since >= self.patience


def _steps(config: Mapping[str, Any], key: str, frames: int) -> int:
    return min(int(config["max_steps"]), max(int(config["min_steps"]), int(config[key]) * frames))


def _optimise(prior: SynShotPrior, modules: tuple[str, ...], steps: int, lr: float, closure: Any,
              config: Mapping[str, Any], frames: int) -> list[float]:
    for p in prior.parameters():
        p.requires_grad_(False)
    params = [p for name in modules for p in getattr(prior, name).parameters()]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=lr)
    stop = EarlyStop(int(config["early_stop_warmup"]), int(config["early_stop_patience"]),
                     float(config["early_stop_ema"]), float(config["early_stop_tol"]))
    losses = []
    for step in range(steps):
        loss = closure(step % frames)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if stop.update(step, losses[-1]):
            break
    for p in params:
        p.requires_grad_(False)
    return losses


def invert_stage1(prior: SynShotPrior, data: FitData, config: Mapping[str, Any]) -> tuple[torch.Tensor, list[float]]:
    """Fine-tune E_id only; returns the recovered (quantised) z_id and the losses."""
    def closure(i: int) -> torch.Tensor:
        q_id, _ = prior.quantize_id(data.texture, data.visibility, data.identity_offset)
        return _source_loss(prior, q_id, data, i, config)

    losses = _optimise(prior, STAGE1, _steps(config, "stage1_steps_per_frame", len(data.params)),
                       float(config["stage1_lr"]), closure, config, len(data.params))
    with torch.no_grad():
        q_id, _ = prior.quantize_id(data.texture, data.visibility, data.identity_offset)
    return q_id.detach().clone(), losses


def invert_stage2(prior: SynShotPrior, z_id: torch.Tensor, data: FitData, config: Mapping[str, Any]) -> list[float]:
    """z_id frozen; fine-tune the decoders and regressors."""
    return _optimise(prior, STAGE2, _steps(config, "stage2_steps_per_frame", len(data.params)),
                     float(config["stage2_lr"]), lambda i: _source_loss(prior, z_id, data, i, config), config,
                     len(data.params))


def tracked_geometry(prior: SynShotPrior, model: HeadModel, identity: HeadParams, expression: HeadParams
                     ) -> torch.Tensor:
    """(1, 3, R, R) offset maps of the tracked identity and expression, grown past the charts for bilinear reads."""
    resolution = int(prior.arch["uv_resolution"])
    ident, _ = uv_offset_maps(model, identity, resolution)
    _, expr = uv_offset_maps(model, expression, resolution)
    return dilate((ident + expr)[None], prior.uv_mask.cpu(), 4).to(prior.uv_mask.device)


def build_prior(model: HeadModel, architecture: dict[str, Any], state: dict[str, Any] | None) -> SynShotPrior:
    prior = SynShotPrior(model, architecture)
    if state is not None:
        prior.load_state_dict(state)
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior


class SynShot:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        unknown = set(config) - set(METHOD_DEFAULTS)
        if unknown:
            raise ValueError(f"synshot: unknown config keys {sorted(unknown)}; known: {sorted(METHOD_DEFAULTS)}")
        self.config = {**METHOD_DEFAULTS, **config}
        if self.config["prior"] not in ("trained", "random"):
            raise ValueError(f"synshot: prior must be 'trained' or 'random', not {self.config['prior']!r}")
        self.device = torch.device(device)
        model = load_head_model(str(self.config["head_model"]))
        self.checkpoint = select_checkpoint("synshot", str(self.config["checkpoint"]), DEMO_CHECKPOINT,
                                            getattr(self, "run_context", None), model.name, uv_layout_hash(model),
                                            HOW_TO_TRAIN)
        if self.config["prior"] == "random":
            torch.manual_seed(int(self.config["random_seed"]))
            state = None
        else:
            state = self.checkpoint.state
        self.prior = build_prior(model, self.checkpoint.architecture, state).to(self.device)
        self.model = model

    def prepare(self, sources: Sequence[View], prior: SynShotPrior) -> FitData:
        model = self.model
        params = [params_from_tracking(view.tracking, model) for view in sources]
        resolution = int(prior.arch["uv_resolution"])
        views = []
        for view, p in zip(sources, params, strict=True):
            alpha = view.alpha if view.alpha is not None else np.ones(view.image.shape[:2], np.float32)
            views.append((view.image, alpha, view.camera, deform(model, p).vertices))
        texture, visibility = backproject(model, resolution, views, float(self.config["min_facing"]))
        identity_offset, _ = uv_offset_maps(model, params[0], resolution)
        dev = self.device
        q_expr = []
        with torch.no_grad():
            for p in params:
                _, expression = uv_offset_maps(model, p, resolution)
                q_expr.append(prior.quantize_expr(expression[None].to(dev))[0])
        scale = float(self.config["fit_scale"])
        cameras, images, alphas = [], [], []
        for view in sources:
            cam = view.camera.resized(max(1, round(view.camera.width * scale)),
                                      max(1, round(view.camera.height * scale)))
            cameras.append(cam)
            image = torch.as_tensor(_on_white(view), dtype=torch.float32).permute(2, 0, 1)[None]
            images.append(F.interpolate(image, size=(cam.height, cam.width), mode="area")[0].permute(1, 2, 0).to(dev))
            alpha = torch.as_tensor(view.alpha if view.alpha is not None else np.ones(view.image.shape[:2]),
                                    dtype=torch.float32)
            alphas.append(F.interpolate(alpha[None, None], size=(cam.height, cam.width), mode="area")[0, 0].to(dev))
        geometry = [tracked_geometry(prior, model, params[0], p) if self.config["tracked_geometry"] else None
                    for p in params]
        return FitData(texture[None].to(dev), visibility[None].to(dev), identity_offset[None].to(dev), q_expr,
                       geometry, params, cameras, images, alphas)

    def reconstruct(self, sources: Sequence[View]) -> SynShotAvatar:
        if not sources:
            raise ValueError("synshot needs at least one source view")
        head_model_for(sources[0].tracking, str(self.config["head_model"]))  # the tracking's model is ours
        if float(self.config["w_identity"]):
            raise ValueError("synshot: w_identity > 0 needs ArcFace weights, which this implementation does not "
                             "load yet; set w_identity=0")
        t0 = time.perf_counter()
        prior = copy.deepcopy(self.prior)
        data = self.prepare(sources, prior)
        if self.config["prior"] == "random":
            generator = torch.Generator().manual_seed(int(self.config["random_seed"]))
            with torch.no_grad():
                prior.q_id.refresh(prior.encode_id(data.texture, data.visibility, data.identity_offset), generator)
                data.q_expr = []
                for p in data.params:
                    _, expression = uv_offset_maps(self.model, p, int(prior.arch["uv_resolution"]))
                    z = prior.encode_expr(expression[None].to(self.device))
                    prior.q_expr.refresh(z, generator)
                    data.q_expr.append(prior.quantize_expr(expression[None].to(self.device))[0])
        t1 = time.perf_counter()
        z_id, losses1 = invert_stage1(prior, data, self.config)
        t2 = time.perf_counter()
        losses2 = invert_stage2(prior, z_id, data, self.config)
        t3 = time.perf_counter()
        history = {"stage1_steps": len(losses1), "stage2_steps": len(losses2),
                   "stage1_loss": [losses1[0], losses1[-1]], "stage2_loss": [losses2[0], losses2[-1]],
                   "prepare_s": t1 - t0, "stage1_s": t2 - t1, "stage2_s": t3 - t2}
        return SynShotAvatar(self.model, prior, z_id, data.params[0], history)

    @torch.no_grad()
    def render(self, avatar: SynShotAvatar, targets: Sequence[Target]) -> list[np.ndarray]:
        groups: dict[str, list[int]] = {}
        for i, target in enumerate(targets):
            groups.setdefault(json.dumps(target.driving, sort_keys=True, default=str), []).append(i)
        images: list[np.ndarray | None] = [None] * len(targets)
        resolution = int(avatar.prior.arch["uv_resolution"])
        chunk = max(1, int(self.config["render_chunk"]))
        for members in groups.values():
            driving = targets[members[0]].driving
            params = params_from_tracking(driving, avatar.model) if driving is not None else avatar.source_params
            _, expression = uv_offset_maps(avatar.model, params, resolution)
            q_expr, _ = avatar.prior.quantize_expr(expression[None].to(self.device))
            geometry = (tracked_geometry(avatar.prior, avatar.model, avatar.source_params, params)
                        if self.config["tracked_geometry"] else None)
            by_size: dict[tuple[int, int], list[int]] = {}
            for i in members:
                by_size.setdefault((targets[i].camera.width, targets[i].camera.height), []).append(i)
            for same in by_size.values():
                for start in range(0, len(same), chunk):
                    part = same[start:start + chunk]
                    rgb, alpha = render_prior(avatar.prior, avatar.z_id, q_expr, params,
                                              [targets[i].camera for i in part], geometry=geometry)
                    for j, i in enumerate(part):
                        images[i] = torch.cat([rgb[j], alpha[j][..., None]], -1).clamp(0, 1).cpu().numpy()
        return [image for image in images if image is not None]

    def save(self, avatar: SynShotAvatar, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            _, expression = uv_offset_maps(avatar.model, avatar.source_params, int(avatar.prior.arch["uv_resolution"]))
            q_expr, _ = avatar.prior.quantize_expr(expression[None].to(self.device))
            geometry = (tracked_geometry(avatar.prior, avatar.model, avatar.source_params, avatar.source_params)
                        if self.config["tracked_geometry"] else None)
            out = avatar.prior.decode(avatar.z_id, q_expr, geometry=geometry)
            g = pose_gaussians(avatar.prior, out.gaussians, 0, avatar.source_params)
        Gaussians(means=g["means"].cpu().numpy(), quats=g["quats"].cpu().numpy(),
                  log_scales=torch.log(g["scales"]).cpu().numpy(),
                  opacity_logits=torch.logit(g["opacities"].clamp(1e-6, 1 - 1e-6)).cpu().numpy(),
                  sh=g["sh"].cpu().numpy()).save_ply(path / "gaussians.ply")
        tuned = {f"prior.{k}": v.detach().cpu() for k, v in avatar.prior.state_dict().items()}
        torch.save({"architecture": avatar.prior.arch, "z_id": avatar.z_id.cpu(), "state": tuned,
                    "source_params": avatar.source_params.to_dict(), "history": avatar.history},
                   path / "tuned_weights.pt")
