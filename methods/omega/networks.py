"""The networks: stage A's small image-to-multi-view network (demo), the image encoder, the vertex branch, the UV
decoder and the image-space refiner. Sizes come from the checkpoint's ``architecture``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NUM_VIEWS = 6
NUM_LANDMARKS = 15
GAUSSIAN_CHANNELS = 14  # colour 3, opacity 1, log-scale 3, quaternion 4, offset 3


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class MultiViewNet(nn.Module):
    """Frontal image (3, R, R) -> per SOAP view RGB (3), camera-space normal (3), alpha (1), and the input view's
    2D landmarks (normalised to [0, 1]); R = ``mv_resolution`` (a multiple of 16)."""

    def __init__(self, arch: Mapping[str, Any], num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        c, latent, r = int(arch["mv_channels"]), int(arch["mv_latent"]), int(arch["mv_resolution"])
        self.resolution, self.base = r, r // 16
        self.encoder = nn.Sequential(_block(3, c, 2), _block(c, 2 * c, 2), _block(2 * c, 4 * c, 2),
                                     _block(4 * c, 4 * c, 2))
        self.to_latent = nn.Linear(4 * c * self.base * self.base, latent)
        self.view_embedding = nn.Parameter(torch.randn(NUM_VIEWS, latent) * 0.1)
        self.from_latent = nn.Linear(latent, 4 * c * self.base * self.base)
        self.skip = nn.Conv2d(4 * c, 4 * c, 1)
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2), _block(4 * c, 4 * c), nn.Upsample(scale_factor=2), _block(4 * c, 2 * c),
            nn.Upsample(scale_factor=2), _block(2 * c, c), nn.Upsample(scale_factor=2), _block(c, c),
            nn.Conv2d(c, 7, 3, 1, 1))
        self.landmarks = nn.Linear(latent, num_landmarks * 2)
        self.c = c

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b = image.shape[0]
        feats = self.encoder(image * 2 - 1)
        z = F.silu(self.to_latent(feats.flatten(1)))
        per_view = F.silu(self.from_latent(z[:, None] + self.view_embedding[None]))  # (B, 6, ...)
        grid = per_view.reshape(b * NUM_VIEWS, 4 * self.c, self.base, self.base)
        # The frontal view also sees the input's own spatial features (the other views are re-posed by the latent).
        frontal = torch.zeros(b, NUM_VIEWS, 1, 1, 1, device=image.device)
        frontal[:, 0] = 1
        grid = grid + (self.skip(feats)[:, None] * frontal).reshape_as(grid)
        out = self.decoder(grid).reshape(b, NUM_VIEWS, 7, self.resolution, self.resolution)
        rgb = torch.sigmoid(out[:, :, :3])
        normal = F.normalize(out[:, :, 3:6], dim=2)
        alpha = torch.sigmoid(out[:, :, 6])
        return {"rgb": rgb, "normal": normal, "alpha": alpha,
                "landmarks": torch.sigmoid(self.landmarks(z)).reshape(b, -1, 2)}


class CNNEncoder(nn.Module):
    """Image (3, R, R) -> features (C, R, R) and a global identity token (demo stand-in for DINOv2/v3 + FPN)."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        c = int(arch["feature_channels"])
        self.local = nn.Sequential(_block(3, c), _block(c, c))
        self.down = nn.Sequential(_block(c, 2 * c, 2), _block(2 * c, 4 * c, 2))
        self.token = nn.Linear(4 * c, int(arch["identity_token"]))
        self.up = nn.Conv2d(4 * c, c, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.local(image * 2 - 1)
        deep = self.down(x)
        fpn = x + F.interpolate(self.up(deep), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return fpn, self.token(deep.mean((2, 3)))


class DinoEncoder(nn.Module):
    """DINOv2 (a local ``transformers`` folder, loaded with ``local_files_only``) with a small FPN-style head that
    maps its patch tokens to ``feature_channels`` at the image's resolution; the CLS token is the identity token."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        from pathlib import Path

        from transformers import AutoModel

        path = Path(str(arch.get("encoder_path") or ""))
        if not path.is_dir():
            raise FileNotFoundError(f"omega: encoder=dinov2 needs encoder_path, a local DINOv2 folder "
                                    f"(transformers format); {str(path) or '(empty)'} is not a folder")
        self.backbone = AutoModel.from_pretrained(str(path), local_files_only=True)
        width = int(self.backbone.config.hidden_size)
        c = int(arch["feature_channels"])
        self.proj = nn.Conv2d(width, c, 1)
        self.fine = _block(3, c)
        self.token = nn.Linear(width, int(arch["identity_token"]))
        self.patch = int(getattr(self.backbone.config, "patch_size", 14))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = max(self.patch, (image.shape[-1] // self.patch) * self.patch)
        x = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor([0.485, 0.456, 0.406], device=image.device)[:, None, None]
        std = torch.tensor([0.229, 0.224, 0.225], device=image.device)[:, None, None]
        hidden = self.backbone(pixel_values=(x - mean) / std).last_hidden_state
        n = size // self.patch
        patches = hidden[:, 1:1 + n * n].transpose(1, 2).reshape(image.shape[0], -1, n, n)
        coarse = F.interpolate(self.proj(patches), size=image.shape[-2:], mode="bilinear", align_corners=False)
        return coarse + self.fine(image * 2 - 1), self.token(hidden[:, 0])


def build_encoder(arch: Mapping[str, Any]) -> nn.Module:
    kind = str(arch.get("encoder", "cnn"))
    if kind == "cnn":
        return CNNEncoder(arch)
    if kind == "dinov2":
        return DinoEncoder(arch)
    raise ValueError(f"omega: unknown encoder {kind!r}; known: cnn, dinov2")


class VertexBranch(nn.Module):
    """Identity token (from the frontal view) + a learnable per-vertex code -> one Gaussian per vertex."""

    def __init__(self, arch: Mapping[str, Any], num_vertices: int) -> None:
        super().__init__()
        code, token, hidden = int(arch["vertex_code"]), int(arch["identity_token"]), int(arch["decoder_channels"])
        self.code = nn.Parameter(torch.randn(num_vertices, code) * 0.1)
        self.mlp = nn.Sequential(nn.Linear(code + token, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, GAUSSIAN_CHANNELS))
        nn.init.zeros_(self.mlp[-1].weight)  # start from the decoders' biases: no random colours or shapes
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        z = token.reshape(1, -1).expand(self.code.shape[0], -1)
        return self.mlp(torch.cat([self.code, z], 1))


class UVDecoder(nn.Module):
    """Fused UV features (C + 3 colour + coverage + 2 uv) -> per-texel Gaussian attributes (14, R, R)."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        cin = int(arch["feature_channels"]) + 3 + 1 + 2
        c = int(arch["decoder_channels"])
        self.net = nn.Sequential(_block(cin, c), _block(c, c), _block(c, c), nn.Conv2d(c, GAUSSIAN_CHANNELS, 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)  # at the start each texel's Gaussian takes the fused colour as it is
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.net(fused[None])[0]


class Refiner(nn.Module):
    """Image-space neural refiner: raw render (RGB + alpha, upsampled) -> residual-corrected RGB."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        c = int(arch["refiner_channels"])
        self.net = nn.Sequential(nn.Conv2d(4, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1), nn.SiLU(),
                                 nn.Conv2d(c, 3, 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W), alpha (B, 1, H, W) -> (B, 3, H, W) in [0, 1]."""
        return (rgb + self.net(torch.cat([rgb, alpha], 1))).clamp(0, 1)
