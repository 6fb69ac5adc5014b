"""Decoded frames cached at the protocol's resolution, so a second method on the same protocol decodes nothing.

One entry per view: the 8-bit pixels as an uncompressed ``.npy`` (RGBA when there is alpha; PNG encoding took
~0.4 s per 1100x1604 frame, more than decoding the video: ``benchmarks/bench_decode.py``) plus a JSON sidecar
with the camera, the preprocessing record and a fingerprint of the source files (size and modification time).
The sidecar is written last, so an entry without it is incomplete and ignored; an entry whose sources changed is
recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.types import Camera, View, ViewRef
from harness.imageio import to_uint8


def quantise(view: View) -> View:
    """The view as it will read back from the cache (8 bits per channel), so first and cached passes agree."""
    image = to_uint8(view.image).astype(np.float32) / 255.0
    alpha = None if view.alpha is None else to_uint8(view.alpha).astype(np.float32) / 255.0
    return View(view.ref, image, view.camera, alpha, view.tracking, view.alpha_note)


def source_fingerprint(paths: list[Path]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for path in paths:
        try:
            stat = path.stat()
            out.append([str(path), stat.st_size, stat.st_mtime_ns])
        except FileNotFoundError:
            out.append([str(path), None, None])
    return out


class FrameCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _base(self, ref: ViewRef) -> Path:
        return self.root / ref.subject / ref.sequence / f"{ref.frame:06d}" / ref.camera

    def meta(self, ref: ViewRef, fingerprint: list[list[Any]]) -> dict[str, Any] | None:
        sidecar = self._base(ref).with_suffix(".json")
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return meta if meta.get("sources") == fingerprint else None

    @staticmethod
    def camera_of(meta: dict[str, Any]) -> Camera:
        cam = meta["camera"]
        return Camera(np.asarray(cam["world_to_camera"]), np.asarray(cam["K"]), cam["width"], cam["height"])

    def get(self, ref: ViewRef, fingerprint: list[list[Any]]) -> tuple[View, dict[str, Any]] | None:
        meta = self.meta(ref, fingerprint)
        if meta is None:
            return None
        try:
            data = np.load(self._base(ref).with_suffix(".npy"), allow_pickle=False)
        except (OSError, ValueError):  # a damaged entry is recomputed, never trusted
            return None
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[-1] not in (3, 4):
            return None
        pixels = data.astype(np.float32) / 255.0
        alpha = np.ascontiguousarray(pixels[..., 3]) if data.shape[-1] == 4 else None
        view = View(ref, np.ascontiguousarray(pixels[..., :3]), self.camera_of(meta), alpha,
                    alpha_note=meta.get("alpha_note"))
        return view, meta["record"]

    def put(self, view: View, record: dict[str, Any], fingerprint: list[list[Any]]) -> None:
        base = self._base(view.ref)
        base.parent.mkdir(parents=True, exist_ok=True)
        data = to_uint8(view.image)
        if view.alpha is not None:
            data = np.concatenate([data, to_uint8(view.alpha)[..., None]], axis=-1)
        tmp_npy = base.with_name(f".{base.name}.{os.getpid()}.npy")
        np.save(tmp_npy, np.ascontiguousarray(data), allow_pickle=False)
        os.replace(tmp_npy, base.with_suffix(".npy"))
        camera = view.camera
        meta = {"sources": fingerprint, "record": record, "alpha_note": view.alpha_note,
                "camera": {"world_to_camera": camera.world_to_camera.tolist(), "K": camera.K.tolist(),
                           "width": camera.width, "height": camera.height}}
        tmp_json = base.with_name(f".{base.name}.{os.getpid()}.json")
        tmp_json.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp_json, base.with_suffix(".json"))
