"""Config values of the method and its trainer (no torch here: the plugin module imports this)."""

from __future__ import annotations

from typing import Any

# Every paper default as a config value. The demo values differ where the demo's size or CPU budget requires; the
# paper's values are in PAPER_CONFIG and in the README.
DEFAULTS: dict[str, Any] = {
    "checkpoint": "auto", "pretrained": "", "prompt": "a photo of a person's head", "negative_prompt": "",
    "steps": 25, "strength": 0.5, "cfg_scale": 4.0, "ip_adapter_scale": 0.8, "semantic_weight": 0.5,
    "guidance_weight": 1e5, "refit_first": 30, "refit_later": 6, "refit_final": 30, "mode": "joint",
    "base_head": "auto", "num_gaussians": 2000, "base_fit_steps": 12, "resolution": 64, "views": "rig",
    "background": [1.0, 1.0, 1.0], "unet_batch": 48, "head_model": "template", "dtype": "float32",
}
PAPER_CONFIG: dict[str, Any] = {
    "steps": 25, "strength": 0.5, "cfg_scale": 4.0, "ip_adapter_scale": 0.8, "semantic_weight": 0.5,
    "guidance_weight": 5e4, "refit_first": 1000, "refit_later": 500, "resolution": 512, "mode": "joint",
}

# Architecture of the shipped demo prior (also the trainer's defaults).
DEMO_ARCHITECTURE: dict[str, Any] = {
    "resolution": 64, "codec": "pixel_unshuffle", "codec_factor": 4, "block_out_channels": [32, 64],
    "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 8, "text_tokens": 4,
    "encoder_hidden": 64, "encoder_layers": 3, "encoder_heads": 4, "encoder_patch": 8, "ip_tokens": 4,
    "resampler_dim": 64, "num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "beta_end": 0.012, "prediction_type": "sample",
}

TRAINER_DEFAULTS: dict[str, Any] = {
    **DEMO_ARCHITECTURE, "steps": 600, "batch": 24, "lr": 1e-3, "lr_final": 1e-4, "condition_dropout": 0.15,
    "frontal_reference": 0.5, "background": 1.0,
}
