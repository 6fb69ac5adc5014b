"""``harness train splatshot``: the demo prior, a tiny denoiser trained on synthetic-corpus renders.

Each example is one corpus view of a training identity (composited on the protocol background, white), noised at a
uniformly drawn timestep of the scheduler; the denoiser predicts the clean latents (``prediction_type="sample"``:
at this size an eps-predicting network left x0 at 11.5 dB PSNR at t=481 after 1200 steps; the loop converts x0 to
eps with the scheduler's ``alphas_cumprod``), conditioned through the IP-Adapter path
on a reference image of the same identity (another expression of it; the frontal camera with probability
``frontal_reference``, else a random camera). With probability ``condition_dropout`` the reference is replaced by an
all-zero image (the IP-Adapter-Plus negative), so one network gives the conditional and unconditional predictions
classifier-free guidance needs. The corpus's identities are disjoint from every evaluation subject (the corpus
manifest records their distances). All randomness comes from ``step_generator``/``step_seed``, so a resumed run ends
with the checkpoint an uninterrupted run ends with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.checkpoints import Checkpoint
from harness.synth.corpus import Corpus
from harness.training import TrainingContext, step_generator, step_seed
from harness_methods.splatshot.defaults import DEMO_ARCHITECTURE, TRAINER_DEFAULTS
from harness_methods.splatshot.networks import build_demo_prior, prior_state

FRONTAL_VIEW = 8  # the rig camera at yaw 0, pitch 0 (harness.synth.cameras.RIG_ANGLES)



def composite(rgb: np.ndarray, alpha: np.ndarray, background: float) -> np.ndarray:
    """Corpus colour is premultiplied on black: composite on a flat background, float in [0, 1]."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return rgb.astype(np.float32) / 255.0 + (1 - a) * background


class SplatShotTrainer:
    def setup(self, context: TrainingContext) -> None:
        self.context = context
        if str(context.device).startswith("cpu"):
            from harness.threads import use_cpu_threads

            use_cpu_threads()  # `harness train` leaves torch's default (a thread per core), which collapses under load
        config = {**TRAINER_DEFAULTS, **context.config}
        self.config = config
        corpus = Corpus(context.data)
        self.manifest = corpus.manifest
        if corpus.config.camera_set != "rig" or corpus.config.resolution != int(config["resolution"]):
            raise ValueError(f"the splatshot demo prior trains on rig renders at {config['resolution']} px; corpus "
                             f"{context.data} has camera_set={corpus.config.camera_set}, resolution="
                             f"{corpus.config.resolution}")
        everything = corpus.batch(list(range(len(corpus))))
        images = composite(everything["rgb"], everything["alpha"], float(config["background"]))
        self.images = torch.from_numpy(images).permute(0, 1, 4, 2, 3).contiguous()  # (S, V, 3, R, R)
        self.identity = everything["identity_index"].astype(np.int64)
        self.by_identity = {int(i): np.flatnonzero(self.identity == i) for i in np.unique(self.identity)}
        arch = {k: config[k] for k in DEMO_ARCHITECTURE}
        probe = build_demo_prior(arch)
        latents = probe.codec.encode(self.images[:, :, :, :, :].reshape(-1, 3, *self.images.shape[-2:])[::7] * 2 - 1)
        arch["scaling_factor"] = float(1.0 / latents.std())  # unit-variance latents, as SD's 0.18215 is for its VAE
        self.arch = arch
        self.prior = build_demo_prior(arch)
        self.optimiser = torch.optim.AdamW([*self.prior.parameters(), self.prior.text_embeds], lr=float(config["lr"]),
                                           weight_decay=1e-4)
        total = max(1, int(context.steps))
        final = float(config["lr_final"]) / float(config["lr"])
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: final ** min(1.0, s / total))

    def train_step(self, step: int) -> dict[str, float]:
        config, prior = self.config, self.prior
        rng = step_generator(self.context.seed, step, "batch")
        batch = int(config["batch"])
        samples = rng.integers(0, len(self.images), batch)
        views = rng.integers(0, self.images.shape[1], batch)
        references = np.array([rng.choice(self.by_identity[int(self.identity[s])]) for s in samples])
        ref_views = np.where(rng.random(batch) < float(config["frontal_reference"]), FRONTAL_VIEW,
                             rng.integers(0, self.images.shape[1], batch))
        dropped = torch.from_numpy(rng.random(batch) < float(config["condition_dropout"]))
        targets = self.images[samples, views]
        reference = self.images[references, ref_views]
        reference = torch.where(dropped[:, None, None, None], torch.zeros_like(reference), reference)
        generator = torch.Generator().manual_seed(step_seed(self.context.seed, step, "noise"))
        z0 = prior.codec.encode(targets * 2 - 1)
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(0, prior.scheduler.config.num_train_timesteps, (batch,), generator=generator)
        x_t = prior.scheduler.add_noise(z0, noise, t)
        embeds = prior.image_embeds(reference)
        out = prior.network(x_t, t, prior.text_embeds.expand(batch, -1, -1), embeds)
        loss = torch.nn.functional.mse_loss(out, z0 if prior.prediction_type == "sample" else noise)
        self.optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        self.optimiser.step()
        self.schedule.step()
        return {"loss": float(loss.detach()), "lr": float(self.schedule.get_last_lr()[0])}

    def state_dict(self) -> dict[str, Any]:
        return {"prior": prior_state(self.prior), "optimiser": self.optimiser.state_dict(),
                "schedule": self.schedule.state_dict(), "arch": self.arch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.arch = dict(state["arch"])
        self.prior = build_demo_prior(self.arch, state["prior"])
        self.optimiser = torch.optim.AdamW([*self.prior.parameters(), self.prior.text_embeds],
                                           lr=float(self.config["lr"]), weight_decay=1e-4)
        self.optimiser.load_state_dict(state["optimiser"])
        total = max(1, int(self.context.steps))
        final = float(self.config["lr_final"]) / float(self.config["lr"])
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, lambda s: final ** min(1.0, s / total))
        self.schedule.load_state_dict(state["schedule"])

    def export(self) -> Checkpoint:
        return Checkpoint(method="splatshot", architecture=dict(self.arch), state=prior_state(self.prior),
                          head_model=str(self.manifest["head_model"]), uv_layout=str(self.manifest["uv_layout"]))
