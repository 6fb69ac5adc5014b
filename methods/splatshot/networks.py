"""The denoiser and its identity conditioning: a diffusers ``UNet2DConditionModel`` with IP-Adapter-Plus attention,
fed by a CLIP vision encoder's penultimate hidden states through the IP-Adapter Resampler.

The IP-Adapter is built as a state dict in the ORIGINAL IP-Adapter-Plus key layout (``image_proj``: the Resampler
``latents``/``proj_in``/``proj_out``/``norm_out``/``layers.{i}.{0,1}``; ``ip_adapter``: ``{k}.to_k_ip.weight`` and
``{k}.to_v_ip.weight`` for the k-th attention processor, odd k = cross-attention) and loaded through diffusers' own
loader (``unet._load_ip_adapter_weights``), exactly as a released ``ip-adapter-plus-face_sd15.bin`` is. The demo
prior is the same path at a tiny size, trained by ``harness train splatshot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness_methods.splatshot.codec import PixelCodec, VaeCodec
from harness_methods.splatshot.defaults import DEMO_ARCHITECTURE  # noqa: F401  (re-exported)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)



class _PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        inner = dim_head * heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)


class _OriginalResampler(nn.Module):
    """Only a key layout: the parameter names and shapes of IP-Adapter-Plus's ``Resampler`` (depth 4)."""

    def __init__(self, dim: int, embedding_dim: int, output_dim: int, num_queries: int, depth: int = 4,
                 dim_head: int = 64, ff_mult: int = 4) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList([
            nn.ModuleList([_PerceiverAttention(dim, dim_head, dim // dim_head),
                           nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult, bias=False), nn.GELU(),
                                         nn.Linear(dim * ff_mult, dim, bias=False))])
            for _ in range(depth)])


def cross_attention_processors(unet: nn.Module) -> list[tuple[str, int]]:
    """(processor name, hidden size) of every cross-attention processor, in ``attn_processors`` order."""
    out, blocks = [], list(unet.config.block_out_channels)
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        out.append((name, hidden))
    return out


def ip_adapter_plus_state_dict(unet: nn.Module, image_embed_dim: int, num_tokens: int, resampler_dim: int,
                               generator: torch.Generator | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """A randomly initialised IP-Adapter-Plus state dict in the original key layout for ``unet``."""
    if resampler_dim % 64:
        raise ValueError("the IP-Adapter-Plus Resampler's hidden size must be a multiple of 64 (heads of 64)")
    cross = int(unet.config.cross_attention_dim)
    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        resampler = _OriginalResampler(resampler_dim, image_embed_dim, cross, num_tokens)
        ip = {}
        for k, (_, hidden) in enumerate(cross_attention_processors(unet)):
            key = 2 * k + 1
            for name in ("to_k_ip", "to_v_ip"):
                ip[f"{key}.{name}.weight"] = torch.randn(hidden, cross) * (0.5 / cross**0.5)
    return {"image_proj": resampler.state_dict(), "ip_adapter": ip}


def load_ip_adapter(unet: nn.Module, state_dict: dict[str, dict[str, torch.Tensor]]) -> None:
    """Install an original-layout IP-Adapter(-Plus) state dict through diffusers' own loader."""
    unet._load_ip_adapter_weights([state_dict], low_cpu_mem_usage=False)


def set_ip_adapter_scale(unet: nn.Module, scale: float) -> None:
    for processor in unet.attn_processors.values():
        if hasattr(processor, "scale") and hasattr(processor, "to_k_ip"):
            processor.scale = [float(scale)] * len(processor.scale)


def make_scheduler(arch: dict[str, Any]):
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=int(arch["num_train_timesteps"]), beta_start=float(arch["beta_start"]),
                         beta_end=float(arch["beta_end"]), beta_schedule=str(arch["beta_schedule"]),
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def tiny_unet(arch: dict[str, Any], in_channels: int):
    from diffusers import UNet2DConditionModel

    blocks = list(arch["block_out_channels"])
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(blocks) - 1)
    up = ["CrossAttnUpBlock2D"] * (len(blocks) - 1) + ["UpBlock2D"]
    return UNet2DConditionModel(
        sample_size=int(arch["resolution"]) // int(arch["codec_factor"]), in_channels=in_channels,
        out_channels=in_channels, block_out_channels=tuple(blocks), layers_per_block=int(arch["layers_per_block"]),
        down_block_types=tuple(down), up_block_types=tuple(up), cross_attention_dim=int(arch["cross_attention_dim"]),
        attention_head_dim=int(arch["attention_head_dim"]), norm_num_groups=8)


