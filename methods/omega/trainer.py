"""``harness train omega``: stage A on the corpus's SOAP views, stages C/D by self-reenactment.

Each step (after ``mv_pretrain`` steps of stage A alone):

1. stage A: a batch of corpus samples, input the frontal view, L1 to the six SOAP views' colour, normal and alpha
   plus the input view's landmarks (``train_generator``; on a dataset split stage A is frozen, as SOAP is);
2. self-reenactment: a source and a target frame of one head; the avatar is built from the source's input view
   and its generated views (detached) on the source mesh (the corpus's ground-truth head parameters, a dataset's
   tracking, or, with neither, stage B's fit), driven to the target's mesh and rendered at ``targets_per_step``
   target cameras: L1 on the raw and the refined render, and an extra L1 inside the face box;
3. the multi-view (side-view) loss: the source avatar rendered at one of SOAP's side views against the generated
   view, raw render only, with weight lambda_mv decaying linearly from ``lambda_mv_start`` to ``lambda_mv_end``
   over the avatar steps (progressive side-view decay).

No perceptual (VGGFace) term: no such weights offline; the paper's loss has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.api.types import Camera, View, ViewRef
from harness.checkpoints import Checkpoint, load_checkpoint
from harness.geometry.uv_raster import uv_layout_hash
from harness.heads.loading import load_head_model, params_from_tracking
from harness.heads.model import HeadParams
from harness.training import TrainingContext, step_generator
from harness_methods.omega.config import ARCH_DEFAULTS, METHOD_DEFAULTS, SOAP_YAWS

NUM_SOAP = len(SOAP_YAWS)


@dataclass
class Frame:
    """One training view set of one head at one moment."""

    input_image: torch.Tensor  # (3, R, R) on white
    input_camera: Camera  # at R x R
    targets: list[tuple[torch.Tensor, Camera]]  # (3, H, W) on white, camera at H x W
    params: HeadParams | None  # ground-truth / tracked head parameters, None: fit with stage B
    soap: dict[str, torch.Tensor] | None = None  # ground-truth SOAP views (corpus only)


def _cameras(sample: Mapping[str, np.ndarray], views: range, size: int) -> list[Camera]:
    return [Camera(sample["world_to_camera"][v].astype(np.float64), sample["K"][v].astype(np.float64), size, size)
            for v in views]


def _corpus_params(model: Any, sample: Mapping[str, np.ndarray]) -> HeadParams:
    return model.params(**{k: sample[k] for k in ("shape", "expression", "rotation", "translation", "jaw", "neck",
                                                   "eyes", "scale")})


def _on_white(sample: Mapping[str, np.ndarray], views: Any) -> torch.Tensor:
    rgb = sample["rgb"][views].astype(np.float32) / 255.0
    alpha = sample["alpha"][views].astype(np.float32)[..., None] / 255.0
    return torch.as_tensor(rgb + (1 - alpha)).permute(0, 3, 1, 2).contiguous()


class CorpusData:
    """A ``harness synth`` corpus with camera set ``soap+rig`` (or ``soap``): views 0-5 are SOAP's."""

    def __init__(self, root: Path, model: Any, input_view: int) -> None:
        from harness.synth.corpus import Corpus

        self.corpus = Corpus(root)
        cfg = self.corpus.config
        if not str(cfg.camera_set).startswith("soap"):
            raise ValueError(f"omega trains on a corpus with camera set 'soap+rig' or 'soap'; {root} has "
                             f"{cfg.camera_set!r} (harness synth --config camera_set=soap+rig)")
        self.model, self.input_view = model, input_view
        self.identities, self.expressions = cfg.identities, cfg.expressions_per_identity
        self.size = cfg.resolution
        keep = ("rgb", "alpha", "normal", "world_to_camera", "K", "shape", "expression", "rotation", "translation",
                "jaw", "neck", "eyes", "scale")
        # The whole corpus in memory (a few tens of MB at the demo's size): random access re-reading compressed
        # shards would cost more than the training step itself.
        self.samples = []
        for i in range(len(self.corpus)):
            sample = self.corpus.sample(i)
            self.samples.append({k: (sample[k][:NUM_SOAP] if k == "normal" else sample[k]) for k in keep})

    def frame(self, identity: int, expression: int) -> Frame:
        s = self.samples[identity * self.expressions + expression]
        n = s["rgb"].shape[0]
        images = _on_white(s, slice(None))
        cams = _cameras(s, range(n), self.size)
        alpha = torch.as_tensor(s["alpha"][:NUM_SOAP].astype(np.float32) / 255.0)
        normal = torch.as_tensor(s["normal"][:NUM_SOAP].astype(np.float32)).permute(0, 3, 1, 2)
        soap = {"rgb": images[:NUM_SOAP], "normal": normal * alpha[:, None], "alpha": alpha}
        return Frame(images[self.input_view], cams[self.input_view], list(zip(images, cams, strict=True)),
                     _corpus_params(self.model, s), soap)

    def pair(self, rng: np.random.Generator) -> tuple[Frame, Frame]:
        identity = int(rng.integers(self.identities))
        a, b = rng.choice(self.expressions, 2, replace=self.expressions < 2)
        return self.frame(identity, int(a)), self.frame(identity, int(b))

    def soap_batch(self, rng: np.random.Generator, batch: int) -> dict[str, torch.Tensor]:
        frames = [self.frame(int(rng.integers(self.identities)), int(rng.integers(self.expressions)))
                  for _ in range(batch)]
        out = {k: torch.stack([f.soap[k] for f in frames]) for k in ("rgb", "normal", "alpha")}  # type: ignore[index]
        out["input"] = torch.stack([f.input_image for f in frames])
        from harness.heads.model import deform
        from harness_methods.omega.fitting import project_normalised

        out["landmarks"] = torch.stack([project_normalised(deform(self.model, f.params).landmarks, f.input_camera)
                                        for f in frames])  # type: ignore[arg-type]
        return out


