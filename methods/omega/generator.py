"""Stage A behind one interface: a multi-view generator turns the input (on white, R x R) into SOAP's six views.

``NetworkGenerator`` is the demo's small image-to-multi-view network from the checkpoint. ``SoapGenerator`` runs
SOAP's public multi-view image and normal diffusers pipelines from local folders (``local_files_only``; nothing is
downloaded). Any object with ``generate(image) -> GeneratedViews`` can be swapped in (``OmegaAvatar.generator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from harness.api.method import MissingWeightsError


@dataclass
class GeneratedViews:
    rgb: torch.Tensor  # (6, 3, R, R) on white, SOAP's view order (config.SOAP_YAWS)
    normal: torch.Tensor  # (6, 3, R, R) unit camera-space normals (OpenCV axes)
    alpha: torch.Tensor  # (6, R, R)
    landmarks: torch.Tensor | None  # (L, 2) the input view's landmarks, normalised to [0, 1]


class MultiViewGenerator(Protocol):
    def generate(self, image: torch.Tensor) -> GeneratedViews: ...


class NetworkGenerator:
    """The checkpoint's ``MultiViewNet`` (trained on the synthetic corpus for the demo)."""

    def __init__(self, net: Any) -> None:
        self.net = net

    @torch.no_grad()
    def generate(self, image: torch.Tensor) -> GeneratedViews:
        r = self.net.resolution
        x = F.interpolate(image[None], size=(r, r), mode="area") if image.shape[-1] != r else image[None]
        out = self.net(x)
        return GeneratedViews(out["rgb"][0], out["normal"][0], out["alpha"][0], out["landmarks"][0])


class SoapGenerator:
    """SOAP's multi-view RGB and normal pipelines (diffusers) from two local folders.

    The RGB pipeline is called with the input image and returns 6 views; the normal pipeline is called with those
    views and returns their normal maps (RGB-encoded, n = 2 c - 1, in SOAP's camera axes: x right, y up, z towards
    the viewer, converted here to OpenCV). SOAP has no landmark output: landmarks come from ``landmarks_from`` (the
    checkpoint's stage A network, or a detector).
    """

    def __init__(self, mv_folder: str, normal_folder: str, device: str = "cpu", landmarks_from: Any = None) -> None:
        missing = [(name, folder) for name, folder in (("soap_mv_pipeline", mv_folder),
                                                       ("soap_normal_pipeline", normal_folder))
                   if not folder or not Path(folder).is_dir()]
        if missing:
            name, folder = missing[0]
            raise MissingWeightsError(
                f"omega generator=soap: SOAP's {'multi-view' if name == 'soap_mv_pipeline' else 'normal'} pipeline",
                folder or f"(config {name} is empty)",
                f"Download SOAP's public pipelines and pass --config {name}=FOLDER (a diffusers folder with "
                "model_index.json); they are loaded with local_files_only=True, nothing is fetched")
        from diffusers import DiffusionPipeline

        self.mv = DiffusionPipeline.from_pretrained(mv_folder, local_files_only=True, trust_remote_code=True)
        self.normal = DiffusionPipeline.from_pretrained(normal_folder, local_files_only=True, trust_remote_code=True)
        self.mv.to(device)
        self.normal.to(device)
        self.landmarks_from = landmarks_from

    @torch.no_grad()
    def generate(self, image: torch.Tensor) -> GeneratedViews:
        from PIL import Image

        r = image.shape[-1]
        pil = Image.fromarray((image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8))
        views = self.mv(pil, num_images_per_prompt=6, output_type="np").images  # (6, H, W, 3)
        normals = self.normal([Image.fromarray((v * 255).astype(np.uint8)) for v in views],
                              output_type="np").images
        to_t = lambda a: F.interpolate(torch.as_tensor(np.asarray(a), dtype=torch.float32).permute(0, 3, 1, 2),  # noqa: E731
                                       size=(r, r), mode="bilinear", align_corners=False)
        rgb, nrm = to_t(views), to_t(normals) * 2 - 1
        nrm = F.normalize(nrm * torch.tensor([1.0, -1.0, -1.0])[None, :, None, None], dim=1)
        alpha = ((rgb < 0.98).any(1)).float()
        landmarks = self.landmarks_from.generate(image).landmarks if self.landmarks_from is not None else None
        return GeneratedViews(rgb, nrm, alpha, landmarks)
