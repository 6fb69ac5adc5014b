"""The 3DGS refit: free Gaussians fitted to the denoised views with the project's renderer.

Loss ``0.8 L1 + 0.2 (1 - SSIM)`` (SSIM: Gaussian window 11, sigma 1.5); one view per Adam iteration, drawn with
probabilities from ``softmax(-10 * L1(render, view))`` min-max normalised over the views (the worst view gets weight
0); no densification; the Adam state persists across denoising steps (one ``Refitter`` lives for the whole loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.render.cpu import SH_C0
from harness.render.gaussians import Gaussians
from harness.render.renderer import render


@dataclass
class FreeGaussians:
    means: torch.Tensor  # (N, 3)
    quats: torch.Tensor  # (N, 4) wxyz
    log_scales: torch.Tensor  # (N, 3)
    opacity_logits: torch.Tensor  # (N,)
    colours: torch.Tensor  # (N, 3) SH degree-0 coefficients

    def tensors(self) -> list[torch.Tensor]:
        return [self.means, self.quats, self.log_scales, self.opacity_logits, self.colours]

    def clone(self) -> FreeGaussians:
        return FreeGaussians(*[t.detach().clone() for t in self.tensors()])

    def to_gaussians(self) -> Gaussians:
        return Gaussians(means=self.means.detach().numpy().copy(), quats=self.quats.detach().numpy().copy(),
                         log_scales=self.log_scales.detach().numpy().copy(),
                         opacity_logits=self.opacity_logits.detach().numpy().copy(),
                         sh=self.colours.detach().numpy()[:, None, :].copy())

    @classmethod
    def from_gaussians(cls, g: Gaussians) -> FreeGaussians:
        return cls(torch.as_tensor(g.means, dtype=torch.float32), torch.as_tensor(g.quats, dtype=torch.float32),
                   torch.as_tensor(g.log_scales, dtype=torch.float32),
                   torch.as_tensor(g.opacity_logits, dtype=torch.float32),
                   torch.as_tensor(g.sh[:, 0, :], dtype=torch.float32))

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, H, W, 3) colour over ``background`` (3,) and (C, H, W) alpha."""
        out = render(self.means, self.quats, torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
                     self.colours[:, None, :], viewmats, Ks, width, height, sh_degree=0,
                     backgrounds=background[None, :].expand(len(viewmats), 3).contiguous())
        return out.rgb, out.alpha[..., 0]


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None].repeat(3, 1, 1, 1)


_WINDOW = _gaussian_window()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of (B, 3, H, W) images in [0, 1] (data range 1), per image (B,)."""
    c1, c2 = 0.01**2, 0.03**2
    w = _WINDOW.to(a)
    conv = lambda x: torch.nn.functional.conv2d(x, w, padding=5, groups=3)  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    var_a, var_b = conv(a * a) - mu_a**2, conv(b * b) - mu_b**2
    cov = conv(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.mean(dim=(1, 2, 3))


def photometric_loss(render_bchw: torch.Tensor, target_bchw: torch.Tensor) -> torch.Tensor:
    """0.8 L1 + 0.2 (1 - SSIM), per image (B,)."""
    l1 = (render_bchw - target_bchw).abs().mean(dim=(1, 2, 3))
    return 0.8 * l1 + 0.2 * (1 - ssim(render_bchw, target_bchw))


def view_weights(l1: torch.Tensor, temperature: float = 10.0) -> torch.Tensor:
    """softmax(-temperature * L1), min-max normalised (worst view 0, best 1); all ones when the views tie."""
    w = torch.softmax(-temperature * l1, dim=0)
    span = w.max() - w.min()
    return (w - w.min()) / span if span > 1e-12 else torch.ones_like(w)


LEARNING_RATES = {"means": 2e-4, "quats": 1e-3, "log_scales": 5e-3, "opacity_logits": 2e-2, "colours": 1e-2}


class Refitter:
    """Fits ``gaussians`` (in place) to a set of views; its Adam state is kept between ``fit`` calls."""

    def __init__(self, gaussians: FreeGaussians, viewmats: torch.Tensor, Ks: torch.Tensor, resolution: int,
                 background: torch.Tensor, lr_scale: float = 1.0, seed: int = 0) -> None:
        self.g = gaussians
        self.viewmats, self.Ks, self.resolution = viewmats, Ks, int(resolution)
        self.background = background
        for t in self.g.tensors():
            t.requires_grad_(True)
        names = ("means", "quats", "log_scales", "opacity_logits", "colours")
        self.optimiser = torch.optim.Adam([{"params": [t], "lr": LEARNING_RATES[n] * lr_scale}
                                           for n, t in zip(names, self.g.tensors(), strict=True)], eps=1e-15)
        self.rng = np.random.default_rng(seed)
        self.iterations = 0
        self._cached: tuple[int, torch.Tensor] | None = None

    def render(self) -> torch.Tensor:
        """(V, 3, R, R) renders of the current Gaussians in every view (no gradient; cached until the next Adam
        step, so the feedback's render also gives the next refit its view weights)."""
        if self._cached is None or self._cached[0] != self.iterations:
            with torch.no_grad():
                rgb, _ = self.g.render(self.viewmats, self.Ks, self.resolution, self.resolution, self.background)
            self._cached = (self.iterations, rgb.permute(0, 3, 1, 2).contiguous())
        return self._cached[1]

    def fit(self, targets: torch.Tensor, iterations: int) -> list[float]:
        """``iterations`` Adam steps towards ``targets`` (V, 3, R, R) in [0, 1]; returns the per-iteration losses."""
        targets = targets.detach().clamp(0, 1)
        if iterations <= 0:
            return []
        with torch.no_grad():
            l1 = (self.render() - targets).abs().mean(dim=(1, 2, 3))
        weights = view_weights(l1).numpy().astype(np.float64)
        p = weights / weights.sum()
        losses = []
        for _ in range(int(iterations)):
            i = int(self.rng.choice(len(p), p=p))
            rgb, _ = self.g.render(self.viewmats[i:i + 1], self.Ks[i:i + 1], self.resolution, self.resolution,
                                   self.background)
            loss = photometric_loss(rgb.permute(0, 3, 1, 2), targets[i:i + 1]).mean()
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            with torch.no_grad():
                self.g.log_scales.clamp_(max=np.log(0.05))
            losses.append(float(loss.detach()))
            self.iterations += 1
        return losses

    def loss(self, targets: torch.Tensor) -> float:
        """Mean photometric loss over all views (no gradient)."""
        with torch.no_grad():
            return float(photometric_loss(self.render(), targets.clamp(0, 1)).mean())
