"""The SynShot prior: UV-space VQ encoders and decoders, per-part Gaussian regressors, and the Gaussians they make.

    x_tex (+ visibility), x_verts --E_id--> z_id --q--> D_id -> (texture, identity offsets)
    x_exp                         --E_expr--> z_expr --q--> D_expr -> expression offsets
    q(z_id), q(z_expr)            --D_feat--> F-channel feature map
    feature map --R_color[part]--> SH,  --R_gauss[part]--> position / rotation / scale / opacity offsets

Gaussians live on per-part UV sample sets (face = every region but the scalp, hair = the scalp), fixed at
construction (face id + barycentric on the template, hence a uv). Their canonical position is the template surface
point plus the decoded identity + expression offsets read bilinearly at the sample's uv (phi = verts + expr), plus
R_gauss's position offset in the tangent frame; the tangent frame T = dphi/du, B = dphi/dv, N = T x B is that of
the sample's triangle on the decoded geometry (vertex offsets read from the same maps); the initial scale is the
nearest-neighbour distance between samples, opacity 0.7. Neck, jaw and eyes are applied by linear blend skinning
(weights interpolated at the sample) and the global similarity just before splatting (``pose_gaussians``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.geometry.attributes import dilate_uv_map, interpolate, uv_attribute_map, vertex_uv_corners
from harness.geometry.uv_raster import uv_raster
from harness.heads.binding import rotmat_to_quat, sample_surface
from harness.heads.model import HeadModel, HeadParams, axis_angle_to_matrix, euler_xyz_to_matrix, surface_points
from harness.render.cpu import SH_C0

PARTS = ("face", "hair")
GAUSS_CHANNELS = 3 + 4 + 3 + 1  # position, rotation (quaternion delta), log-scale, opacity-logit offsets


# --------------------------------------------------------------------------------------------------- quantisation
class VectorQuantizer(nn.Module):
    """Element-wise nearest-codebook quantisation with a straight-through gradient and a commitment loss."""

    def __init__(self, size: int, dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(size, dim).uniform_(-1.0 / size, 1.0 / size))
        self.beta = beta
        self.register_buffer("ema_usage", torch.zeros(size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def refresh(self, z: torch.Tensor, generator: torch.Generator, decay: float = 0.95, dead: float = 0.03) -> int:
        """Training only: start the codebook from the latents, and restart dead codes on random latents."""
        flat = F.normalize(z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
        size = len(self.codebook)
        if not bool(self.initialised):
            pick = torch.randint(len(flat), (size,), generator=generator)
            noise = torch.randn(size, flat.shape[1], generator=generator) * 0.01
            self.codebook.data.copy_(flat[pick] + noise.to(flat))
            self.initialised.fill_(True)
            self.ema_usage.fill_(1.0 / size)
            return size
        counts = torch.bincount(self.assign(z.detach()).reshape(-1), minlength=size).float()
        self.ema_usage.mul_(decay).add_((1 - decay) * counts / counts.sum())
        dead_codes = torch.nonzero(self.ema_usage < dead / size).squeeze(1)
        if len(dead_codes):
            pick = torch.randint(len(flat), (len(dead_codes),), generator=generator)
            self.codebook.data[dead_codes] = flat[pick]
            self.ema_usage[dead_codes] = 1.0 / size
        return len(dead_codes)

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codebook index of each latent vector: z (B, D, h, w) -> (B, h, w).

        Latents and codes are compared on the unit sphere (l2-normalised, as in ViT-VQGAN), which keeps the
        codebook in use while the encoder's output drifts.
        """
        flat = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
        codes = F.normalize(self.codebook, dim=-1)
        d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.T + codes.pow(2).sum(1)[None])
        return d.argmin(1).reshape(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        index = self.assign(z)
        z = F.normalize(z, dim=1)
        q = F.normalize(self.codebook, dim=-1)[index].permute(0, 3, 1, 2)
        codebook_loss = F.mse_loss(q, z.detach())
        commitment = F.mse_loss(z, q.detach())
        loss = codebook_loss + self.beta * commitment
        counts = torch.bincount(index.reshape(-1), minlength=len(self.codebook)).float()
        p = counts / counts.sum()
        stats = {"usage": (counts > 0).float().mean(),
                 "perplexity": torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())}
        return z + (q - z).detach(), loss, {**stats, "index": index}


