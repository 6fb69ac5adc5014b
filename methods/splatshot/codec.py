"""The latent codecs the loop denoises in, behind one interface: ``encode(images in [-1, 1]) -> latents`` and
``decode(latents) -> images in [-1, 1]``, both differentiable.

- ``PixelCodec`` (the demo prior's): pixel-unshuffle by ``factor`` times ``scaling_factor``, exactly invertible and
  linear. A tiny ``AutoencoderKL`` at 64x64 costs ~1.8 s per batch on one CPU core (REFERENCE section 5); the
  pixel codec keeps the demo loop inside a minute per unit and still routes the feedback through a decoder by the
  chain rule (its Jacobian is a fixed permutation times 1 / scaling_factor).
- ``VaeCodec`` (full size): an ``AutoencoderKL``; ``encode`` takes the posterior mean (the loop draws its own noise).
"""

from __future__ import annotations

import torch


class PixelCodec:
    kind = "pixel_unshuffle"

    def __init__(self, factor: int = 4, scaling_factor: float = 1.0) -> None:
        self.factor = int(factor)
        self.scaling_factor = float(scaling_factor)

    def latent_channels(self, image_channels: int = 3) -> int:
        return image_channels * self.factor**2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_unshuffle(images, self.factor) * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(latents / self.scaling_factor, self.factor)


class VaeCodec:
    kind = "autoencoder_kl"

    def __init__(self, vae: torch.nn.Module) -> None:
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def latent_channels(self, image_channels: int = 3) -> int:
        return int(self.vae.config.latent_channels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images.to(self.vae.dtype)).latent_dist.mean * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample.float()
