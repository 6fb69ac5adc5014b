"""Built-in datasets, registered through the same hook a third-party dataset plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from harness.api.specs import DatasetSpec
from harness.plugins.hookspecs import hookimpl

NERSEMBLE_ACCESS = ("Request access at https://tobias-kirschstein.github.io/nersemble/ (the form links the download "
                    "URL), then download with the official toolkit")


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="demo",
        display_name="Demo heads (procedural)",
        target="harness.data.demo:DemoDataset",
        description="3 heads made from the open head template, 6 frames, 16 NeRSemble-like cameras, with "
                    "tracking; written on first use in the NeRSemble v1 layout and read back through the v1 reader.",
        protocols={"demo": "demo/demo.yaml", "demo-fewshot": "demo/demo-fewshot.yaml"},
        default_protocol="demo",
        root_env="HARNESS_DEMO_ROOT",
        synthetic_subjects=True,
        default_root="data/demo-v2",  # the reader's default_root(); a test keeps them equal
        obtain="Generated automatically into $HARNESS_HOME/data on first use (about a minute on 2 cores).",
    ))
    register(DatasetSpec(
        name="demo-sweep",
        display_name="Demo few-shot sweep (procedural)",
        target="harness.data.demo_sweep:DemoSweep",
        description="12 held-out template heads, 8 input frames and 2 novel expressions, 16 cameras, with tracking; "
                    "for k-input sweeps with statistical power. NeRSemble v1 layout.",
        protocols={"demo-sweep": "demo/demo-sweep.yaml"},
        default_protocol="demo-sweep",
        root_env="HARNESS_DEMO_SWEEP_ROOT",
        synthetic_subjects=True,
        default_root="data/demo-sweep-v1",  # the reader's default_root(); a test keeps them equal
        obtain="Generated automatically into $HARNESS_HOME/data on first use (about 4 minutes on 2 cores).",
    ))
    register(DatasetSpec(
        name="demo-wild",
        display_name="Demo heads in the wild (procedural photos)",
        target="harness.data.demo_wild:DemoWild",
        description="4 photos of demo heads at random poses over textured backgrounds, read through the "
                    "in-the-wild reader; reference-free scoring.",
        protocols={"demo-wild": "demo/demo-wild.yaml"},
        default_protocol="demo-wild",
        root_env="HARNESS_DEMO_WILD_ROOT",
        synthetic_subjects=True,
        default_root="data/demo-wild-v1",  # the reader's default_root(); a test keeps them equal
        obtain="Generated automatically into $HARNESS_HOME/data on first use (measured: 2 s on 2 cores).",
    ))
    register(DatasetSpec(
        name="nersemble",
        display_name="NeRSemble benchmark release",
        target="harness.data.nersemble_benchmark:NersembleBenchmark",
        description="The 2026 benchmark release: nvs/ (5 participants, 13 distributed cameras, alpha videos), "
                    "mono_flame_avatar/ (FLAME 2023 tracking), svfr/ (512x512 single-view crops).",
        protocols={"nvs": "nersemble/nvs.yaml", "self-reenactment": "nersemble/self-reenactment.yaml",
                   "fewshot": "nersemble/fewshot.yaml", "svfr": "nersemble/svfr.yaml",
                   "nvs-submission": "nersemble/nvs-submission.yaml"},
        default_protocol="nvs",
        root_env="HARNESS_NERSEMBLE_ROOT",
        obtain=f"{NERSEMBLE_ACCESS}: pip install nersemble_benchmark; nersemble-benchmark-download DIR nvs "
               "(and mono_flame_avatar, svfr); pass DIR.",
    ))
    register(DatasetSpec(
        name="nersemble-v1",
        display_name="NeRSemble v1 (frame PNGs)",
        target="harness.data.nersemble_v1:NersembleV1",
        description="The original release: per-frame PNGs at 2x downsampling with alpha maps, one shared K.",
        protocols={"paper": "nersemble/v1-paper.yaml"},
        default_protocol="paper",
        root_env="HARNESS_NERSEMBLE_V1_ROOT",
        obtain=f"{NERSEMBLE_ACCESS} (v1 archives of the 10 paper sequences); pass the folder holding "
               "{pid:03d}/camera_params.json.",
    ))
    register(DatasetSpec(
        name="nersemble-v2",
        display_name="NeRSemble v2 (per-camera videos)",
        target="harness.data.nersemble_v2:NersembleV2",
        description="The full release as videos: per-camera MP4s, calibration, colour calibration, background "
                    "plates; no alpha (masked metrics need alpha maps you add, else they are reported missing).",
        protocols={"novel-view": "nersemble/v2-novel-view.yaml"},
        splits={"train": "nersemble/train.yaml"},
        default_protocol="novel-view",
        root_env="HARNESS_NERSEMBLE_V2_ROOT",
        obtain=f"{NERSEMBLE_ACCESS}: pip install nersemble_data; nersemble-data download DIR; pass DIR.",
    ))
    register(DatasetSpec(
        name="ava256",
        display_name="Ava-256",
        target="harness.data.ava256:Ava256",
        description="256 captures, 80 cameras, images and segmentations in per-camera zips (AVIF), KRT "
                    "calibration; the harness's own split (no official protocol exists).",
        protocols={"split": "ava256/split.yaml"},
        splits={"train": "ava256/train.yaml"},
        default_protocol="split",
        root_env="HARNESS_AVA256_ROOT",
        obtain="git clone https://github.com/facebookresearch/ava-256; python download.py -o DIR "
               "(--assets camera_calibration frame_list head_pose image segmentation_parts); pass DIR.",
    ))
    register(DatasetSpec(
        name="wild",
        display_name="In-the-wild photos",
        target="harness.data.wild:WildPhotos",
        description="Any folder of portrait photos (jpg, png, webp), optional boxes.json; reference-free scoring.",
        protocols={"wild": "wild/wild.yaml"},
        default_protocol="wild",
        root_env="HARNESS_WILD_ROOT",
        obtain="Your own photos: pass the folder with --data-root.",
    ))
