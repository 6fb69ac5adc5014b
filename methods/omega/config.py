"""Every OMEGA-Avatar setting as a config value, with the paper's value where the demo differs (see README.md).

Nothing heavy is imported here: ``plugin.py`` reads these dictionaries to build the specs.
"""

from __future__ import annotations

from typing import Any

# SOAP's multi-view azimuths (degrees of yaw round the head, at eye level), in SOAP's order; view 0 is the input's.
SOAP_YAWS: tuple[float, ...] = (0.0, -90.0, 180.0, 90.0, -45.0, 45.0)
FACE_REGIONS: tuple[str, ...] = ("face", "lips", "eye_l", "eye_r")  # stage B's normal loss is off these regions

# Inference (``harness run --method omega --config k=v``).
METHOD_DEFAULTS: dict[str, Any] = {
    "checkpoint": "auto",  # "auto" | "demo" | a .pt path (harness.checkpoints.select_checkpoint)
    "head_model": "template",  # or the path of flame2023.pkl (paper: FLAME 2023)
    # Stage A: which multi-view generator. "checkpoint": the small image-to-multi-view network in the checkpoint
    # (demo); "soap": SOAP's multi-view image and normal diffusers pipelines from the two local folders below.
    "generator": "checkpoint",
    "soap_mv_pipeline": "",  # local folder of SOAP's multi-view RGB pipeline (diffusers, local_files_only)
    "soap_normal_pipeline": "",  # local folder of SOAP's multi-view normal pipeline
    "single_view": False,  # ablation: no stage A, the UV branch sees the input view only
    "visibility_fusion": True,  # ablation False: density-only fusion W = gamma_k D_kl (no n.v confidence)
    "head_distance": 1.0,  # metres from the input camera to the head (demo rig and corpus: 1.0)
    # Stage B
    "fit_steps": 15,
    "fit_lr": 0.01,
    "fit_resolution": 32,
    "w_normal": 1.0,
    "w_landmark": 1.0,
    "w_symmetry": 0.1,
    "w_laplacian": 50.0,
    "laplacian_hair": 1.0,  # w_i on hair, ears, neck (large)
    "laplacian_face": 0.1,  # w_i on face, lips, eyes (small)
    "offset_limit": 0.02,  # metres, per-vertex offsets are clamped to this
    # Stage C/D
    # Gaussians are rendered at this fraction of the target size, then upsampled and refined; "auto": a render
    # pixel covers as much of the head as in training (training render size / the source crop's side)
    "render_scale": "auto",
    "refiner": True,
}

# Architecture (stored in the checkpoint; ``harness train omega --config k=v`` changes it).
ARCH_DEFAULTS: dict[str, Any] = {
    "mv_resolution": 64,  # stage A input/output size (SOAP: 512)
    "mv_channels": 32,
    "mv_latent": 256,
    "encoder": "cnn",  # "cnn" (demo) | "dinov2" (full size: from encoder_path, a local transformers folder)
    "encoder_path": "",
    "feature_channels": 16,  # image features splatted into UV (paper: DINOv3 + FPN)
    "uv_resolution": 64,  # the UV branch's map and Gaussians (one per covered texel)
    "uv_levels": 3,  # UV pyramid levels (hierarchical hole filling)
    "density_tau": 0.5,  # soft density mask a = 1 - exp(-D / tau)
    "vertex_code": 16,  # learnable per-vertex code
    "identity_token": 64,
    "decoder_channels": 32,
    "refiner_channels": 16,
}

# Training (``harness train omega``): self-reenactment with the progressive side-view decay.
TRAIN_DEFAULTS: dict[str, Any] = {
    **ARCH_DEFAULTS,
    "steps": 250,  # paper: 250k iterations
    "lr": 1e-3,  # paper: Adam 1e-4 (the demo is tiny and trains for minutes)
    "batch": 1,  # paper: 6
    "mv_batch": 4,  # stage A batch
    "mv_steps_per_step": 1,
    "mv_pretrain": 80,  # steps of stage A alone before the avatar branches start
    "targets_per_step": 2,  # target views rendered per self-reenactment sample
    "render_resolution": 32,  # Gaussians rendered at this size in training, refined at the corpus size
    "lambda_mv_start": 1.0,  # multi-view (side-view) loss weight at the start ...
    "lambda_mv_end": 0.0,  # ... decayed linearly to this (progressive side-view decay)
    "w_refined": 1.0,
    "w_face_box": 0.5,
    "w_scale_reg": 0.01,
    "w_offset_reg": 0.1,
    "input_camera": 0,  # the corpus view used as the input (soap+rig: 0 = yaw 0)
    "head_model": "template",
    "train_generator": True,
    "generator_checkpoint": "",  # on a dataset split: an omega checkpoint whose stage A network is used (frozen)
    "frontal_camera": "222200037",  # on a dataset split: the input camera (NeRSemble's frontal serial)
    "head_distance": 1.0,  # on a dataset split: False (SOAP is frozen in the paper); the corpus trains it
}

PAPER = {
    "title": "OMEGA-Avatar",
    "mv_resolution": 512, "lr": 1e-4, "steps": 250_000, "batch": 6, "encoder": "DINOv3 + FPN",
    "generator": "SOAP multi-view diffusion (Unique3D-based), orthographic", "data": "VFHQ",
}
