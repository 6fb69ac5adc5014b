"""``harness train synshot``: the prior trained on the synthetic corpus (analytic UV maps + multi-view renders).

Each step takes ``batch`` corpus samples. E_id sees either the analytic albedo (probability ``albedo_input_prob``,
fully observed) or the sample's renders from 1..``max_input_views`` random cameras back-projected through its mesh
(the test-time texture initialisation), plus the identity offset map; E_expr sees the expression offset map. The
decoded maps are compared with the analytic ones (L1 + SSIM on the albedo, L1 on the geometry), the Gaussians are
posed by the sample's head parameters and rendered into ``views`` random cameras against the corpus renders
(L1 + SSIM (+ LPIPS) on colour, L1 on alpha), plus the VQ codebook/commitment loss and the L2 regularisers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.api.types import Camera
from harness.checkpoints import Checkpoint
from harness.geometry.uv_raster import uv_layout_hash
from harness.heads.model import HeadParams, deform
from harness.render.renderer import render
from harness.synth.corpus import Corpus
from harness.training import TrainingContext, step_generator
from harness_methods.synshot.backproject import backproject
from harness_methods.synshot.config import DEFAULTS, architecture_of
from harness_methods.synshot.losses import lpips_loss_model, photometric, ssim
from harness_methods.synshot.prior import SynShotPrior, pose_gaussians

PARAM_KEYS = ("shape", "expression", "rotation", "translation", "scale", "jaw", "neck", "eyes")


def sample_params(sample: dict[str, np.ndarray], model: Any) -> HeadParams:
    return model.params(**{k: np.asarray(sample[k], dtype=np.float64) for k in PARAM_KEYS})


def sample_cameras(sample: dict[str, np.ndarray]) -> list[Camera]:
    r = sample["rgb"].shape[1]
    return [Camera(sample["world_to_camera"][i], sample["K"][i], r, r) for i in range(len(sample["K"]))]


def id_inputs(model: Any, sample: dict[str, np.ndarray], resolution: int, views: list[int] | None,
              min_facing: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """E_id's texture input: the analytic albedo (views None) or a back-projection from the sample's ``views``."""
    if views is None:
        albedo = torch.as_tensor(sample["uv_albedo"], dtype=torch.float32).permute(2, 0, 1)
        mask = torch.as_tensor(np.asarray(sample.get("uv_mask", np.ones(albedo.shape[1:]))), dtype=torch.float32)
        return albedo, mask
    vertices = deform(model, sample_params(sample, model)).vertices
    cameras = sample_cameras(sample)
    inputs = []
    for i in views:
        alpha = sample["alpha"][i].astype(np.float32) / 255
        colour = sample["rgb"][i].astype(np.float32) / 255 / np.clip(alpha, 1e-3, None)[..., None]
        inputs.append((np.clip(colour, 0, 1), alpha, cameras[i], vertices))
    return backproject(model, resolution, inputs, min_facing)


class SynShotTrainer:
    def setup(self, context: TrainingContext) -> None:
        from harness.heads.loading import load_head_model

        if torch.device(context.device).type == "cpu":
            from harness.threads import use_cpu_threads

            use_cpu_threads()  # the training loop does not set torch's thread count (HARNESS_THREADS) itself
        self.context = context
        self.config = {**DEFAULTS, **dict(context.config)}
        unknown = set(context.config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"synshot: unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.corpus = Corpus(context.data)
        self.model = load_head_model(str(self.config["head_model"]))
        if self.corpus.manifest["head_model"] != self.model.name:
            raise ValueError(f"the corpus {context.data} was made for head model {self.corpus.manifest['head_model']}"
                             f", not {self.model.name}")
        if int(self.corpus.config.uv_resolution) != int(self.config["uv_resolution"]):
            raise ValueError(f"the corpus has UV maps of {self.corpus.config.uv_resolution}, the config asks for "
                             f"uv_resolution={self.config['uv_resolution']}; make a corpus at that resolution")
        self.device = torch.device(context.device)
        self.arch = architecture_of(self.config)
        self.prior = SynShotPrior(self.model, self.arch).to(self.device)
        self.optimiser = torch.optim.Adam(self.prior.parameters(), lr=float(self.config["lr"]))
        milestones = [max(1, int(f * context.steps)) for f in self.config["lr_milestones"]]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimiser, milestones,
                                                              gamma=float(self.config["lr_gamma"]))
        self.uv_mask = torch.as_tensor(self.corpus.uv_mask, dtype=torch.float32, device=self.device)
        self.lpips = lpips_loss_model(context.device) if float(self.config["w_render_lpips"]) else None

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        rng = step_generator(self.context.seed, step, "synshot")
        indices = rng.choice(len(self.corpus), int(c["batch"]), replace=len(self.corpus) < int(c["batch"]))
        samples = [self.corpus.sample(int(i)) for i in indices]
        num_cameras = len(samples[0]["K"])
        textures, visibility = [], []
        for sample in samples:
            if rng.random() < float(c["albedo_input_prob"]):
                tex, vis = id_inputs(self.model, {**sample, "uv_mask": self.corpus.uv_mask}, self.prior.arch[
                    "uv_resolution"], None)
            else:
                n = int(rng.integers(1, int(c["max_input_views"]) + 1))
                tex, vis = id_inputs(self.model, sample, int(c["uv_resolution"]),
                                     sorted(rng.choice(num_cameras, n, replace=False).tolist()))
            textures.append(tex)
            visibility.append(vis)
        dev = self.device
        stack = lambda key: torch.as_tensor(np.stack([s[key] for s in samples]), dtype=torch.float32,  # noqa: E731
                                            device=dev).permute(0, 3, 1, 2)
        albedo, ident, expr = stack("uv_albedo"), stack("uv_identity_offset"), stack("uv_expression_offset")
        out = self.prior(torch.stack(textures).to(dev), torch.stack(visibility).to(dev), ident, expr)
        mask = self.uv_mask[None, None]
        s = float(c["offset_scale"])
        map_l1 = ((out.texture - albedo).abs() * mask).sum() / (mask.sum() * 3 * len(samples))
        map_ssim = 1 - ssim(out.texture * mask, albedo * mask)
        geometry = (((out.identity_offset - ident).abs() + (out.expression_offset - expr).abs()) * mask).sum() / (
            mask.sum() * 3 * len(samples) * s)
        render_loss, alpha_loss = torch.zeros((), device=dev), torch.zeros((), device=dev)
        for b, sample in enumerate(samples):
            views = sorted(rng.choice(num_cameras, int(c["views"]), replace=False).tolist())
            g = pose_gaussians(self.prior, out.gaussians, b, sample_params(sample, self.model))
            viewmats = torch.as_tensor(sample["world_to_camera"][views], device=dev)
            Ks = torch.as_tensor(sample["K"][views], device=dev)
            r = sample["rgb"].shape[1]
            rendered = render(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], viewmats, Ks, r, r,
                              sh_degree=int(self.arch["sh_degree"]))
            target = torch.as_tensor(sample["rgb"][views], dtype=torch.float32, device=dev) / 255
            target_alpha = torch.as_tensor(sample["alpha"][views], dtype=torch.float32, device=dev) / 255
            render_loss = render_loss + photometric(
                rendered.rgb.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), float(c["w_render_l1"]),
                float(c["w_render_ssim"]), float(c["w_render_lpips"]), self.lpips)
            alpha_loss = alpha_loss + (rendered.alpha[..., 0] - target_alpha).abs().mean()
        render_loss, alpha_loss = render_loss / len(samples), alpha_loss / len(samples)
        raw = out.raw
        reg = (float(c["w_reg_position"]) * raw["position"].pow(2).mean()
               + float(c["w_reg_scale"]) * raw["scale"].pow(2).mean()
               + float(c["w_reg_opacity"]) * raw["opacity"].pow(2).mean()
               + (float(c["w_reg_sh"]) * raw["sh_rest"].pow(2).mean() if raw["sh_rest"].numel() else 0.0))
        loss = (render_loss + float(c["w_alpha"]) * alpha_loss + float(c["w_map_l1"]) * map_l1
                + float(c["w_map_ssim"]) * map_ssim + float(c["w_geometry"]) * geometry
                + float(c["w_vq"]) * out.vq_loss + reg)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.scheduler.step()
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        restarted = sum(q.refresh(z, generator) for q, z in zip((self.prior.q_id, self.prior.q_expr),
                                                                 self.prior.last_latents, strict=True))
        values = {"loss": loss, "render": render_loss, "alpha": alpha_loss, "map_l1": map_l1, "map_ssim": map_ssim,
                  "geometry": geometry, "vq": out.vq_loss, "reg": reg, **out.stats}
        return {**{k: float(torch.as_tensor(v).detach()) for k, v in values.items()},
                "codes_restarted": float(restarted), "lr": float(self.scheduler.get_last_lr()[0])}

    def state_dict(self) -> dict[str, Any]:
        return {"prior": self.prior.state_dict(), "optimiser": self.optimiser.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prior.load_state_dict(state["prior"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])

    def export(self) -> Checkpoint:
        return Checkpoint(method="synshot", architecture=dict(self.arch),
                          state={k: v.detach().cpu() for k, v in self.prior.state_dict().items()},
                          head_model=self.model.name, uv_layout=uv_layout_hash(self.model))
