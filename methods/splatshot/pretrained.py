"""Loading SplatShot's full-size components offline: SD-1.5-class UNet, VAE, DDIM scheduler, CLIP text encoder and
tokenizer, CLIP vision encoder + image processor, and the IP-Adapter-Plus(-face) weights in their original layout.

Each component is read with ``from_pretrained(folder / component, local_files_only=True)`` from ``pretrained`` (a
folder laid out like ``sources.FILES``; ``"cache"`` is ``$HARNESS_HOME/weights/splatshot/sd15``). Every missing
component is named at once, with its path and how to get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.api import MissingWeightsError
from harness_methods.splatshot.networks import Prior, load_ip_adapter, vae_codec
from harness_methods.splatshot.sources import FILES, FOLDER, IP_ADAPTER_FILE, _name

REQUIRED = {  # component -> a file that must be there (config); weights are checked by from_pretrained
    "unet": "unet/config.json", "vae": "vae/config.json", "scheduler": "scheduler/scheduler_config.json",
    "text_encoder": "text_encoder/config.json", "tokenizer": "tokenizer/tokenizer_config.json",
    "feature_extractor": "feature_extractor/preprocessor_config.json", "image_encoder": "image_encoder/config.json",
    "ip_adapter": IP_ADAPTER_FILE,
}


def resolve_folder(setting: str | Path) -> Path:
    if str(setting) == "cache":
        from harness.weights import weights_dir

        return weights_dir() / FOLDER
    return Path(setting).expanduser()


def missing_components(folder: Path) -> list[str]:
    lines = []
    for component, rel in REQUIRED.items():
        if not (folder / rel).is_file():
            fetch = " ".join(_name(r) for c, r, _, _ in FILES if c == component)
            repos = sorted({f"{repo}:{path.rsplit('/', 1)[0]}" for c, _, repo, path in FILES if c == component})
            lines.append(f"{component}: {folder / rel} is missing (from {', '.join(repos)}; "
                         f"`harness weights fetch {fetch}` where a network exists, or copy the files there)")
    return lines


def load_ip_adapter_file(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(path))
        out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            head, _, rest = key.partition(".")
            out[head][rest] = value
        return out
    return torch.load(path, map_location="cpu", weights_only=True)


def encode_prompt(tokenizer: Any, text_encoder: Any, prompt: str) -> torch.Tensor:
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids.to(text_encoder.device))[0].float()


def load_pretrained(setting: str | Path, config: dict[str, Any], device: torch.device) -> Prior:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    folder = resolve_folder(setting)
    missing = missing_components(folder)
    if missing:
        first = next(folder / rel for rel in REQUIRED.values() if not (folder / rel).is_file())
        raise MissingWeightsError(f"splatshot full-size components ({len(missing)} of {len(REQUIRED)} missing)",
                                  first, "Missing components: " + "; ".join(missing))
    dtype = torch.float16 if str(config.get("dtype", "float32")) == "float16" else torch.float32
    kw = {"local_files_only": True}
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype, **kw).to(device)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype, **kw).to(device)
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler", **kw)
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype, **kw).to(device)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", **kw)
    processor = CLIPImageProcessor.from_pretrained(folder / "feature_extractor", **kw)
    encoder = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", torch_dtype=dtype,
                                                            **kw).to(device)
    load_ip_adapter(unet, load_ip_adapter_file(folder / IP_ADAPTER_FILE))
    text = encode_prompt(tokenizer, text_encoder, str(config.get("prompt", "")))
    negative = encode_prompt(tokenizer, text_encoder, str(config.get("negative_prompt", "")))
    crop = processor.crop_size
    size = int(crop if isinstance(crop, int) else (getattr(crop, "height", None) or crop["height"]))
    resolution = int(config.get("resolution", 512))
    return Prior(unet, encoder, vae_codec(vae), scheduler, text, negative, resolution, size,
                 tuple(processor.image_mean), tuple(processor.image_std), kind="full")
