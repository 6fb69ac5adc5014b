"""SplatShot: one photo -> a static 3DGS head, by denoising every target view jointly with 3DGS feedback.

``reconstruct``:
1. place the head (``placement``): the source view's tracking, else the photo's alpha box;
2. the base head (``base_head``): ``"gs-fit"`` (the gs-fit reference method fitted to the source view; needs
   tracking), ``"template"`` (the head template's Gaussians with a neutral albedo), a ``.ply`` path (Gaussians in the
   head frame), or ``"auto"`` (gs-fit with tracking, else the template);
3. render it from the ``views`` (the 16 rig directions the corpus uses, in the head frame) at ``resolution``;
4. run the loop (``loop.run_loop``) from those renders, conditioned on the photo re-framed to the frontal view (target
   identity) and the base head's frontal render (base identity), refitting the Gaussians as it goes;
5. a final refit of ``refit_final`` iterations to the final denoised views (in ``mode=per_view`` also the whole
   in-loop refit budget, which that mode does not spend during denoising).
``render`` draws the Gaussians from each target camera at its resolution over ``background``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api import Target, View
from harness.render.gaussians import Gaussians
from harness.render.renderer import camera_tensors
from harness_methods.splatshot.defaults import DEFAULTS, PAPER_CONFIG  # noqa: F401
from harness_methods.splatshot.loop import LoopResult, LoopSettings, run_loop
from harness_methods.splatshot.placement import (
    Placement,
    canonical_params,
    placement_from_photo,
    placement_from_tracking,
    reframe,
)
from harness_methods.splatshot.refit import FreeGaussians, Refitter

DEMO_CHECKPOINT = Path(__file__).parent / "checkpoints" / "demo.pt"
FRONTAL_VIEW = 8
EXPORT_ENV = "SPLATSHOT_EXPORT_DIR"  # diagnostics: write each unit's denoised views here (benchmarks read them)

HOW_TO_TRAIN = ("harness synth --out CORPUS ... && harness train splatshot --data CORPUS --full ...; or run with "
                "the full-size SD-1.5 components: --config pretrained=DIR (see methods/splatshot/README.md)")


@dataclass
class SplatShotAvatar:
    gaussians: FreeGaussians  # in the head frame
    placement: Placement
    background: np.ndarray
    denoised: torch.Tensor  # (V, 3, R, R) final denoised views
    initial: torch.Tensor  # (V, 3, R, R) renders of the base head
    base: FreeGaussians
    history: list[dict[str, Any]] = field(default_factory=list)
    target_id: torch.Tensor | None = None  # (1, 3, R, R) the photo re-framed to the frontal view


def view_cameras(resolution: int) -> list[Any]:
    from harness.synth.cameras import camera_set

    return camera_set("rig", resolution)[0]


class SplatShot:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"splatshot: unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.config = {**DEFAULTS, **config}
        if self.config["views"] != "rig":
            raise ValueError("splatshot: views must be 'rig' (the 16 rig directions around the head)")
        self.device = torch.device(device)
        import diffusers

        diffusers.utils.logging.set_verbosity_error()
        from harness.heads.loading import load_head_model

        self.model = load_head_model(str(self.config["head_model"]))
        if self.config["pretrained"]:
            from harness_methods.splatshot.pretrained import load_pretrained

            self.prior = load_pretrained(Path(str(self.config["pretrained"])), self.config, self.device)
            self.checkpoint = None
        else:
            from harness.checkpoints import select_checkpoint
            from harness.geometry.uv_raster import uv_layout_hash
            from harness_methods.splatshot.networks import build_demo_prior

            self.checkpoint = select_checkpoint(
                "splatshot", str(self.config["checkpoint"]), DEMO_CHECKPOINT, getattr(self, "run_context", None),
                self.model.name, uv_layout_hash(self.model), HOW_TO_TRAIN)
            self.prior = build_demo_prior(self.checkpoint.architecture, self.checkpoint.state)
            if int(self.config["resolution"]) != self.prior.resolution:
                raise ValueError(f"splatshot: the checkpoint's prior works at {self.prior.resolution} px; "
                                 f"resolution={self.config['resolution']}")
        self.prior.unet.eval().requires_grad_(False)
        self.prior.image_encoder.eval().requires_grad_(False)

    # -- reconstruction -------------------------------------------------------------------------------------
    def settings(self) -> LoopSettings:
        c = self.config
        return LoopSettings(steps=int(c["steps"]), strength=float(c["strength"]), cfg_scale=float(c["cfg_scale"]),
                            ip_adapter_scale=float(c["ip_adapter_scale"]),
                            semantic_weight=float(c["semantic_weight"]),
                            guidance_weight=float(c["guidance_weight"]), refit_first=int(c["refit_first"]),
                            refit_later=int(c["refit_later"]), mode=str(c["mode"]), batch=int(c["unet_batch"]))

    def reconstruct(self, sources: Sequence[View]) -> SplatShotAvatar:
        if len(sources) != 1:
            raise ValueError(f"splatshot is one-shot: it takes exactly one source view, got {len(sources)}")
        source = sources[0]
        seed = int(torch.initial_seed() % 2**63)
        placement, base = self._base_head(source, seed)
        background = np.asarray(self.config["background"], dtype=np.float32)
        bg = torch.as_tensor(background)
        resolution = int(self.config["resolution"])
        viewmats, Ks, _, _ = camera_tensors(view_cameras(resolution))
        with torch.no_grad():
            initial, _ = base.render(viewmats, Ks, resolution, resolution, bg)
        initial = initial.permute(0, 3, 1, 2).contiguous()
        photo = source.image if source.alpha is None else (
            source.image * source.alpha[..., None] + (1 - source.alpha[..., None]) * background)
        target_id = reframe(photo, source.camera, placement, resolution)[None].clamp(0, 1)
        base_id = initial[FRONTAL_VIEW:FRONTAL_VIEW + 1]
        gaussians = base.clone()
        refitter = Refitter(gaussians, viewmats, Ks, resolution, bg, seed=seed % 2**32)
        settings = self.settings()
        generator = torch.Generator().manual_seed(seed)
        result: LoopResult = run_loop(self.prior, initial, target_id, base_id, settings, generator, refitter)
        final = int(self.config["refit_final"])
        if settings.mode == "per_view":
            final += settings.refit_first + (len(result.timesteps) - 1) * settings.refit_later
        refitter.fit(result.images, final)
        for t in gaussians.tensors():
            t.requires_grad_(False)
        avatar = SplatShotAvatar(gaussians, placement, background, result.images, initial, base, result.history)
        avatar.target_id = target_id
        self._export(source, avatar)
        return avatar

    def _base_head(self, source: View, seed: int) -> tuple[Placement, FreeGaussians]:
        from harness.heads.loading import params_from_tracking
        from harness.heads.model import deform

        choice = str(self.config["base_head"])
        tracking = source.tracking
        model = self.model
        if tracking is not None:
            params = params_from_tracking(tracking, model)
            placement = placement_from_tracking(model, params)
            canonical = deform(model, canonical_params(params)).vertices
        else:
            params = None
            height = float(np.ptp(model.v_template[:, 1]))
            placement = placement_from_photo(source, height)
            canonical = deform(model, model.params()).vertices
        faces = torch.as_tensor(model.faces)
        if choice == "auto":
            choice = "gs-fit" if tracking is not None else "template"
        if choice == "gs-fit":
            if tracking is None:
                raise ValueError("splatshot: base_head=gs-fit needs the source view's tracking; this dataset has none "
                                 "(use base_head=template or a .ply)")
            from harness_methods.gs_fit.method import GsFit

            fitter = GsFit()
            fitter.load(str(self.device), {"num_gaussians": int(self.config["num_gaussians"]),
                                           "steps": int(self.config["base_fit_steps"]),
                                           "head_model": str(self.config["head_model"])})
            fitted = fitter.reconstruct([source])
            g = fitted.head.place(canonical, faces)
            base = FreeGaussians(g["means"].detach(), g["quats"].detach(), torch.log(g["scales"]).detach(),
                                 fitted.head.opacity_logits.detach().clone(), g["sh"][:, 0].detach().clone())
        elif choice == "template":
            from harness.synth.heads import Identity, build_head

            neutral = Identity(shape=np.zeros(model.num_shape), skin=np.array([0.75, 0.58, 0.5]),
                               hair=np.array([0.25, 0.2, 0.15]), iris=np.array([0.3, 0.25, 0.2]),
                               lips=np.array([0.7, 0.35, 0.33]), fringe=0.5)
            head = build_head(model, neutral, np.random.default_rng(seed % 2**32),
                              count=int(self.config["num_gaussians"]))
            g = head.place(canonical, faces)
            base = FreeGaussians(g["means"].detach(), g["quats"].detach(), torch.log(g["scales"]).detach(),
                                 head.opacity_logits.detach().clone(), g["sh"][:, 0].detach().clone())
        else:
            path = Path(choice).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"splatshot: base_head {path} is neither 'auto', 'gs-fit', 'template' nor a "
                                        ".ply file")
            base = FreeGaussians.from_gaussians(Gaussians.load_ply(path))
        return placement, base

    def _export(self, source: View, avatar: SplatShotAvatar) -> None:
        folder = os.environ.get(EXPORT_ENV)
        if not folder:
            return
        ref = source.ref
        self._export_to(Path(folder) / f"{ref.subject}_{ref.sequence}_{ref.frame}_{ref.camera}.npz", source, avatar)

    def _export_to(self, path: Path, source: View, avatar: SplatShotAvatar) -> None:
        from harness.render.renderer import camera_tensors

        resolution = int(self.config["resolution"])
        viewmats, Ks, _, _ = camera_tensors(view_cameras(resolution))
        path.parent.mkdir(parents=True, exist_ok=True)
        base = avatar.base
        np.savez_compressed(path, denoised=avatar.denoised.numpy(), initial=avatar.initial.numpy(),
                            target_id=avatar.target_id.numpy(), viewmats=viewmats.numpy(), Ks=Ks.numpy(),
                            background=avatar.background, base_means=base.means.numpy(),
                            base_quats=base.quats.numpy(), base_log_scales=base.log_scales.numpy(),
                            base_opacity_logits=base.opacity_logits.numpy(), base_colours=base.colours.numpy())

    # -- rendering ------------------------------------------------------------------------------------------
    def render(self, avatar: SplatShotAvatar, targets: Sequence[Target]) -> list[np.ndarray]:
        background = torch.as_tensor(avatar.background)
        images = []
        for target in targets:
            camera = avatar.placement.camera_in_head_frame(target.camera)
            viewmats, Ks, width, height = camera_tensors([camera])
            with torch.no_grad():
                rgb, alpha = avatar.gaussians.render(viewmats, Ks, width, height, background)
            images.append(torch.cat([rgb[0], alpha[0, ..., None]], -1).clamp(0, 1).numpy())
        return images

    def save(self, avatar: SplatShotAvatar, path: Path) -> None:
        """The avatar as a 3DGS ``.ply`` in the head frame, its placement and the denoised views."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        avatar.gaussians.to_gaussians().save_ply(path / "gaussians.ply")
        np.save(path / "placement.npy", avatar.placement.matrix)
        np.save(path / "denoised_views.npy", avatar.denoised.numpy())
