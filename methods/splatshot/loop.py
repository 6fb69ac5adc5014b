"""The SplatShot loop, batched across all views: DDIM img2img from renders of the base head, with at each step

1. the noise of every view predicted three ways in one batch: unconditional, conditioned on the target identity
   (the input photo) and on the base head's identity (its frontal render); classifier-free guidance gives
   ``eps_target`` and ``eps_base``;
2. the semantic delta ``eps_sem = eps_GT + w_sem (eps_target - eps_base)`` (``eps_GT``: the initial noise, reused at
   every step) forms ``x0_sem``, decoded to images;
3. the 3DGS refit to all decoded views (``Refitter``: Adam state kept across steps);
4. the feedback: L = mean((decode(x0_sem) - render)^2) with the refitted render held fixed, dL/dx0 through the
   decoder by autograd, dL/deps = -(sigma_t / alpha_t) dL/dx0 (``schedule.deps_from_dx0``), and the DDIM step taken
   with ``eps_target - guidance_weight * dL/deps``.

All x0/eps conversions use the scheduler's own ``alphas_cumprod``. With ``guidance_weight = 0`` and no refit the
loop is plain DDIM img2img (the tests check it against diffusers' own pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness_methods.splatshot.networks import Prior, set_ip_adapter_scale
from harness_methods.splatshot.refit import Refitter
from harness_methods.splatshot.schedule import deps_from_dx0, img2img_timesteps, x0_from_eps


@dataclass
class LoopSettings:
    steps: int = 25
    strength: float = 0.5
    cfg_scale: float = 4.0
    ip_adapter_scale: float = 0.8
    semantic_weight: float = 0.5
    guidance_weight: float = 5e4
    refit_first: int = 1000
    refit_later: int = 500
    mode: str = "joint"  # "joint": refit + feedback every step; "per_view": denoise views independently
    batch: int = 48  # UNet batch (views x 3 branches are chunked to this)


@dataclass
class LoopResult:
    images: torch.Tensor  # (V, 3, R, R) final denoised views in [0, 1]
    latents: torch.Tensor
    timesteps: list[int]
    history: list[dict[str, Any]] = field(default_factory=list)


def decode_images(prior: Prior, latents: torch.Tensor) -> torch.Tensor:
    return (prior.codec.decode(latents) + 1) / 2


def feedback_loss(decoded: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the decoded x0 (with gradient) and the 3DGS render (constant)."""
    return ((decoded - rendered.detach()) ** 2).mean()


def feedback_gradient(prior: Prior, x0: torch.Tensor, rendered: torch.Tensor, t: int
                      ) -> tuple[torch.Tensor, float]:
    """dL/deps for the feedback loss at timestep ``t`` (chain rule through the decoder and x0(eps)), and L."""
    x0 = x0.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = feedback_loss(decode_images(prior, x0), rendered)
        (grad_x0,) = torch.autograd.grad(loss, x0)
    return deps_from_dx0(prior.scheduler, grad_x0, t), float(loss.detach())


def _noise_predictions(prior: Prior, x: torch.Tensor, t: int, embeds: dict[str, torch.Tensor], cfg: float,
                       need_base: bool, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    views = len(x)
    branches = ["uncond", "target"] + (["base"] if need_base else [])
    texts = {"uncond": prior.negative_text_embeds, "target": prior.text_embeds, "base": prior.text_embeds}
    xs = torch.cat([x] * len(branches))
    text = torch.cat([texts[b].expand(views, -1, -1) for b in branches])
    image = torch.cat([embeds[b].expand(views, -1, -1) for b in branches])
    with torch.no_grad():
        eps = torch.cat([prior.predict(xs[i:i + batch], t, text[i:i + batch], image[i:i + batch])
                         for i in range(0, len(xs), batch)])
    parts = eps.split(views)
    uncond, target = parts[0], parts[1]
    eps_target = uncond + cfg * (target - uncond)
    eps_base = uncond + cfg * (parts[2] - uncond) if need_base else eps_target
    return eps_target, eps_base


def run_loop(prior: Prior, init_images: torch.Tensor, target_id: torch.Tensor, base_id: torch.Tensor,
             settings: LoopSettings, generator: torch.Generator, refitter: Refitter | None = None,
             on_step: Callable[[dict[str, Any]], None] | None = None) -> LoopResult:
    """Denoise ``init_images`` (V, 3, R, R) in [0, 1] jointly; ``target_id``/``base_id`` (1, 3, R', R') in [0, 1]."""
    scheduler = prior.scheduler
    set_ip_adapter_scale(prior.unet, settings.ip_adapter_scale)
    timesteps = img2img_timesteps(scheduler, settings.steps, settings.strength)
    with torch.no_grad():
        z0 = prior.codec.encode(init_images * 2 - 1).float()
        embeds = {"uncond": prior.uncond_image_embeds(target_id), "target": prior.image_embeds(target_id),
                  "base": prior.image_embeds(base_id)}
    noise = torch.randn(z0.shape, generator=generator, dtype=z0.dtype)  # eps_GT
    x = scheduler.add_noise(z0, noise, torch.tensor([timesteps[0]]))
    joint = settings.mode == "joint"
    if settings.mode not in ("joint", "per_view"):
        raise ValueError(f"splatshot: mode must be 'joint' or 'per_view', not {settings.mode!r}")
    need_base = settings.semantic_weight != 0
    history: list[dict[str, Any]] = []
    for step, t in enumerate(timesteps):
        eps_target, eps_base = _noise_predictions(prior, x, t, embeds, settings.cfg_scale, need_base,
                                                  settings.batch)
        eps_sem = noise + settings.semantic_weight * (eps_target - eps_base)
        x0_sem = x0_from_eps(scheduler, x, eps_sem, t)
        record: dict[str, Any] = {"step": step, "t": t}
        eps_step = eps_target
        if joint and refitter is not None:
            with torch.no_grad():
                decoded = decode_images(prior, x0_sem).clamp(0, 1)
            iterations = settings.refit_first if step == 0 else settings.refit_later
            losses = refitter.fit(decoded, iterations)
            record["refit_loss"] = losses[-1] if losses else None
            if settings.guidance_weight != 0:
                grad_eps, loss = feedback_gradient(prior, x0_sem, refitter.render(), t)
                eps_step = eps_target - settings.guidance_weight * grad_eps
                record["feedback_loss"] = loss
        x = scheduler.step(eps_step, t, x, eta=0.0).prev_sample
        history.append(record)
        if on_step:
            on_step(record)
    with torch.no_grad():
        images = decode_images(prior, x).clamp(0, 1)
    return LoopResult(images, x, timesteps, history)
