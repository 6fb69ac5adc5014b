"""Differentiable pure-PyTorch Gaussian rasteriser, the CPU stand-in for gsplat's ``rasterization``.

Same conventions as gsplat 1.5: OpenCV world-to-camera ``viewmats`` (C, 4, 4), pixel ``Ks`` (C, 3, 3), quaternions
(w, x, y, z, normalised here), linear scales, opacities in [0, 1], pixel centres at (x + 0.5, y + 0.5), a 0.3-pixel
low-pass added to each projected covariance, Gaussians behind ``near_plane`` dropped, per-pixel opacity clamped at
0.99 and contributions below 1/255 skipped, front-to-back compositing by camera-space depth. Differences from
gsplat: no early stop when transmittance falls below 1e-4 (a change below 1e-4 per pixel), depth sorting per
Gaussian centre (as gsplat). Outputs: colour (C, H, W, D) composited over ``backgrounds`` (C, D), alpha (C, H, W, 1)
and accumulated depth (C, H, W, 1), i.e. gsplat's ``render_mode="RGB+D"``. Without ``sh_degree`` the colours are any
D >= 1 feature channels per Gaussian, (N, D), or per camera and Gaussian, (C, N, D); SH coefficients are (N, K, 3).

Work is done per tile of pixels, with each Gaussian's 3-sigma box culled against the tile, so memory stays bounded.
"""

from __future__ import annotations

import torch

