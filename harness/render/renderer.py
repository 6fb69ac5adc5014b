"""One rendering interface, two backends: gsplat on CUDA, our pure-PyTorch rasteriser on CPU.

Both take the same arguments (gsplat 1.5's ``rasterization`` conventions: OpenCV world-to-camera matrices, pixel
intrinsics, wxyz quaternions, linear scales, opacities in [0, 1]) and return the same outputs: colour, alpha and
accumulated depth, batched over cameras of one resolution.

Colours are RGB, SH coefficients (N, K, 3) with ``sh_degree``, or, without it, any D >= 1 feature channels per
Gaussian (N, D) or per camera and Gaussian (C, N, D); the output then has D channels and ``backgrounds`` is (C, D).
``render_normals_depth`` renders each Gaussian's normal as such a 3-channel feature, so both backends share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness.api.types import Camera
from harness.render.cpu import check_colors, quat_to_rotmat, rasterize

Backend = Literal["auto", "cpu", "gsplat"]


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (C, H, W, D), D = 3 for RGB/SH, composited over the background when one is given
    alpha: torch.Tensor  # (C, H, W, 1)
    depth: torch.Tensor  # (C, H, W, 1), alpha-weighted (divide by alpha for the expected depth)

    @property
    def features(self) -> torch.Tensor:
        """The rendered channels under their general name: ``rgb`` when ``colors`` were D feature channels."""
        return self.rgb

    @property
    def expected_depth(self) -> torch.Tensor:
        """(C, H, W, 1): accumulated depth / alpha where alpha > 0, else 0."""
        return expected_depth(self.depth, self.alpha)


@dataclass
class NormalsDepth:
    normals: torch.Tensor  # (C, H, W, 3) unit camera-space normals facing the camera where alpha > 0, else 0
    depth: torch.Tensor  # (C, H, W, 1) expected camera-space z (accumulated depth / alpha) where alpha > 0, else 0
    alpha: torch.Tensor  # (C, H, W, 1)


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


def expected_depth(depth: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Accumulated depth / alpha where alpha > 0, else 0 (gradients stay finite where alpha is 0)."""
    return torch.where(alpha > 0, depth / alpha.clamp_min(1e-10), torch.zeros_like(depth))


def _rasterize(chosen: Literal["cpu", "gsplat"], means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
               opacities: torch.Tensor, colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
               height: int, sh_degree: int | None, backgrounds: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour (C, H, W, D) over the background, alpha (C, H, W, 1) and accumulated depth (C, H, W, 1)."""
    check_colors(colors, sh_degree, len(viewmats), len(means), backgrounds)
    if chosen == "gsplat":
        from gsplat import rasterization

        # "RGB+D" appends the accumulated depth as channel D + 1, for any D (gsplat pads and chunks channels).
        out, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                      sh_degree=sh_degree, backgrounds=None, render_mode="RGB+D")
        colour, depth = out[..., :-1], out[..., -1:]
        if backgrounds is not None:
            colour = colour + (1 - alpha) * backgrounds[:, None, None, :]
        return colour, alpha, depth
    return rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree=sh_degree,
                     backgrounds=backgrounds)


def render(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
           colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
           sh_degree: int | None = None, backgrounds: torch.Tensor | None = None,
           backend: Backend = "auto") -> RenderOutput:
    """Render N Gaussians into C cameras.

    ``colors``: (N, D) or (C, N, D) features for any D >= 1, or SH coefficients (N, K, 3) with ``sh_degree``;
    ``backgrounds``: (C, D). The output's ``rgb`` (alias ``features``) has D channels.
    """
    chosen = choose_backend(backend, means.device)
    rgb, alpha, depth = _rasterize(chosen, means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                   sh_degree, backgrounds)
    return RenderOutput(rgb, alpha, depth)


def gaussian_normals(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(N, 3) world-space unit normals: each rotation's axis of smallest scale (unoriented)."""
    rot = quat_to_rotmat(quats)
    axis = scales.detach().argmin(dim=-1)
    return torch.gather(rot, 2, axis[:, None, None].expand(-1, 3, 1))[..., 0]


def camera_normals(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                   viewmats: torch.Tensor) -> torch.Tensor:
    """(C, N, 3) camera-space unit normals, flipped where needed to face the camera: n . centre_cam <= 0."""
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    normals = torch.einsum("cij,nj->cni", rot, gaussian_normals(quats, scales))
    centres = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]
    away = (normals * centres).sum(-1, keepdim=True).detach() > 0
    return torch.where(away, -normals, normals)


def render_normals_depth(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                         viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                         backend: Backend = "auto") -> NormalsDepth:
    """Normal map and expected depth of N Gaussians in C cameras, in one 3-channel feature render.

    Normals are in each camera's OpenCV frame (x right, y down, z forward), each Gaussian's being its axis of
    smallest scale turned towards the camera (a surface facing the camera has z < 0); the pixel's normal is the
    alpha-weighted blend, normalised to unit length (0 where alpha is 0). Depth is camera-space z, the accumulated
    depth divided by alpha where alpha > 0, else 0.
    """
    out = render(means, quats, scales, opacities, camera_normals(means, quats, scales, viewmats), viewmats, Ks,
                 width, height, backend=backend)
    normals = torch.nn.functional.normalize(out.features, dim=-1)
    return NormalsDepth(normals, out.expected_depth, out.alpha)
