"""Every size and weight of SynShot as a config value: ours (demo scale, CPU) and the paper's, side by side.

``ARCHITECTURE`` keys are stored in the checkpoint (the network is rebuilt from them); ``TRAINING`` keys drive
``harness train synshot``; ``INVERSION`` keys drive the pivotal tuning in ``harness run``.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURE: dict[str, Any] = {
    "uv_resolution": 64,  # paper: 256 (UV maps of the 3DMM)
    "latent_downsample": 3,  # UV 64 -> 8 x 8 latent grid; paper: not stated (a VQ-VAE bottleneck)
    "encoder_channels": 32,  # paper: not stated
    "code_dim": 16,  # element-wise codebook vector size; paper: not stated
    "codebook_size": 256,  # entries per codebook (one for z_id, one for z_expr); paper: not stated
    "feature_channels": 16,  # F of D_feat; paper: 128 (best in its ablation, F=32 worse)
    "regressor_channels": 16,  # hidden width of R_color / R_gauss; paper: not stated
    "regressor_blocks": 4,  # conv blocks with skips per regressor; paper: 4
    "gaussians_face": 1800,  # UV samples of the face part (everything but the scalp); paper: ~ UV-dense
    "gaussians_hair": 1200,  # UV samples of the hair / scalp part
    "sh_degree": 0,  # paper: 3 (16 x 3 coefficients); the demo's renders are view-independent
    "init_opacity": 0.7,  # paper: 0.7
    "flat_ratio": 0.3,  # normal-axis scale / in-plane scale at initialisation (ours)
    "scale_factor": 0.9,  # initial in-plane scale = scale_factor * nearest-neighbour distance (paper: 1.0)
    "offset_scale": 0.01,  # metres per unit of the identity / expression offset maps fed to the networks
    "position_offset_scale": 0.004,  # metres per unit of R_gauss's position offset output
    "head_model": "template",
    "sample_seed": 0,  # seed of the per-part UV sample sets
}

TRAINING: dict[str, Any] = {
    "steps": 600,  # paper: 500k iterations
    "lr": 2e-3,  # paper: Adam 1.3e-5 (with a 100x larger batch and 700x more steps)
    "lr_milestones": [0.6, 0.85],  # fractions of the run; paper: multi-step decay
    "lr_gamma": 0.66,  # paper: 0.66
    "batch": 2,  # samples per step; paper: not stated
    "views": 2,  # cameras rendered per sample per step
    "albedo_input_prob": 0.3,  # share of steps whose E_id input is the analytic albedo, else back-projection
    "max_input_views": 3,  # back-projected inputs use 1..max_input_views of the sample's cameras
    "beta": 0.25,  # commitment weight (VQ-VAE's beta); paper: not stated
    "w_render_l1": 1.0, "w_render_ssim": 0.2, "w_render_lpips": 0.0,  # paper: L1 + SSIM + LPIPS on renders
    "w_alpha": 0.5,
    "w_map_l1": 1.0, "w_map_ssim": 0.1,  # texture map: L1 + SSIM (paper adds LPIPS)
    "w_geometry": 1.0,  # L1 on identity / expression offset maps (paper: L1 on geometry maps)
    "w_vq": 1.0,
    "w_reg_position": 0.01, "w_reg_scale": 0.01, "w_reg_opacity": 0.01, "w_reg_sh": 0.01,  # paper: L2 regularisers
}

INVERSION: dict[str, Any] = {
    "checkpoint": "auto",  # "auto" | "demo" | a path
    "prior": "trained",  # "trained" | "random": the same inversion from a randomly initialised network (Fig. 7)
    "random_seed": 0,
    # Place the Gaussians on the tracked 3DMM geometry (identity offsets of the sources' tracking + the driving
    # expression) instead of the decoded geometry maps. Paper: decoded geometry (false). Ours: true, because the
    # demo prior's D_id / D_expr geometry channels did not train in 600 steps (see README).
    "tracked_geometry": True,
    "stage1_steps_per_frame": 4,  # paper: 10 x frames for the whole inversion
    "stage2_steps_per_frame": 8,
    "min_steps": 10,  # per stage
    "max_steps": 24,  # per stage (CPU budget; paper: no cap, < 10 min on an H100 for 20 views)
    "stage1_lr": 3e-3, "stage2_lr": 1e-3,
    "fit_scale": 0.35,  # sources are fitted at this fraction of their resolution
    "w_color_l1": 1.0, "w_color_ssim": 0.2, "w_alpha": 0.5,
    "w_identity": 0.0,  # ArcFace identity terms (L_arc + L_id); need ArcFace weights, none on the demo
    "early_stop_warmup": 8, "early_stop_patience": 6, "early_stop_ema": 0.8, "early_stop_tol": 1e-3,
    "min_facing": 0.3,  # back-projection only takes texels facing the camera at least this much
    "render_chunk": 8,  # target cameras rendered together
}

DEFAULTS: dict[str, Any] = {**ARCHITECTURE, **TRAINING, **INVERSION}

PAPER: dict[str, Any] = {
    "uv_resolution": 256, "feature_channels": 128, "regressor_blocks": 4, "sh_degree": 3, "init_opacity": 0.7,
    "scale_factor": 1.0, "steps": 500_000, "lr": 1.3e-5, "lr_gamma": 0.66, "w_render_lpips": 1.0,
    "stage_steps_total_per_frame": 10, "w_identity": 1.0,
}

# A full-size configuration for GPUs (documented in the README; tested for one step with tiny sizes).
FULL: dict[str, Any] = {
    "uv_resolution": 256, "latent_downsample": 4, "encoder_channels": 64, "code_dim": 64, "codebook_size": 1024,
    "feature_channels": 128, "regressor_channels": 64, "gaussians_face": 60000, "gaussians_hair": 40000,
    "sh_degree": 3, "batch": 8, "views": 4, "lr": 1.3e-5, "steps": 500_000, "w_render_lpips": 1.0,
    "stage1_steps_per_frame": 4, "stage2_steps_per_frame": 6, "fit_scale": 1.0,
}


def architecture_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in ARCHITECTURE}
