"""OMEGA-Avatar: one photo -> a 360-degree animatable Gaussian head, feed-forward (stages A-D; see README.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.api import Target, View
from harness.api.types import ViewRef
from harness.heads.binding import BoundGaussians
from harness.heads.loading import load_head_model, params_from_tracking
from harness.heads.model import HeadModel, HeadParams, euler_xyz_to_matrix
from harness.render.cpu import SH_C0
from harness.render.gaussians import Gaussians
from harness_methods.omega.config import METHOD_DEFAULTS, SOAP_YAWS
from harness_methods.omega.views import euler_xyz_from_matrix, head_pose_facing, orbit_cameras, square_crop

DEMO_CHECKPOINT = Path(__file__).parent / "checkpoints" / "demo.pt"
HOW_TO_TRAIN = ("harness train omega --data nersemble-v2:train --data-root NERSEMBLE_V2_FOLDER --full "
                "--device cuda --config generator_checkpoint=SOAP-or-demo.pt")


@dataclass
class OmegaAvatar:
    model: HeadModel
    params: HeadParams  # fitted in stage B (world frame of the input camera)
    offsets: torch.Tensor  # (V, 3) per-vertex offsets, model space
    head: BoundGaussians  # both branches, colours (N, 1, 3) RGB
    source_ref: ViewRef
    source_tracking: HeadParams | None
    fit_losses: dict[str, float]
    crop_side: int = 0  # pixels of the source's square crop (for ``render_scale=auto``)


def _same(a: HeadParams, b: HeadParams) -> bool:
    x, y = a.as_arrays(), b.as_arrays()
    return all(np.allclose(np.asarray(x[k]), np.asarray(y[k]), atol=1e-7) for k in x)


def _similarity(p: HeadParams) -> tuple[np.ndarray, np.ndarray, float]:
    R = euler_xyz_to_matrix(torch.as_tensor(np.asarray(p.rotation), dtype=torch.float64)).numpy()
    return R, np.asarray(p.translation, dtype=np.float64), float(p.scale)


def driven_params(avatar: OmegaAvatar, driving: HeadParams | None) -> HeadParams:
    """Stage D's head parameters: the target's expression, jaw, neck and eyes on the fitted shape; the head pose
    moved by the target's pose relative to the source's (absolute when the source has no tracking)."""
    if driving is None:
        return avatar.params
    source = avatar.source_tracking
    if source is not None and _same(source, driving):
        return avatar.params  # the source frame itself (a novel view)
    out = avatar.params.replace(expression=driving.expression, jaw=driving.jaw, neck=driving.neck,
                                eyes=driving.eyes)
    if source is None:
        return out.replace(rotation=driving.rotation, translation=driving.translation, scale=driving.scale)
    R_o, t_o, s_o = _similarity(avatar.params)
    R_s, t_s, s_s = _similarity(source)
    R_t, t_t, s_t = _similarity(driving)
    delta = R_t @ R_s.T
    return out.replace(rotation=euler_xyz_from_matrix(delta @ R_o), scale=s_t * s_o / s_s,
                       translation=(s_t / s_s) * delta @ (t_o - t_s) + t_t)


class Omega:
    def load(self, device: str, config: Mapping[str, Any]) -> None:
        from harness.checkpoints import select_checkpoint
        from harness.geometry.uv_raster import uv_layout_hash
        from harness_methods.omega.avatar import OmegaNet, mesh_binding
        from harness_methods.omega.generator import NetworkGenerator, SoapGenerator

        unknown = set(config) - set(METHOD_DEFAULTS)
        if unknown:
            raise ValueError(f"omega: unknown config keys {sorted(unknown)}; known: {sorted(METHOD_DEFAULTS)}")
        self.config = {**METHOD_DEFAULTS, **config}
        self.device = torch.device(device)
        self.model = load_head_model(str(self.config["head_model"]))
        self.checkpoint = select_checkpoint(
            "omega", str(self.config["checkpoint"]), DEMO_CHECKPOINT, getattr(self, "run_context", None),
            self.model.name, uv_layout_hash(self.model), HOW_TO_TRAIN)
        self.arch = dict(self.checkpoint.architecture)
        self.net = OmegaNet(self.arch, self.model)
        self.net.load_state_dict(self.checkpoint.state)
        self.net.eval()
        self.binding = mesh_binding(self.model, int(self.arch["uv_resolution"]))
        self.fit_cache: dict[str, Any] = {}
        kind = str(self.config["generator"])
        if kind == "checkpoint":
            self.generator: Any = NetworkGenerator(self.net.mv)
        elif kind == "soap":
            self.generator = SoapGenerator(str(self.config["soap_mv_pipeline"]),
                                           str(self.config["soap_normal_pipeline"]), device,
                                           landmarks_from=NetworkGenerator(self.net.mv))
        else:
            raise ValueError(f"omega: unknown generator {kind!r}; known: checkpoint, soap")

    def reconstruct(self, sources: Sequence[View]) -> OmegaAvatar:
        from harness_methods.omega.avatar import build_gaussians
        from harness_methods.omega.fitting import fit_head, posed

        if len(sources) != 1:
            raise ValueError(f"omega is one-shot: it takes one source view, got {len(sources)}")
        view = sources[0]
        cfg = self.config
        r = int(self.arch["mv_resolution"])
        image, _, camera = square_crop(view, r)
        cameras = orbit_cameras(camera, float(cfg["head_distance"]), SOAP_YAWS)
        with torch.no_grad():
            gen = self.generator.generate(image)
        rgb = gen.rgb.clone()
        rgb[0] = image  # the input itself is the frontal view
        single = bool(cfg["single_view"])
        rotation, translation = head_pose_facing(camera, float(cfg["head_distance"]))
        init = self.model.params(rotation=rotation, translation=translation)
        fr = int(cfg["fit_resolution"])
        fit_cameras = [] if single else [c.resized(fr, fr) for c in cameras]
        normals = F.interpolate(gen.normal, size=(fr, fr), mode="area")
        alphas = F.interpolate(gen.alpha[:, None], size=(fr, fr), mode="area")[:, 0]
        landmarks = gen.landmarks if gen.landmarks is not None else torch.zeros(len(self.model.landmark_faces), 2)
        fit_cfg = dict(cfg) if gen.landmarks is not None else {**cfg, "w_landmark": 0.0, "w_symmetry": 0.0}
        fit = fit_head(self.model, init, camera, landmarks, F.normalize(normals, dim=1), alphas, fit_cameras,
                       fit_cfg, self.fit_cache)
        with torch.no_grad():
            vertices = posed(self.model, fit.params, fit.offsets).vertices
            avatar = build_gaussians(self.net, self.model, self.binding, rgb, cameras, vertices,
                                     visibility_fusion=bool(cfg["visibility_fusion"]),
                                     views=[0] if single else None)
        tracking = None
        if view.tracking is not None and view.tracking.get("model") == self.model.name:
            tracking = params_from_tracking(view.tracking, self.model)
        return OmegaAvatar(self.model, fit.params, fit.offsets, avatar.head, view.ref, tracking, fit.losses,
                           min(view.image.shape[:2]))

    def _target_params(self, avatar: OmegaAvatar, target: Target) -> HeadParams:
        if target.driving is None:
            same_frame = (target.ref.subject, target.ref.sequence, target.ref.frame) == (
                avatar.source_ref.subject, avatar.source_ref.sequence, avatar.source_ref.frame)
            if not same_frame:
                raise ValueError(f"omega: target {target.ref} is another frame than the source and the dataset has "
                                 "no head tracking to drive it with (reenactment needs the target's expression "
                                 "and pose)")
            return avatar.params
        return driven_params(avatar, params_from_tracking(target.driving, avatar.model))

    def render(self, avatar: OmegaAvatar, targets: Sequence[Target]) -> list[np.ndarray]:
        from harness_methods.omega.avatar import render_refined
        from harness_methods.omega.fitting import posed

        faces = torch.as_tensor(avatar.model.faces)
        images = []
        with torch.no_grad():
            for target in targets:
                vertices = posed(avatar.model, self._target_params(avatar, target), avatar.offsets).vertices
                rgb, alpha, _ = render_refined(self.net, avatar.head, vertices, faces, target.camera,
                                               self._render_scale(avatar), bool(self.config["refiner"]))
                images.append(torch.cat([rgb, alpha], 0).permute(1, 2, 0).numpy().astype(np.float32))
        return images

    def _render_scale(self, avatar: OmegaAvatar) -> float:
        """``render_scale``, or with ``auto`` the scale at which a target pixel covers as much of the head as a
        training render pixel did (the training render size over the source's crop side, cameras alike)."""
        value = self.config["render_scale"]
        if str(value) != "auto":
            return float(value)
        trained = self.checkpoint.provenance.get("config", {}).get("render_resolution")
        if not trained or not avatar.crop_side:
            return 0.5
        return min(1.0, float(trained) / float(avatar.crop_side))

    def save(self, avatar: OmegaAvatar, path: Path) -> None:
        from harness_methods.omega.fitting import posed

        path.mkdir(parents=True, exist_ok=True)
        vertices = posed(avatar.model, avatar.params, avatar.offsets).vertices
        gaussians_of(avatar.head, vertices, torch.as_tensor(avatar.model.faces)).save_ply(path / "gaussians.ply")
        (path / "head_params.json").write_text(json.dumps({"params": avatar.params.to_dict(),
                                                           "fit_losses": avatar.fit_losses}, indent=1))


def gaussians_of(head: BoundGaussians, vertices: torch.Tensor, faces: torch.Tensor) -> Gaussians:
    """World-space Gaussians of a bound head on ``vertices`` (colour as SH degree 0)."""
    g = head.place(vertices, faces)
    sh = (g["sh"] - 0.5) / SH_C0
    return Gaussians(means=g["means"].detach().numpy(), quats=g["quats"].detach().numpy(),
                     log_scales=torch.log(g["scales"]).detach().numpy(),
                     opacity_logits=head.opacity_logits.detach().numpy(), sh=sh.detach().numpy())


