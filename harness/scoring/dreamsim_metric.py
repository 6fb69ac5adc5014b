"""DreamSim (``ensemble``: DINO + CLIP + OpenCLIP ViT-B/16 with the released LoRA), on the square head crop.

Crop (the same box for both images, from the ground truth): the bounding box of ground-truth alpha > 0.5, made
square around its centre with side 1.1 x its longer edge; parts outside the frame are filled with white. Without
an alpha map: the largest centred square. The crop is quantised to 8 bits and resized to 224x224 by PIL's bicubic
filter, exactly as DreamSim's own preprocessing does (``transforms.Resize((224, 224), BICUBIC)`` on a PIL image, then
``ToTensor``). Distance = 1 - cosine of the embeddings.

DreamSim's loader points torch.hub at its cache for the whole process; the load runs inside a guard that puts the
previous directory back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.scoring.sources import DINO_BACKBONE, DINO_HUB_REPO, DREAMSIM_DIR, DREAMSIM_ENSEMBLE, loading
from harness.scoring.torchhub import torch_hub_dir
from harness.scoring.values import Features, MetricValues
from harness.weights import require, weights_dir

SIZE = 224
MARGIN = 1.1
FILL = 1.0
# Largest |bf16 or tf32 value - fp32 value| allowed (harness.scoring.precision): bf16 keeps 8 significant bits
# (relative rounding 2^-9 per operation), so values of order 1 move by a few 1e-3 at most; the stand-in networks
# of tests/test_metric_precision.py stay within it, benchmarks/gpu_scorer.py checks the real ones.
PRECISION_TOLERANCE = 5e-3


def square_box(alpha: torch.Tensor | None, height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the square head crop; may extend past the frame."""
    if alpha is not None:
        ys, xs = torch.nonzero(alpha.reshape(height, width) > 0.5, as_tuple=True)
        if len(ys):
            top, bottom, left, right = ys.min().item(), ys.max().item() + 1, xs.min().item(), xs.max().item() + 1
            side = round(MARGIN * max(bottom - top, right - left))
            cy, cx = (top + bottom) / 2, (left + right) / 2
            return round(cy - side / 2), round(cx - side / 2), side
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def crop_square(image: torch.Tensor, box: tuple[int, int, int]) -> torch.Tensor:
    """(3, H, W) -> (3, side, side), white outside the frame."""
    top, left, side = box
    _, height, width = image.shape
    pad = (max(0, -left), max(0, left + side - width), max(0, -top), max(0, top + side - height))
    padded = F.pad(image, pad, value=FILL)
    top, left = top + pad[2], left + pad[0]
    return padded[:, top:top + side, left:left + side]


def _pil_resize(crop: torch.Tensor) -> torch.Tensor:
    """(3, s, s) in [0, 1] -> (3, 224, 224): 8-bit, PIL bicubic, back to [0, 1] (DreamSim's preprocessing)."""
    from PIL import Image

    array = (crop.detach().clamp(0, 1).permute(1, 2, 0).cpu().double().numpy() * 255.0).round().astype(np.uint8)
    resized = Image.fromarray(array).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)


def to_model_input(images: torch.Tensor, boxes: list[tuple[int, int, int]]) -> torch.Tensor:
    crops = [_pil_resize(crop_square(img, box)) for img, box in zip(images, boxes, strict=True)]
    return torch.stack(crops).to(images.device)


class DreamSim:
    needs_alpha = True
    precision_tolerance = PRECISION_TOLERANCE

    def __init__(self, device: str = "cpu") -> None:
        for spec in (DREAMSIM_ENSEMBLE, DINO_BACKBONE, DINO_HUB_REPO):
            require(spec, "DreamSim")
        from dreamsim import dreamsim

        cache = weights_dir() / DREAMSIM_DIR
        with loading("DreamSim", [DREAMSIM_ENSEMBLE, DINO_BACKBONE, DINO_HUB_REPO]), torch_hub_dir(cache):
            model, _ = dreamsim(pretrained=True, device=device, cache_dir=str(cache), dreamsim_type="ensemble")
        self.model = model
        self.device = device
        files = sorted(p for p in cache.rglob("*") if p.is_file() and p.suffix in (".pth", ".tar", ".safetensors",
                                                                                   ".bin", ".json"))
        self.cache_identity = "dreamsim-ensemble-v2-pil|" + ";".join(
            f"{p.relative_to(cache)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images.to(self.device).float())

    def _boxes(self, gt: torch.Tensor, alpha: list[Any] | None) -> list[tuple[int, int, int]]:
        height, width = gt.shape[-2:]
        alphas = alpha if alpha is not None else [None] * len(gt)
        return [square_box(a, height, width) for a in alphas]

    def reference_features(self, gt: torch.Tensor, alpha: list[Any] | None = None) -> list[Features]:
        boxes = self._boxes(gt, alpha)
        embeddings = self.embed(to_model_input(gt, boxes)).double().cpu().numpy()
        return [{"embedding": e, "box": np.array(b)} for e, b in zip(embeddings, boxes, strict=True)]

    def compare(self, pred: torch.Tensor, gt: torch.Tensor, features: list[Features],
                alpha: list[Any] | None = None) -> MetricValues:
        boxes = [tuple(int(v) for v in f["box"]) for f in features]
        embedded = self.embed(to_model_input(pred, boxes)).double()
        reference = torch.from_numpy(np.stack([f["embedding"] for f in features])).to(embedded)
        distance = 1.0 - F.cosine_similarity(embedded, reference, dim=-1)
        return MetricValues(distance.cpu().numpy(), [None] * len(features))

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor, alpha: list[Any] | None = None) -> MetricValues:
        return self.compare(pred, gt, self.reference_features(gt, alpha), alpha)

    def against_photo(self, renders: torch.Tensor, photo: torch.Tensor) -> MetricValues:
        """Reference-free: each render against the input photo, each on its own centred square."""
        reference = self.reference_features(photo)[0]["embedding"]
        embedded = self.embed(to_model_input(renders, self._boxes(renders, None))).double()
        distance = 1.0 - F.cosine_similarity(embedded, torch.from_numpy(reference).to(embedded)[None], dim=-1)
        return MetricValues(distance.cpu().numpy(), [None] * len(renders))