class SplitData:
    """A dataset's training split (e.g. ``nersemble-v2:train``): subject/sequence/frame views from its reader."""

    def __init__(self, split: Any, root: Path, model: Any, size: int, frontal: str | None, targets: int) -> None:
        from harness.data.resolve import open_reader
        from harness.plugins.registry import get_registry

        spec = get_registry().dataset(split.split.dataset)
        self.reader = open_reader(spec, root)
        self.model, self.size = model, size
        self.items: list[tuple[str, str, list[int], list[str]]] = []
        for subject in split.subjects:
            cameras = self._cameras(subject)
            for sequence in self.reader.sequences(subject):
                frames = list(self.reader.frames(subject, sequence))
                if frames and cameras:
                    self.items.append((subject, sequence, frames, cameras))
        if not self.items:
            raise ValueError(f"omega: the split {split.split.name} has no readable sequences under {root}")
        self.frontal, self.targets = frontal, targets

    def _cameras(self, subject: str) -> list[str]:
        serials = self.reader._read_calibration(subject).serials
        return list(serials() if callable(serials) else serials)

    def _view(self, subject: str, sequence: str, frame: int, camera: str) -> View:
        return self.reader.load_view(ViewRef(subject, sequence, frame, camera))

    def frame(self, subject: str, sequence: str, frame: int, cameras: list[str], input_camera: str) -> Frame:
        from harness_methods.omega.views import square_crop

        image, _, cam = square_crop(self._view(subject, sequence, frame, input_camera), self.size)
        targets = [square_crop(self._view(subject, sequence, frame, c), self.size) for c in cameras]
        tracking = getattr(self.reader, "tracking", None)
        raw = tracking(subject, sequence, frame) if tracking is not None else None
        params = params_from_tracking(raw, self.model) if raw and raw.get("model") == self.model.name else None
        return Frame(image, cam, [(t[0], t[2]) for t in targets], params)

    def pair(self, rng: np.random.Generator) -> tuple[Frame, Frame]:
        subject, sequence, frames, cameras = self.items[int(rng.integers(len(self.items)))]
        a, b = (int(x) for x in rng.choice(frames, 2, replace=len(frames) < 2))
        input_camera = self.frontal if self.frontal in cameras else cameras[len(cameras) // 2]
        picks = [str(c) for c in rng.choice(cameras, min(self.targets, len(cameras)), replace=False)]
        return (self.frame(subject, sequence, a, [], input_camera),
                self.frame(subject, sequence, b, picks, input_camera))


class OmegaTrainer:
    def setup(self, context: TrainingContext) -> None:
        from harness_methods.omega.avatar import OmegaNet, mesh_binding

        if str(context.device).startswith("cpu"):
            from harness.threads import use_cpu_threads

            use_cpu_threads()  # `harness train` leaves torch's default (every core), which thrashes a shared CPU
        self.context = context
        self.config = dict(context.config)
        self.arch = {k: self.config[k] for k in ARCH_DEFAULTS}
        self.model = load_head_model(str(self.config["head_model"]))
        self.net = OmegaNet(self.arch, self.model)
        split = context.extra.get("split")
        if split is None:
            self.data: Any = CorpusData(context.data, self.model, int(self.config["input_camera"]))
            self.train_generator = bool(self.config["train_generator"])
        else:
            self.data = SplitData(split, context.data, self.model, int(self.arch["mv_resolution"]),
                                  str(self.config.get("frontal_camera") or "") or None,
                                  int(self.config["targets_per_step"]))
            self.train_generator = False  # SOAP (or the demo network) is frozen on real data
            start = str(self.config.get("generator_checkpoint") or "")
            if start:
                ckpt = load_checkpoint(Path(start), "omega", self.model.name, uv_layout_hash(self.model))
                own = self.net.state_dict()
                own.update({k: v for k, v in ckpt.state.items() if k.startswith("mv.") and k in own})
                self.net.load_state_dict(own)
        self.binding = mesh_binding(self.model, int(self.arch["uv_resolution"]))
        lr = float(self.config["lr"])
        self.opt_mv = torch.optim.Adam(self.net.mv.parameters(), lr=lr)
        self.opt_av = torch.optim.Adam(self.net.avatar_parameters(), lr=lr)
        self.fit_cache: dict[str, Any] = {}

    # Stage A
    def _mv_step(self, rng: np.random.Generator) -> dict[str, float]:
        batch = self.data.soap_batch(rng, int(self.config["mv_batch"]))
        out = self.net.mv(batch["input"])
        alpha = batch["alpha"]
        l_rgb = (out["rgb"] - batch["rgb"]).abs().mean()
        l_nml = ((out["normal"] * alpha[:, :, None] - batch["normal"]).abs()).mean()
        l_alpha = (out["alpha"] - alpha).abs().mean()
        l_lmk = ((out["landmarks"] - batch["landmarks"]) ** 2).sum(-1).mean() * 100
        loss = l_rgb + 0.5 * l_nml + 0.5 * l_alpha + l_lmk
        self.opt_mv.zero_grad()
        loss.backward()
        self.opt_mv.step()
        return {"mv_rgb": float(l_rgb.detach()), "mv_normal": float(l_nml.detach()),
                "mv_alpha": float(l_alpha.detach()), "mv_landmark": float(l_lmk.detach()),
                "mv_loss": float(loss.detach())}

    def _lambda_mv(self, step: int) -> float:
        first, last = int(self.config["mv_pretrain"]), max(int(self.context.steps) - 1, 1)
        t = min(max((step - first) / max(last - first, 1), 0.0), 1.0)
        return float(self.config["lambda_mv_start"]) + t * (float(self.config["lambda_mv_end"])
                                                            - float(self.config["lambda_mv_start"]))

    def _mesh(self, frame: Frame, generated: Any, cameras: list[Camera]) -> torch.Tensor:
        from harness_methods.omega.fitting import fit_head, posed
        from harness_methods.omega.views import head_pose_facing

        if frame.params is not None:
            return posed(self.model, frame.params).vertices
        cfg = {**METHOD_DEFAULTS, **{k: v for k, v in self.config.items() if k in METHOD_DEFAULTS}}
        rotation, translation = head_pose_facing(frame.input_camera, float(cfg["head_distance"]))
        fr = int(cfg["fit_resolution"])
        fit = fit_head(self.model, self.model.params(rotation=rotation, translation=translation),
                       frame.input_camera, generated.landmarks,
                       F.normalize(F.interpolate(generated.normal, size=(fr, fr), mode="area"), dim=1),
                       F.interpolate(generated.alpha[:, None], size=(fr, fr), mode="area")[:, 0],
                       [c.resized(fr, fr) for c in cameras], cfg, self.fit_cache)
        frame.params = fit.params
        return posed(self.model, fit.params, fit.offsets).vertices.detach()

    def _avatar_step(self, step: int, rng: np.random.Generator) -> dict[str, float]:
        from harness_methods.omega.avatar import build_gaussians, render_raw
        from harness_methods.omega.generator import NetworkGenerator
        from harness_methods.omega.views import orbit_cameras

        source, target = self.data.pair(rng)
        generated = NetworkGenerator(self.net.mv).generate(source.input_image)
        rgb = generated.rgb.clone()
        rgb[0] = source.input_image
        cameras = orbit_cameras(source.input_camera, float(self.config.get("head_distance", 1.0)), SOAP_YAWS)
        fitted = source.params is None
        src_vertices = self._mesh(source, generated, cameras)
        if target.params is not None and not fitted:
            from harness_methods.omega.fitting import posed

            tgt_vertices = posed(self.model, target.params).vertices
        else:
            tgt_vertices = src_vertices  # no tracking: the fitted source mesh (the expression is not re-fitted)
        avatar = build_gaussians(self.net, self.model, self.binding, rgb, cameras, src_vertices)
        faces = torch.as_tensor(self.model.faces)
        rr = int(self.config["render_resolution"])
        picks = rng.choice(len(target.targets), min(int(self.config["targets_per_step"]), len(target.targets)),
                           replace=False)
        l_raw = l_ref = l_face = torch.zeros(())
        for i in picks:
            image, camera = target.targets[int(i)]
            h, w = image.shape[-2:]
            raw, alpha = render_raw(avatar.head, tgt_vertices, faces, [camera.resized(rr, rr)])
            raw = F.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
            alpha = F.interpolate(alpha, size=(h, w), mode="bilinear", align_corners=False)
            refined = self.net.refiner(raw, alpha)[0]
            l_raw = l_raw + (raw[0] - image).abs().mean() / len(picks)
            l_ref = l_ref + (refined - image).abs().mean() / len(picks)
            box = self._face_box(tgt_vertices, camera, h, w)
            if box is not None:
                y0, y1, x0, x1 = box
                l_face = l_face + (refined[:, y0:y1, x0:x1] - image[:, y0:y1, x0:x1]).abs().mean() / len(picks)
        k = int(rng.integers(1, NUM_SOAP))
        side, _ = render_raw(avatar.head, src_vertices, faces, [cameras[k].resized(rr, rr)])
        side = F.interpolate(side, size=rgb.shape[-2:], mode="bilinear", align_corners=False)[0]
        l_mv = (side - rgb[k]).abs().mean()
        lam = self._lambda_mv(step)
        l_reg = (avatar.head.local_offsets ** 2).mean()
        loss = (l_raw + float(self.config["w_refined"]) * l_ref + float(self.config["w_face_box"]) * l_face
                + lam * l_mv + float(self.config["w_offset_reg"]) * l_reg)
        self.opt_av.zero_grad()
        loss.backward()
        self.opt_av.step()
        return {"raw_l1": float(l_raw.detach()), "refined_l1": float(l_ref.detach()), "face_l1": float(l_face.detach()),
                "side_view_l1": float(l_mv.detach()), "lambda_mv": lam, "avatar_loss": float(loss.detach())}

    def _face_box(self, vertices: torch.Tensor, camera: Camera, h: int, w: int) -> tuple[int, int, int, int] | None:
        from harness.heads.model import landmarks_from

        with torch.no_grad():
            points = landmarks_from(self.model, vertices)[:11]  # eyes, nose, mouth, chin
            pix, z = camera.project(points.numpy())
        if (z <= 0).any():
            return None
        x0, y0 = np.floor(pix.min(0)).astype(int)
        x1, y1 = np.ceil(pix.max(0)).astype(int)
        pad = max(2, int(0.15 * max(x1 - x0, y1 - y0)))
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        return (y0, y1, x0, x1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None

    def train_step(self, step: int) -> Mapping[str, float]:
        rng = step_generator(self.context.seed, step)
        losses: dict[str, float] = {}
        total = 0.0
        if self.train_generator:
            for _ in range(int(self.config["mv_steps_per_step"])):
                losses.update(self._mv_step(rng))
            total += losses["mv_loss"]
        if step >= int(self.config["mv_pretrain"]) or not self.train_generator:
            losses.update(self._avatar_step(step, rng))
            total += losses["avatar_loss"]
        losses["loss"] = total
        return losses

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt_mv": self.opt_mv.state_dict(), "opt_av": self.opt_av.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt_mv.load_state_dict(state["opt_mv"])
        self.opt_av.load_state_dict(state["opt_av"])

    def export(self) -> Checkpoint:
        return Checkpoint(method="omega", architecture=dict(self.arch), state=dict(self.net.state_dict()),
                          head_model=self.model.name, uv_layout=uv_layout_hash(self.model))