def tiny_image_encoder(arch: dict[str, Any]):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    hidden = int(arch["encoder_hidden"])
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=int(arch["encoder_layers"]),
        num_attention_heads=int(arch["encoder_heads"]), image_size=int(arch["resolution"]),
        patch_size=int(arch["encoder_patch"]), projection_dim=int(arch["cross_attention_dim"])))


@dataclass
class Prior:
    """Everything the loop calls: denoiser, identity encoder, codec, scheduler and the text conditioning."""

    unet: nn.Module
    image_encoder: nn.Module
    codec: Any
    scheduler: Any
    text_embeds: torch.Tensor  # (1, T, cross) conditional prompt embedding
    negative_text_embeds: torch.Tensor  # (1, T, cross) for the unconditional branch of CFG
    resolution: int
    encoder_size: int
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD
    kind: str = "demo"
    prediction_type: str = "epsilon"  # what the network outputs: "epsilon" (SD-1.5) or "sample" (x0, the demo's)

    def parameters(self) -> list[nn.Parameter]:
        return [*self.unet.parameters(), *self.image_encoder.parameters()]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> CLIP input: bicubic resize to the encoder's size, CLIP normalisation."""
        size = self.encoder_size
        if images.shape[-2:] != (size, size):
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic", antialias=True,
                                                     align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.image_mean, dtype=images.dtype, device=images.device)[None, :, None, None]
        std = torch.tensor(self.image_std, dtype=images.dtype, device=images.device)[None, :, None, None]
        return (images - mean) / std

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """IP-Adapter-Plus image embeddings: the encoder's penultimate hidden states (B, tokens, hidden)."""
        out = self.image_encoder(self.preprocess(images).to(self.image_encoder.dtype), output_hidden_states=True)
        return out.hidden_states[-2]

    def uncond_image_embeds(self, like: torch.Tensor) -> torch.Tensor:
        """The IP-Adapter-Plus negative: the embedding of an all-zero image (also the trainer's dropped condition)."""
        return self.image_embeds(torch.zeros_like(like))

    def network(self, x_t: torch.Tensor, t: int | torch.Tensor, text: torch.Tensor,
                image_embeds: torch.Tensor) -> torch.Tensor:
        """The denoiser's raw output (eps or x0, by ``prediction_type``)."""
        timestep = torch.as_tensor(t, device=x_t.device)
        out = self.unet(x_t.to(self.unet.dtype), timestep, encoder_hidden_states=text.to(self.unet.dtype),
                        added_cond_kwargs={"image_embeds": [image_embeds[:, None].to(self.unet.dtype)]})
        return out.sample.float()

    def predict(self, x_t: torch.Tensor, t: int | torch.Tensor, text: torch.Tensor,
                image_embeds: torch.Tensor) -> torch.Tensor:
        """eps for a batch (``text`` (B, T, cross), ``image_embeds`` (B, tokens, hidden)) at one timestep ``t``; an
        x0-predicting network's output is turned into eps with the scheduler's ``alphas_cumprod``, so the loop,
        CFG and the feedback always work on eps."""
        out = self.network(x_t, t, text, image_embeds)
        if self.prediction_type == "sample":
            from harness_methods.splatshot.schedule import eps_from_x0

            return eps_from_x0(self.scheduler, x_t.float(), out, int(t))
        return out


def build_demo_prior(arch: dict[str, Any], state: dict[str, torch.Tensor] | None = None,
                     generator: torch.Generator | None = None) -> Prior:
    """The demo prior from its architecture; ``state`` (a checkpoint's) replaces the random initialisation."""
    codec = PixelCodec(int(arch["codec_factor"]), float(arch.get("scaling_factor", 1.0)))
    unet = tiny_unet(arch, codec.latent_channels())
    encoder = tiny_image_encoder(arch)
    load_ip_adapter(unet, ip_adapter_plus_state_dict(unet, int(arch["encoder_hidden"]), int(arch["ip_tokens"]),
                                                     int(arch["resampler_dim"]), generator))
    text = nn.Parameter(torch.randn(1, int(arch["text_tokens"]), int(arch["cross_attention_dim"])) * 0.5)
    if state is not None:
        unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
        encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
        text.data.copy_(state["text_embeds"])
    return Prior(unet, encoder, codec, make_scheduler(arch), text, text, int(arch["resolution"]),
                 int(arch["resolution"]), prediction_type=str(arch.get("prediction_type", "epsilon")))


def prior_state(prior: Prior) -> dict[str, torch.Tensor]:
    state = {f"unet.{k}": v for k, v in prior.unet.state_dict().items()}
    state.update({f"encoder.{k}": v for k, v in prior.image_encoder.state_dict().items()})
    state["text_embeds"] = prior.text_embeds.detach()
    return state


def vae_codec(vae: nn.Module) -> VaeCodec:
    return VaeCodec(vae)
