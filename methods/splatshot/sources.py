"""Where SplatShot's full-size components come from (listed by ``harness weights status``, fetched one file each by
``harness weights fetch NAME``). No checksums are published for these files: each one's sha256 is recorded at its
first verified fetch and checked from then on. Revision: the repositories' ``main`` at fetch time (pin a commit by
editing ``REVISIONS``); the folder they land in is what ``--config pretrained=...`` points at by default.
"""

from __future__ import annotations

from harness.api import WeightFile, WeightsSpec

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
IP_ADAPTER_REPO = "h94/IP-Adapter"
REVISIONS = {SD15_REPO: "main", IP_ADAPTER_REPO: "main"}
FOLDER = "splatshot/sd15"  # under $HARNESS_HOME/weights
IP_ADAPTER_FILE = "ip_adapter/ip-adapter-plus-face_sd15.bin"

# (component, file in our folder, repository, path in the repository)
FILES = (
    ("unet", "unet/config.json", SD15_REPO, "unet/config.json"),
    ("unet", "unet/diffusion_pytorch_model.safetensors", SD15_REPO, "unet/diffusion_pytorch_model.safetensors"),
    ("vae", "vae/config.json", SD15_REPO, "vae/config.json"),
    ("vae", "vae/diffusion_pytorch_model.safetensors", SD15_REPO, "vae/diffusion_pytorch_model.safetensors"),
    ("scheduler", "scheduler/scheduler_config.json", SD15_REPO, "scheduler/scheduler_config.json"),
    ("text_encoder", "text_encoder/config.json", SD15_REPO, "text_encoder/config.json"),
    ("text_encoder", "text_encoder/model.safetensors", SD15_REPO, "text_encoder/model.safetensors"),
    ("tokenizer", "tokenizer/vocab.json", SD15_REPO, "tokenizer/vocab.json"),
    ("tokenizer", "tokenizer/merges.txt", SD15_REPO, "tokenizer/merges.txt"),
    ("tokenizer", "tokenizer/tokenizer_config.json", SD15_REPO, "tokenizer/tokenizer_config.json"),
    ("tokenizer", "tokenizer/special_tokens_map.json", SD15_REPO, "tokenizer/special_tokens_map.json"),
    ("feature_extractor", "feature_extractor/preprocessor_config.json", SD15_REPO,
     "feature_extractor/preprocessor_config.json"),
    ("image_encoder", "image_encoder/config.json", IP_ADAPTER_REPO, "models/image_encoder/config.json"),
    ("image_encoder", "image_encoder/model.safetensors", IP_ADAPTER_REPO, "models/image_encoder/model.safetensors"),
    ("ip_adapter", IP_ADAPTER_FILE, IP_ADAPTER_REPO, "models/ip-adapter-plus-face_sd15.bin"),
)


def _name(relpath: str) -> str:
    return "splatshot-" + relpath.replace("/", "-").replace("_", "-").replace(".", "-").lower()


SOURCES = tuple(
    WeightsSpec(name=_name(rel), url=f"https://huggingface.co/{repo}/resolve/{REVISIONS[repo]}/{path}",
                files=(WeightFile(f"{FOLDER}/{rel}"),), description=f"SplatShot {component}: {repo} {path}",
                licence="CreativeML Open RAIL-M" if repo == SD15_REPO else "Apache-2.0")
    for component, rel, repo, path in FILES)