# ------------------------------------------------------------------------------------------------------- networks
def _conv(i: int, o: int, k: int = 3, s: int = 1) -> nn.Conv2d:
    return nn.Conv2d(i, o, k, s, padding=(k - 1) // 2 if s == 1 else 1)


class Encoder(nn.Module):
    def __init__(self, in_channels: int, channels: int, code_dim: int, downs: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(in_channels, channels), nn.SiLU()]
        c = channels
        for i in range(downs):
            o = channels * min(2, 1 + i)
            layers += [nn.Conv2d(c, o, 4, 2, 1), nn.SiLU(), _conv(o, o), nn.SiLU()]
            c = o
        # Batch-normalised latents (no affine): centred, so their directions spread over the sphere the codes live
        # on; without it every latent shares the encoder's bias direction and the codebook collapses to one code.
        layers += [nn.Conv2d(c, code_dim, 1), nn.BatchNorm2d(code_dim, affine=False, momentum=0.05)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, code_dim: int, channels: int, out_channels: int, ups: int) -> None:
        super().__init__()
        c = channels * 2
        layers: list[nn.Module] = [_conv(code_dim, c), nn.SiLU()]
        for i in range(ups):
            o = channels * (2 if i < ups - 1 else 1)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(c, o), nn.SiLU(), _conv(o, o), nn.SiLU()]
            c = o
        layers += [_conv(c, out_channels)]
        self.net = nn.Sequential(*layers)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net(q)


class Regressor(nn.Module):
    """``blocks`` conv blocks with skip connections on the feature map, then a zero-initialised output conv."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, blocks: int) -> None:
        super().__init__()
        self.inp = _conv(in_channels, channels)
        self.blocks = nn.ModuleList([_conv(channels, channels) for _ in range(blocks)])
        self.out = _conv(channels, out_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.inp(x))
        for block in self.blocks:
            h = h + F.silu(block(h))
        return self.out(h)


# ------------------------------------------------------------------------------------------------ UV sample sets
@dataclass
class PartSamples:
    face_ids: torch.Tensor  # (N,)
    bary: torch.Tensor  # (N, 3)
    uv: torch.Tensor  # (N, 2)
    template: torch.Tensor  # (N, 3) template surface point
    lbs: torch.Tensor  # (N, J) interpolated skinning weights
    nn_distance: torch.Tensor  # (N,) nearest-neighbour distance on the template


def part_face_masks(model: HeadModel) -> dict[str, np.ndarray]:
    regions = model.face_regions()
    hair = regions == "hair"
    return {"face": ~hair, "hair": hair}


def make_part_samples(model: HeadModel, counts: dict[str, int], seed: int) -> dict[str, PartSamples]:
    from scipy.spatial import cKDTree

    rng = np.random.default_rng([seed, 15])
    masks = part_face_masks(model)
    uv_coords = torch.as_tensor(model.uv_coords, dtype=torch.float32)
    template = torch.as_tensor(model.v_template, dtype=torch.float32)
    lbs = torch.as_tensor(model.lbs_weights, dtype=torch.float32)
    parts: dict[str, PartSamples] = {}
    all_points = []
    for part in PARTS:
        samples = sample_surface(model.v_template, model.faces, counts[part], rng, masks[part].astype(float))
        face_ids = torch.as_tensor(samples.face_ids)
        bary = torch.as_tensor(samples.bary, dtype=torch.float32)
        uv = interpolate(uv_coords, model.uv_faces, face_ids, bary)
        points = surface_points(template, model.faces, face_ids, bary)
        parts[part] = PartSamples(face_ids, bary, uv, points, interpolate(lbs, model.faces, face_ids, bary),
                                  torch.zeros(len(face_ids)))
        all_points.append(points.numpy())
    stacked = np.concatenate(all_points)
    distance, _ = cKDTree(stacked).query(stacked, k=2)
    nn_distance = torch.as_tensor(np.clip(distance[:, 1], 1e-4, None), dtype=torch.float32)
    start = 0
    for part in PARTS:
        n = len(parts[part].face_ids)
        parts[part].nn_distance = nn_distance[start:start + n]
        start += n
    return parts


def sample_maps(maps: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear read of batched maps (B, C, R, R) at uv (N, 2) -> (B, N, C) (texel convention of harness.geometry)."""
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1).to(maps.dtype)
    grid = grid[None, :, None, :].expand(maps.shape[0], -1, -1, -1)
    read = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return read[..., 0].transpose(1, 2)


