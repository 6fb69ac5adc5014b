"""The weight sources of the built-in metrics: official URLs, cache paths and published checksums.

torchvision publishes the first 8 hex digits of each file's sha256 in its name; insightface and DreamSim publish no
checksums, so theirs are recorded at the first fetch (see ``harness.weights``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.api.specs import WeightFile, WeightsSpec

TORCH_HUB = "torch/hub"
INSIGHTFACE_PACK = "buffalo_l"
INSIGHTFACE_DIR = f"insightface/models/{INSIGHTFACE_PACK}"
DREAMSIM_DIR = "dreamsim"



def _torchvision_backbone(name: str, file_name: str, description: str) -> WeightsSpec:
    """A torchvision checkpoint at torch.hub's path; its name carries the published sha256 prefix."""
    prefix = file_name.rsplit("-", 1)[1].split(".")[0]
    return WeightsSpec(
        name=name, description=description, url=f"https://download.pytorch.org/models/{file_name}",
        files=(WeightFile(f"{TORCH_HUB}/checkpoints/{file_name}", sha256_prefix=prefix),),
        licence="BSD-3-Clause (torchvision)",
    )


LPIPS_ALEX = _torchvision_backbone(
    "lpips-alex", "alexnet-owt-7be5be79.pth",
    "AlexNet ImageNet backbone for LPIPS (the linear heads ship inside the lpips package)")
LPIPS_VGG = _torchvision_backbone("lpips-vgg", "vgg16-397923af.pth", "VGG-16 ImageNet backbone for LPIPS-VGG")
ARCFACE = WeightsSpec(
    name="insightface-buffalo_l",
    description="insightface model pack buffalo_l: SCRFD-10G face detector with 5 keypoints and the ArcFace "
                "R50 (WebFace600K) recognition model, for CSIM",
    url="https://github.com/deepinsight/insightface/releases/download/model-zoo/buffalo_l.zip",
    archive="zip",
    extract_to=INSIGHTFACE_DIR,
    files=(WeightFile(f"{INSIGHTFACE_DIR}/det_10g.onnx"), WeightFile(f"{INSIGHTFACE_DIR}/w600k_r50.onnx")),
    licence="non-commercial research only (insightface model zoo)",
)
DREAMSIM_ENSEMBLE = WeightsSpec(
    name="dreamsim-ensemble",
    description="DreamSim ensemble checkpoint: DINO head, CLIP and OpenCLIP ViT-B/16 as DINO-style ViTs, LoRA adapter",
    url="https://github.com/ssundaram21/dreamsim/releases/download/v0.2.0-checkpoints/"
        "dreamsim_ensemble_checkpoint.zip",
    archive="zip",
    extract_to=DREAMSIM_DIR,
    files=(
        WeightFile(f"{DREAMSIM_DIR}/ensemble_lora/adapter_config.json"),
        WeightFile(f"{DREAMSIM_DIR}/dino_vitb16_pretrain.pth"),
        WeightFile(f"{DREAMSIM_DIR}/open_clip_vitb16_pretrain.pth.tar"),
        WeightFile(f"{DREAMSIM_DIR}/clip_vitb16_pretrain.pth.tar"),
    ),
    licence="MIT (DreamSim); backbones: DINO Apache-2.0, CLIP MIT, OpenCLIP MIT",
)
DINO_BACKBONE = WeightsSpec(
    name="dino-vitb16",
    description="DINO ViT-B/16 backbone, loaded by DreamSim through torch.hub",
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
    files=(WeightFile(f"{DREAMSIM_DIR}/checkpoints/dino_vitbase16_pretrain.pth"),),
    licence="Apache-2.0 (DINO)",
)
DINO_HUB_REPO = WeightsSpec(
    name="dino-hub-repo",
    description="the facebookresearch/dino torch.hub entry point (hubconf.py and model code) DreamSim loads",
    url="https://github.com/facebookresearch/dino/zipball/main",
    archive="zip",
    extract_to=f"{DREAMSIM_DIR}/facebookresearch_dino_main",
    strip=1,
    files=(WeightFile(f"{DREAMSIM_DIR}/facebookresearch_dino_main/hubconf.py"),),
    licence="Apache-2.0 (DINO)",
    code=True,
)

ALL = (LPIPS_ALEX, LPIPS_VGG, ARCFACE, DREAMSIM_ENSEMBLE, DINO_BACKBONE, DINO_HUB_REPO)


@contextmanager
def loading(what: str, specs: Sequence[WeightsSpec], paths: Sequence[Path] | None = None) -> Iterator[None]:
    """Turn a failure to load present weight files into ``CorruptWeightsError`` naming the file (the one the error
    names, else every one of ``paths``, by default all files of ``specs``) and the fix (`harness weights fetch` of
    the source it belongs to), so a truncated ``.pth`` or a broken ONNX reads as what it is."""
    from harness.api.method import MissingWeightsError
    from harness.weights import CorruptWeightsError, how_to_get, weights_dir

    try:
        yield
    except MissingWeightsError:
        raise
    except Exception as err:
        root = weights_dir()
        owner = {root / f.relpath: spec for spec in specs for f in spec.files}
        candidates = list(paths) if paths is not None else list(owner)
        text = " ".join(str(err).split())
        named = [p for p in candidates if str(p) in text or p.name in text] or candidates
        where = named[0] if len(named) == 1 else Path(" or ".join(str(p) for p in named))
        fix = " ".join(how_to_get(spec) for spec in dict.fromkeys(owner.get(p, specs[0]) for p in named))
        raise CorruptWeightsError(what, where, f"it is corrupt or not the expected file (loading failed with "
                                  f"{type(err).__name__}: {text[:300]})", fix) from err
