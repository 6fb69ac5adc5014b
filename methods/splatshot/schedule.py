"""Every x0 <-> eps conversion from the scheduler's own ``alphas_cumprod`` (the public SplatShot code mixes a linear
beta schedule into a scaled-linear pipeline; here there is exactly one schedule, the scheduler's)."""

from __future__ import annotations

import math

import torch


def _alpha_sigma(scheduler, t: int | torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    abar = scheduler.alphas_cumprod.to(device=like.device, dtype=torch.float64)[int(t)]
    return abar.sqrt().to(like.dtype), (1 - abar).sqrt().to(like.dtype)


def x0_from_eps(scheduler, x_t: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    alpha, sigma = _alpha_sigma(scheduler, t, x_t)
    return (x_t - sigma * eps) / alpha


def eps_from_x0(scheduler, x_t: torch.Tensor, x0: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    alpha, sigma = _alpha_sigma(scheduler, t, x_t)
    return (x_t - alpha * x0) / sigma


def deps_from_dx0(scheduler, grad_x0: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    """Chain rule through x0 = (x_t - sigma eps) / alpha: dL/deps = -(sigma / alpha) dL/dx0."""
    alpha, sigma = _alpha_sigma(scheduler, t, grad_x0)
    return -(sigma / alpha) * grad_x0


def img2img_timesteps(scheduler, steps: int, strength: float) -> list[int]:
    """The timesteps img2img runs: the last ``ceil(steps * strength)`` of the scheduler's ``steps``.

    With SD-1.5's DDIM config (1000 training steps, "leading" spacing, offset 1), 25 steps and strength 0.5 this
    starts at t=481 and runs 13 steps, as the official code does. diffusers' own img2img pipeline rounds down
    (``int(steps * strength)``); both agree whenever ``steps * strength`` is a whole number.
    """
    scheduler.set_timesteps(int(steps))
    count = min(int(steps), math.ceil(int(steps) * float(strength) - 1e-9))
    return [int(t) for t in scheduler.timesteps[len(scheduler.timesteps) - count:]]
