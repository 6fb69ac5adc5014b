"""One rendering interface, two backends: gsplat on CUDA, our pure-PyTorch rasteriser on CPU.

Both take the same arguments (gsplat 1.5's ``rasterization`` conventions: OpenCV world-to-camera matrices, pixel
intrinsics, wxyz quaternions, linear scales, opacities in [0, 1]) and return the same outputs: colour, alpha and
accumulated depth, batched over cameras of one resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness.api.types import Camera

Backend = Literal["auto", "cpu", "gsplat"]


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (C, H, W, 3), composited over the background when one is given
    alpha: torch.Tensor  # (C, H, W, 1)
    depth: torch.Tensor  # (C, H, W, 1), alpha-weighted (divide by alpha for the expected depth)


def camera_tensors(cameras: Sequence[Camera], device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Stacked (C, 4, 4) world-to-camera matrices and (C, 3, 3) intrinsics of cameras sharing one resolution."""
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f"cameras rendered together must share one resolution, got {sorted(sizes)}")
    viewmats = torch.as_tensor(np.stack([c.world_to_camera for c in cameras]), dtype=dtype, device=device)
    Ks = torch.as_tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    width, height = sizes.pop()
    return viewmats, Ks, width, height


def gsplat_available() -> bool:
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_backend(backend: Backend, device: torch.device) -> Literal["cpu", "gsplat"]:
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "cpu"
    if backend == "gsplat" and not gsplat_available():
        raise RuntimeError("the gsplat backend needs the gsplat package and a CUDA device (pip install gsplat)")
    return backend


def render(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
           colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
           sh_degree: int | None = None, backgrounds: torch.Tensor | None = None,
           backend: Backend = "auto") -> RenderOutput:
    """Render N Gaussians into C cameras; ``colors`` is (N, 3) or SH coefficients (N, K, 3) with ``sh_degree``."""
    chosen = choose_backend(backend, means.device)
    if chosen == "gsplat":
        from gsplat import rasterization

        out, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                      sh_degree=sh_degree, backgrounds=None, render_mode="RGB+D")
        rgb, depth = out[..., :3], out[..., 3:4]
        if backgrounds is not None:
            rgb = rgb + (1 - alpha) * backgrounds[:, None, None, :]
        return RenderOutput(rgb, alpha, depth)
    from harness.render.cpu import rasterize

    rgb, alpha, depth = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                  sh_degree=sh_degree, backgrounds=backgrounds)
    return RenderOutput(rgb, alpha, depth)
