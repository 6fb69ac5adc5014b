"""Random-initialised stand-ins for metric weights, written in the exact cache layouts the libraries read.

Nothing here is a real model: the stand-ins have the real file names, formats, input/output signatures and
loading paths, so the harness's loading code and the libraries' own code run unchanged on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.scoring import sources

# The stand-in detector "sees a face" where the image is saturated red: a red disk marks a face. Keypoints sit at
# fixed offsets (in stride units) from the anchor that fires: eyes, nose, mouth corners.
STANDIN_KEYPOINT_OFFSETS = [(-1.0, -0.9), (1.0, -0.9), (0.0, 0.15), (-0.8, 1.2), (0.8, 1.2)]


def _onnx_model(nodes: list, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def write_scrfd_standin(path: Path) -> None:
    """A 9-output SCRFD-shaped detector (strides 8/16/32, 2 anchors, 5 keypoints), as det_10g.onnx is."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, outputs, inits = [], {"score": [], "bbox": [], "kps": []}, []
    offsets = np.array(STANDIN_KEYPOINT_OFFSETS, dtype=np.float32).ravel()
    inits.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape_1"))
    inits.append(numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "shape_4"))
    inits.append(numpy_helper.from_array(np.array([-1, 10], dtype=np.int64), "shape_10"))
    for stride in (8, 16, 32):
        pooled = f"pool{stride}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [pooled], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
        live = stride == 32
        # Input is (x - 127.5) / 128 in RGB: red minus the mean of green and blue is ~2 on a red disk, ~0 elsewhere.
        w_score = np.array([6.0, -3.0, -3.0] if live else [0.0, 0.0, 0.0], dtype=np.float32)
        heads = {
            "score": (np.stack([w_score, w_score]), np.array([-6.0, -6.0] if live else [-30.0, -30.0]), 1),
            "bbox": (np.zeros((8, 3)), np.full(8, 2.5), 4),
            "kps": (np.zeros((20, 3)), np.concatenate([offsets, offsets]), 10),
        }
        for head, (weight, bias, width) in heads.items():
            name = f"{head}{stride}"
            inits.append(numpy_helper.from_array(weight.astype(np.float32).reshape(-1, 3, 1, 1), f"{name}_w"))
            inits.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}_b"))
            nodes.append(helper.make_node("Conv", [pooled, f"{name}_w", f"{name}_b"], [f"{name}_conv"]))
            source = f"{name}_conv"
            if head == "score":
                nodes.append(helper.make_node("Sigmoid", [source], [f"{name}_sig"]))
                source = f"{name}_sig"
            nodes.append(helper.make_node("Transpose", [source], [f"{name}_t"], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Reshape", [f"{name}_t", f"shape_{width}"], [name]))
            outputs[head].append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", width]))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])
    _onnx_model(nodes, [image], outputs["score"] + outputs["bbox"] + outputs["kps"], inits, path)


def write_arcface_standin(path: Path, seed: int = 0) -> None:
    """An ArcFace-shaped recognizer: (N, 3, 112, 112) -> (N, 512), random convolution + linear layer."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, 3, 8, 8)) * 0.05).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.zeros(16, dtype=np.float32), "conv_b"),
        numpy_helper.from_array((rng.standard_normal((16 * 14 * 14, 512)) * 0.02).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(512, dtype=np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w", "conv_b"], ["conv"], strides=[8, 8]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["embedding"]),
    ]
    _onnx_model(nodes, [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
                [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])], inits, path)


def install_insightface_standin(weights_root: Path) -> Path:
    pack = weights_root / sources.INSIGHTFACE_DIR
    write_scrfd_standin(pack / "det_10g.onnx")
    write_arcface_standin(pack / "w600k_r50.onnx")
    return pack


def trust_lpips_standin(monkeypatch: Any, weights_root: Path) -> None:
    """Make the LPIPS metrics accept the stand-in backbone: torchvision's published checksum prefix cannot match a
    random network, and the harness refuses weights that fail it (as it must for real files)."""
    from dataclasses import replace

    from harness.api.specs import WeightFile
    from harness.scoring import lpips_metric
    from harness.weights import file_sha256

    for cls in (lpips_metric.LPIPSAlex, lpips_metric.LPIPSVGG, lpips_metric._LPIPS):
        spec = cls.weights
        path = weights_root / spec.files[0].relpath
        if path.is_file():
            monkeypatch.setattr(cls, "weights", replace(spec, files=(WeightFile(spec.files[0].relpath,
                                                                               sha256=file_sha256(path)),)))


def install_lpips_standin(weights_root: Path, nets: tuple[str, ...] = ("alex",)) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    builders = {"alex": (torchvision.models.alexnet, sources.LPIPS_ALEX),
                "vgg": (torchvision.models.vgg16, sources.LPIPS_VGG)}
    for net in nets:
        build, spec = builders[net]
        path = weights_root / spec.files[0].relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(build().state_dict(), path)


def face_image(size: int = 256, centre: tuple[int, int] = (128, 128), radius: int = 40, seed: int = 0,
               background: float = 0.8) -> np.ndarray:
    """An (H, W, 3) float image with a red disk (a "face" for the stand-in detector) over textured grey."""
    rng = np.random.default_rng(seed)
    image = np.clip(background + 0.1 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius**2
    texture = 0.08 * rng.standard_normal((size, size))
    image[disk] = np.stack([0.95 + 0.0 * texture, 0.05 + texture.clip(0, 0.2), 0.05 + texture.clip(0, 0.2)],
                           axis=-1)[disk]
    return image


_DINO_HUBCONF = '''"""Stand-in for the facebookresearch/dino torch.hub entry point (test fixture, not the DINO code)."""
import os

import torch
from dreamsim.feature_extraction.vision_transformer import vit_base

dependencies = ["torch"]


def dino_vitb16(pretrained=True, **kwargs):
    model = vit_base(patch_size=16, num_classes=0, **kwargs)
    if pretrained:
        path = os.path.join(torch.hub.get_dir(), "checkpoints", "dino_vitbase16_pretrain.pth")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model
'''


def install_dreamsim_standin(weights_root: Path, seed: int = 0) -> Path:
    """DreamSim's ensemble cache: three random ViT-B/16 backbones, a DINO head, a torch.hub entry point and a LoRA
    adapter with non-zero weights, in the files and formats ``dreamsim(cache_dir=...)`` reads."""
    import torch
    from dreamsim.feature_extraction.vision_transformer import DINOHead, vit_base
    from peft import LoraConfig, get_peft_model

    from harness.scoring.torchhub import torch_hub_dir

    cache = weights_root / sources.DREAMSIM_DIR
    (cache / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(vit_base(patch_size=16, num_classes=0).state_dict(), cache / "checkpoints" /
               "dino_vitbase16_pretrain.pth")
    hub = cache / "facebookresearch_dino_main"
    hub.mkdir(exist_ok=True)
    (hub / "hubconf.py").write_text(_DINO_HUBCONF)
    # Recorded as `harness weights fetch` records what it verified: hub code is only run with a recorded checksum.
    from harness.weights import file_sha256, record_checksums

    record_checksums(weights_root, {(hub / "hubconf.py").relative_to(weights_root).as_posix():
                                    file_sha256(hub / "hubconf.py")})
    head = DINOHead(768, 2048)
    student = {f"module.head.{k}": v for k, v in head.state_dict().items()}
    student["module.head.last_layer.weight"] = torch.randn(2048, 256) * 0.02
    torch.save({"student": student}, cache / "dino_vitb16_pretrain.pth")
    for name in ("open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar"):
        vit = vit_base(patch_size=16)
        vit.pos_drop = torch.nn.LayerNorm(768)
        state = dict(vit.state_dict())
        state["proj"] = torch.randn(768, 512) * 0.02
        torch.save({"state_dict": state}, cache / name)

    from dreamsim.config import dreamsim_args
    from dreamsim.model import PerceptualModel

    with torch_hub_dir(cache):
        base = PerceptualModel(**dreamsim_args["model_config"]["ensemble"], device="cpu", load_dir=str(cache),
                               normalize_embeds=True)
    config = LoraConfig(r=4, lora_alpha=0.5, lora_dropout=0.0, bias="none", target_modules=["qkv"])
    lora = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    lora.save_pretrained(str(cache / "ensemble_lora"))
    return cache