LOW_PASS = 0.3
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*quats.shape[:-1], 3, 3)


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Evaluate real spherical harmonics (3DGS convention) of (N, K, 3) at unit directions (N, 3); + 0.5, >= 0."""
    x, y, z = dirs.unbind(-1)
    result = SH_C0 * sh[:, 0]
    if degree >= 1:
        result = result - SH_C1 * y[:, None] * sh[:, 1] + SH_C1 * z[:, None] * sh[:, 2] - SH_C1 * x[:, None] * sh[:, 3]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        basis2 = [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
        result = result + sum(b[:, None] * sh[:, 4 + i] for i, b in enumerate(basis2))
    if degree >= 3:
        basis3 = [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4 * zz - xx - yy),
                  SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                  SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
        result = result + sum(b[:, None] * sh[:, 9 + i] for i, b in enumerate(basis3))
    return torch.clamp_min(result + 0.5, 0.0)


def _project(means: torch.Tensor, covs: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor):
    cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]
    x, y, z = cam.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    zero = torch.zeros_like(z)
    jac = torch.stack([fx / z, zero, -fx * x / z**2, zero, fy / z, -fy * y / z**2], dim=-1).reshape(-1, 2, 3)
    rot = viewmat[:3, :3]
    cov_cam = rot @ covs @ rot.T
    cov2d = jac @ cov_cam @ jac.transpose(1, 2) + LOW_PASS * torch.eye(2, dtype=means.dtype)
    centre = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    return centre, cov2d, z


def check_colors(colors: torch.Tensor, sh_degree: int | None, num_cameras: int, num_gaussians: int,
                 backgrounds: torch.Tensor | None = None) -> int:
    """The number of rendered channels D, after checking the shapes of ``colors`` and ``backgrounds``."""
    if sh_degree is None:
        ok = colors.dim() == 2 or (colors.dim() == 3 and colors.shape[0] == num_cameras)
        ok = ok and colors.shape[-2] == num_gaussians and colors.shape[-1] >= 1
        expected = "(N, D) or (C, N, D) without sh_degree"
    else:
        ok = colors.dim() == 3 and colors.shape[0] == num_gaussians and colors.shape[-1] == 3
        ok = ok and colors.shape[1] >= (sh_degree + 1) ** 2
        expected = f"SH coefficients (N, K >= {(sh_degree + 1) ** 2}, 3) with sh_degree={sh_degree}"
    if not ok:
        raise ValueError(f"colors must be {expected} (C={num_cameras}, N={num_gaussians}), got {tuple(colors.shape)}")
    channels = colors.shape[-1]
    if backgrounds is not None and tuple(backgrounds.shape) != (num_cameras, channels):
        raise ValueError(f"backgrounds must be (C, D) = ({num_cameras}, {channels}), got {tuple(backgrounds.shape)}")
    return channels


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
              sh_degree: int | None = None, backgrounds: torch.Tensor | None = None, near_plane: float = 0.01,
              tile: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render N Gaussians into C cameras; ``colors`` is (N, D) or (C, N, D) features, or SH (N, K, 3) with
    ``sh_degree``; ``backgrounds`` is (C, D)."""
    channels = check_colors(colors, sh_degree, len(viewmats), len(means), backgrounds)
    rot = quat_to_rotmat(quats)
    covs = rot @ torch.diag_embed(scales**2) @ rot.transpose(1, 2)
    images, alphas, depths = [], [], []
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means.dtype) + 0.5,
                            torch.arange(width, dtype=means.dtype) + 0.5, indexing="ij")
    for c in range(len(viewmats)):
        centre, cov2d, z = _project(means, covs, viewmats[c], Ks[c])
        if sh_degree is None:
            rgb = colors if colors.dim() == 2 else colors[c]
        else:
            cam_centre = -viewmats[c][:3, :3].T @ viewmats[c][:3, 3]
            rgb = sh_to_rgb(colors, torch.nn.functional.normalize(means - cam_centre, dim=-1), sh_degree)
        det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] ** 2
        conic = torch.stack([cov2d[:, 1, 1], -cov2d[:, 0, 1], cov2d[:, 0, 0]], dim=-1) / det[:, None]
        radius = 3.0 * torch.sqrt(torch.maximum(cov2d[:, 0, 0], cov2d[:, 1, 1])).detach()
        visible = (z > near_plane) & (det > 0)
        order = torch.argsort(z.detach())
        order = order[visible[order]]
        sorted_centre, sorted_radius = centre.detach()[order], radius[order]
        colour = torch.zeros(height, width, channels, dtype=means.dtype)
        trans_map = torch.ones(height, width, dtype=means.dtype)
        depth = torch.zeros(height, width, dtype=means.dtype)
        for top in range(0, height, tile):
            bottom = min(top + tile, height)
            for left in range(0, width, tile):
                right = min(left + tile, width)
                hit = ((sorted_centre[:, 0] + sorted_radius > left) & (sorted_centre[:, 0] - sorted_radius < right)
                       & (sorted_centre[:, 1] + sorted_radius > top) & (sorted_centre[:, 1] - sorted_radius < bottom))
                ids = order[hit]
                if len(ids) == 0:
                    continue
                px, py = xs[top:bottom, left:right].reshape(-1), ys[top:bottom, left:right].reshape(-1)
                dx, dy = px[None, :] - centre[ids, 0:1], py[None, :] - centre[ids, 1:2]
                power = -0.5 * (conic[ids, 0:1] * dx * dx + conic[ids, 2:3] * dy * dy) - conic[ids, 1:2] * dx * dy
                alpha = torch.clamp_max(opacities[ids, None] * torch.exp(power), ALPHA_MAX)
                alpha = torch.where((alpha >= ALPHA_MIN) & (power <= 0), alpha, torch.zeros_like(alpha))
                trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), dim=0)
                weight = alpha * trans  # (G, P): front-to-back contribution of each Gaussian to each pixel
                shape = (bottom - top, right - left)
                colour[top:bottom, left:right] = (weight.T @ rgb[ids]).reshape(*shape, channels)
                trans_map[top:bottom, left:right] = (trans[-1] * (1 - alpha[-1])).reshape(shape)
                depth[top:bottom, left:right] = (weight.T @ z[ids]).reshape(shape)
        if backgrounds is not None:
            colour = colour + trans_map[..., None] * backgrounds[c]
        images.append(colour)
        alphas.append((1 - trans_map)[..., None])
        depths.append(depth[..., None])
    return torch.stack(images), torch.stack(alphas), torch.stack(depths)