# ---------------------------------------------------------------------------------------------------- the prior
@dataclass
class PriorOutput:
    texture: torch.Tensor  # (B, 3, R, R) decoded albedo
    identity_offset: torch.Tensor  # (B, 3, R, R) metres
    expression_offset: torch.Tensor  # (B, 3, R, R) metres
    gaussians: dict[str, torch.Tensor]  # canonical (model space): means, frames, log_scales, opacity_logits, sh, lbs
    raw: dict[str, torch.Tensor]  # regressor outputs (for regularisers)
    vq_loss: torch.Tensor
    stats: dict[str, torch.Tensor]


class SynShotPrior(nn.Module):
    def __init__(self, model: HeadModel, arch: dict[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)
        self.model = model
        c, d, r = int(arch["encoder_channels"]), int(arch["code_dim"]), int(arch["uv_resolution"])
        downs = int(arch["latent_downsample"])
        f = int(arch["feature_channels"])
        self.e_id = Encoder(7, c, d, downs)  # texture (3) + visibility (1) + identity offsets (3)
        self.e_expr = Encoder(3, c, d, downs)
        self.q_id = VectorQuantizer(int(arch["codebook_size"]), d)
        self.q_expr = VectorQuantizer(int(arch["codebook_size"]), d)
        self.d_id = Decoder(d, c, 6, downs)
        self.d_expr = Decoder(d, c, 3, downs)
        self.d_feat = Decoder(2 * d, c, f, downs)
        sh_coeffs = (int(arch["sh_degree"]) + 1) ** 2
        rc, blocks = int(arch["regressor_channels"]), int(arch["regressor_blocks"])
        self.r_color = nn.ModuleDict({p: Regressor(f, rc, 3 * sh_coeffs, blocks) for p in PARTS})
        self.r_gauss = nn.ModuleDict({p: Regressor(f, rc, GAUSS_CHANNELS, blocks) for p in PARTS})
        self.sh_coeffs = sh_coeffs
        raster = uv_raster(model, r)
        self.register_buffer("uv_mask", raster.mask.float(), persistent=False)
        parts = make_part_samples(model, {"face": int(arch["gaussians_face"]), "hair": int(arch["gaussians_hair"])},
                                  int(arch["sample_seed"]))
        for name in ("face_ids", "bary", "uv", "template", "lbs", "nn_distance"):
            self.register_buffer(f"s_{name}", torch.cat([getattr(parts[p], name) for p in PARTS]), persistent=False)
        self.part_sizes = [len(parts[p].face_ids) for p in PARTS]
        vertex, uv_index = vertex_uv_corners(model)
        self.register_buffer("corner_vertex", vertex, persistent=False)
        self.register_buffer("corner_uv", torch.as_tensor(model.uv_coords, dtype=torch.float32)[uv_index],
                             persistent=False)
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.int64), persistent=False)
        self.register_buffer("v_template", torch.as_tensor(model.v_template, dtype=torch.float32), persistent=False)
        uv = torch.as_tensor(model.uv_coords, dtype=torch.float32)[torch.as_tensor(model.uv_faces, dtype=torch.int64)]
        # Inverse UV Jacobian of each triangle (for T = dphi/du, B = dphi/dv); degenerate UV triangles get 0.
        duv = torch.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], -1)  # (F, 2 (u, v), 2 (edges))
        det = duv[:, 0, 0] * duv[:, 1, 1] - duv[:, 0, 1] * duv[:, 1, 0]
        ok = det.abs() > 1e-12
        inv = torch.stack([torch.stack([duv[:, 1, 1], -duv[:, 0, 1]], -1),
                           torch.stack([-duv[:, 1, 0], duv[:, 0, 0]], -1)], -2) / torch.where(ok, det, 1)[:, None, None]
        self.register_buffer("uv_jacobian_inv", inv * ok[:, None, None], persistent=False)

    # -- encoders
    def encode_id(self, texture: torch.Tensor, visibility: torch.Tensor, identity_offset: torch.Tensor
                  ) -> torch.Tensor:
        s = float(self.arch["offset_scale"])
        return self.e_id(torch.cat([texture * 2 - 1, visibility[:, None], identity_offset / s], 1))

    def encode_expr(self, expression_offset: torch.Tensor) -> torch.Tensor:
        return self.e_expr(expression_offset / float(self.arch["offset_scale"]))

    # -- decoders and Gaussians
    def decode(self, q_id: torch.Tensor, q_expr: torch.Tensor, vq_loss: torch.Tensor | None = None,
               stats: dict[str, torch.Tensor] | None = None, geometry: torch.Tensor | None = None) -> PriorOutput:
        """``geometry`` (B, 3, R, R): offset maps that place the Gaussians instead of the decoded ones (the
        tracked geometry, ``tracked_geometry=true`` in the inversion)."""
        s = float(self.arch["offset_scale"])
        ident = self.d_id(q_id)
        texture, identity_offset = torch.sigmoid(ident[:, :3]), ident[:, 3:] * s
        expression_offset = self.d_expr(q_expr) * s
        feat = self.d_feat(torch.cat([q_id, q_expr], 1))
        offsets = identity_offset + expression_offset if geometry is None else geometry
        gaussians, raw = self.gaussians(feat, offsets)
        zero = torch.zeros((), device=q_id.device)
        return PriorOutput(texture, identity_offset, expression_offset, gaussians, raw,
                           zero if vq_loss is None else vq_loss, stats or {})

    def forward(self, texture: torch.Tensor, visibility: torch.Tensor, identity_offset: torch.Tensor,
                expression_offset: torch.Tensor) -> PriorOutput:
        z_id, z_expr = self.encode_id(texture, visibility, identity_offset), self.encode_expr(expression_offset)
        self.last_latents = (z_id.detach(), z_expr.detach())
        q_id, loss_id, st_id = self.q_id(z_id)
        q_expr, loss_expr, st_expr = self.q_expr(z_expr)
        stats = {"usage_id": st_id["usage"], "usage_expr": st_expr["usage"], "perplexity_id": st_id["perplexity"],
                 "perplexity_expr": st_expr["perplexity"]}
        return self.decode(q_id, q_expr, loss_id + loss_expr, stats)

    def quantize_id(self, texture: torch.Tensor, visibility: torch.Tensor, identity_offset: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, loss, _ = self.q_id(self.encode_id(texture, visibility, identity_offset))
        return q, loss

    def quantize_expr(self, expression_offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, loss, _ = self.q_expr(self.encode_expr(expression_offset))
        return q, loss

    def vertex_offsets(self, offset_maps: torch.Tensor) -> torch.Tensor:
        """Offset maps (B, 3, R, R) read back at the mesh vertices -> (B, V, 3) (mean over a vertex's uvs)."""
        samples = sample_maps(offset_maps, self.corner_uv)  # (B, corners, 3)
        v = len(self.v_template)
        total = torch.zeros(offset_maps.shape[0], v, 3, dtype=samples.dtype, device=samples.device)
        total = total.index_add(1, self.corner_vertex, samples)
        ones = torch.ones_like(self.corner_vertex, dtype=torch.float32)
        count = torch.zeros(v, device=samples.device).index_add(0, self.corner_vertex, ones)
        return total / count.clamp_min(1)[None, :, None]

    def tangent_frames(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, 3) frames with columns (T, B, N) of each sample's triangle on meshes (B, V, 3)."""
        f = self.faces[self.s_face_ids]  # (N, 3)
        p = vertices[:, f]  # (B, N, 3 corners, 3)
        dp = torch.stack([p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0]], -1)  # (B, N, 3, 2)
        tb = dp @ self.uv_jacobian_inv[self.s_face_ids][None]  # (B, N, 3, 2): dphi/du, dphi/dv
        normal = torch.cross(dp[..., 0], dp[..., 1], dim=-1)
        normal = F.normalize(normal, dim=-1)
        t = tb[..., 0]
        t = t - (t * normal).sum(-1, keepdim=True) * normal
        fallback = F.normalize(dp[..., 0], dim=-1)
        t = torch.where(t.norm(dim=-1, keepdim=True) > 1e-9, F.normalize(t, dim=-1), fallback)
        b = torch.cross(normal, t, dim=-1)
        return torch.stack([t, b, normal], -1)

    def gaussians(self, feat: torch.Tensor, offset_maps: torch.Tensor) -> tuple[dict[str, torch.Tensor],
                                                                               dict[str, torch.Tensor]]:
        colours, gauss = [], []
        start = 0
        for part, n in zip(PARTS, self.part_sizes, strict=True):
            uv = self.s_uv[start:start + n]
            colours.append(sample_maps(self.r_color[part](feat), uv))
            gauss.append(sample_maps(self.r_gauss[part](feat), uv))
            start += n
        colour, g = torch.cat(colours, 1), torch.cat(gauss, 1)  # (B, N, 3K), (B, N, 11)
        batch = feat.shape[0]
        offsets = sample_maps(offset_maps, self.s_uv)  # phi - template, bilinear at (u_r, v_r)
        vertices = self.v_template[None] + self.vertex_offsets(offset_maps)
        frames = self.tangent_frames(vertices)
        local = g[..., :3] * float(self.arch["position_offset_scale"])
        means = self.s_template[None] + offsets + (frames @ local[..., None])[..., 0]
        dq = torch.cat([1 + g[..., 3:4], g[..., 4:7]], -1)
        base = self.s_nn_distance * float(self.arch["scale_factor"])
        log_scales = torch.log(base)[None, :, None] + torch.log(
            torch.tensor([1.0, 1.0, float(self.arch["flat_ratio"])], device=feat.device)) + g[..., 7:10]
        init = float(self.arch["init_opacity"])
        opacity_logits = np.log(init / (1 - init)) + g[..., 10]
        sh = colour.reshape(batch, -1, self.sh_coeffs, 3)
        out = {"means": means, "frames": frames, "local_quats": dq, "log_scales": log_scales,
               "opacity_logits": opacity_logits, "sh": sh}
        return out, {"position": g[..., :3], "rotation": g[..., 3:7], "scale": g[..., 7:10], "opacity": g[..., 10],
                     "sh_rest": sh[:, :, 1:]}


# ------------------------------------------------------------------------------------------------------- posing
def joint_transforms(model: HeadModel, params: HeadParams) -> torch.Tensor:
    """(J, 4, 4) rest -> posed transforms in model space (as ``harness.heads.model.deform``)."""
    from harness.heads.model import _chain

    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    v_shaped = t(model.v_template) + t(model.shapedirs) @ t(params.shape) + t(model.exprdirs) @ t(params.expression)
    joints = t(model.J_regressor) @ v_shaped
    pose = torch.stack([torch.zeros(3), t(params.neck), t(params.jaw), t(params.eyes[:3]), t(params.eyes[3:])])
    return _chain(axis_angle_to_matrix(pose), joints, model.parents)


def pose_gaussians(prior: SynShotPrior, g: dict[str, torch.Tensor], index: int, params: HeadParams
                   ) -> dict[str, torch.Tensor]:
    """Sample ``index`` of a batch of canonical Gaussians, skinned (neck, jaw, eyes) and moved into the world."""
    transforms = joint_transforms(prior.model, params).to(g["means"].device)
    blended = torch.einsum("nj,jab->nab", prior.s_lbs, transforms)
    rot, trans = blended[:, :3, :3], blended[:, :3, 3]
    world = euler_xyz_to_matrix(torch.as_tensor(np.asarray(params.rotation), dtype=torch.float32)).to(rot.device)
    scale = float(params.scale)
    translation = torch.as_tensor(np.asarray(params.translation), dtype=torch.float32, device=rot.device)
    means = (rot @ g["means"][index][..., None])[..., 0] + trans
    means = scale * means @ world.T + translation
    frames = world[None] @ rot @ g["frames"][index]
    # Re-orthonormalise (blended rotations are not exactly orthonormal): Gram-Schmidt on (T, N).
    t = F.normalize(frames[..., 0], dim=-1)
    n = frames[..., 2]
    n = F.normalize(n - (n * t).sum(-1, keepdim=True) * t, dim=-1)
    frames = torch.stack([t, torch.cross(n, t, dim=-1), n], -1)
    quats = _quat_multiply(rotmat_to_quat(frames), F.normalize(g["local_quats"][index], dim=-1))
    return {"means": means, "quats": quats, "scales": torch.exp(g["log_scales"][index]) * scale,
            "opacities": torch.sigmoid(g["opacity_logits"][index]), "sh": g["sh"][index]}


def _quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def sh_from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


# ---------------------------------------------------------------------------------------------------- UV inputs
def uv_offset_maps(model: HeadModel, params: HeadParams, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity and expression offset maps (3, R, R) of head parameters, as the corpus rasterises them."""
    raster = uv_raster(model, resolution)
    ident = torch.as_tensor(np.einsum("vcs,s->vc", model.shapedirs, params.shape), dtype=torch.float32)
    expr = torch.as_tensor(np.einsum("vce,e->vc", model.exprdirs, params.expression), dtype=torch.float32)
    return (uv_attribute_map(ident, model, resolution, raster)[0],
            uv_attribute_map(expr, model, resolution, raster)[0])


def dilate(maps: torch.Tensor, mask: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Grow (B, C, R, R) maps beyond the charts so bilinear reads near chart borders see no zeros."""
    return torch.stack([dilate_uv_map(m, mask > 0, iterations)[0] for m in maps])
