"""CSIM: ArcFace identity similarity through insightface's ``buffalo_l`` pack (pinned by name).

Pipeline per pair: five keypoints from the SCRFD detector (det size 640x640, threshold 0.5, insightface's own
choice of one face: largest and most central) -> similarity warp onto the 112x112 ArcFace template
(``insightface.utils.face_align.estimate_norm`` + ``cv2.warpAffine``, exactly ``norm_crop``) -> ArcFace R50 embedding
(input (x - 127.5) / 127.5, RGB, batched through the library's ``get_feat``) -> cosine similarity.

``csim`` (headline): keypoints detected on the ground truth, the same warp applied to both images (renders are
pixel-aligned with their ground truth). ``csim_detect_both``: each image warped with its own keypoints. A pair where
no face is found has no value; the reason is recorded and counted, never dropped silently.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from harness.scoring.sources import ARCFACE, INSIGHTFACE_DIR, loading
from harness.scoring.values import Features, MetricValues
from harness.weights import require

DET_SIZE = (640, 640)
DET_THRESHOLD = 0.5
CROP = 112
NO_FACE_GT = "no face detected in the ground truth"
NO_FACE_PRED = "no face detected in the prediction"


def to_bgr_uint8(images: Any) -> list[np.ndarray]:
    """(B, 3, H, W) RGB floats in [0, 1] -> the uint8 BGR arrays insightface takes."""
    array = images.detach().float().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a[..., ::-1]) for a in array]


def _fingerprint(paths: list[Path]) -> str:
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class IdentityModel:
    """The detector and the recognizer of the pack, loaded from the harness weights cache."""

    def __init__(self, device: str = "cpu") -> None:
        root = require(ARCFACE, "CSIM")
        from insightface.model_zoo import model_zoo

        pack = root / INSIGHTFACE_DIR
        self.files = [pack / "det_10g.onnx", pack / "w600k_r50.onnx"]
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        ctx = 0 if providers[0] == "CUDAExecutionProvider" else -1
        self.detector = self._model(model_zoo, self.files[0], providers)
        with loading("CSIM", [ARCFACE], self.files[:1]):
            self.detector.prepare(ctx, input_size=DET_SIZE, det_thresh=DET_THRESHOLD)
        self.recognizer = self._model(model_zoo, self.files[1], providers)
        with loading("CSIM", [ARCFACE], self.files[1:]):
            self.recognizer.prepare(ctx)
        self.identity = f"csim-v1|det{DET_SIZE}|thr{DET_THRESHOLD}|{_fingerprint(self.files)}"

    @staticmethod
    def _model(model_zoo: Any, path: Path, providers: list[str]) -> Any:
        """One ONNX model of the pack; a file onnxruntime cannot read, or one insightface does not recognise as a
        detector or recognizer, is named as corrupt with the fix."""
        with loading("CSIM", [ARCFACE], [path]):
            model = model_zoo.get_model(str(path), providers=providers)
            if model is None:
                raise ValueError(f"{path.name} is not a model insightface recognises")
        return model

    def keypoints(self, image_bgr: np.ndarray) -> np.ndarray | None:
        _, kpss = self.detector.detect(image_bgr, max_num=1)
        if kpss is None or len(kpss) == 0:
            return None
        return np.asarray(kpss[0], dtype=np.float32)

    def detect_and_embed(self, images_bgr: list[np.ndarray]) -> tuple[list[np.ndarray | None], dict[int, np.ndarray]]:
        """Keypoints of each image (None where no face is found) and the embeddings of those with a face, by index,
        each image warped with its own keypoints."""
        keypoints = [self.keypoints(img) for img in images_bgr]
        found = [i for i, k in enumerate(keypoints) if k is not None]
        embeddings = self.embed([images_bgr[i] for i in found], [keypoints[i] for i in found])
        return keypoints, dict(zip(found, embeddings, strict=True))

    def embed(self, images_bgr: list[np.ndarray], keypoints: list[np.ndarray]) -> np.ndarray:
        """ArcFace embeddings of the images, each warped with its keypoints; one batched call."""
        import cv2
        from insightface.utils.face_align import estimate_norm

        if not images_bgr:
            return np.zeros((0, 512), dtype=np.float32)
        crops = [cv2.warpAffine(img, estimate_norm(kps, CROP), (CROP, CROP), borderValue=0.0)
                 for img, kps in zip(images_bgr, keypoints, strict=True)]
        return np.asarray(self.recognizer.get_feat(crops), dtype=np.float32)


class CSIM:
    """Keypoints from the ground truth, one warp for both images (headline)."""

    detect_on_prediction = False

    def __init__(self, device: str = "cpu") -> None:
        self.model = IdentityModel(device)
        self.cache_identity = f"{self.model.identity}|both={self.detect_on_prediction}"

    def reference_features(self, gt: Any) -> list[Features]:
        keypoints, embeddings = self.model.detect_and_embed(to_bgr_uint8(gt))
        return [{"found": np.ones((), dtype=bool), "keypoints": keypoints[i], "embedding": embeddings[i]}
                if i in embeddings else {"found": np.zeros((), dtype=bool)} for i in range(len(keypoints))]

    def compare(self, pred: Any, gt: Any, features: list[Features]) -> MetricValues:
        images = to_bgr_uint8(pred)
        values = np.full(len(images), np.nan)
        reasons: list[str | None] = [None] * len(images)
        todo, kps = [], []
        for i, f in enumerate(features):
            if not bool(f["found"]):
                reasons[i] = NO_FACE_GT
                continue
            k = self.model.keypoints(images[i]) if self.detect_on_prediction else f["keypoints"]
            if k is None:
                reasons[i] = NO_FACE_PRED
                continue
            todo.append(i)
            kps.append(k)
        embeddings = self.model.embed([images[i] for i in todo], kps)
        for row, i in enumerate(todo):
            values[i] = _cosine(embeddings[row], features[i]["embedding"])
        return MetricValues(values, reasons)

    def __call__(self, pred: Any, gt: Any) -> MetricValues:
        return self.compare(pred, gt, self.reference_features(gt))

    def against_photo(self, renders: Any, photo: Any) -> MetricValues:
        """Reference-free: each render (own keypoints) against the input photo (own keypoints)."""
        ref = self.reference_features(photo)[0]
        images = to_bgr_uint8(renders)
        if not bool(ref["found"]):
            return MetricValues(np.full(len(images), np.nan), ["no face detected in the input photo"] * len(images))
        _, embeddings = self.model.detect_and_embed(images)
        values = np.array([_cosine(embeddings[i], ref["embedding"]) if i in embeddings else np.nan
                           for i in range(len(images))])
        return MetricValues(values, [None if i in embeddings else "no face detected in the render"
                                     for i in range(len(images))])

    def cross_view(self, renders: Any) -> tuple[MetricValues, list[tuple[int, int]]]:
        """Reference-free: cosine between every pair of renders where both have a face."""
        images = to_bgr_uint8(renders)
        _, embeddings = self.model.detect_and_embed(images)
        pairs = list(combinations(range(len(images)), 2))
        values = np.full(len(pairs), np.nan)
        reasons: list[str | None] = []
        for n, (a, b) in enumerate(pairs):
            if a in embeddings and b in embeddings:
                values[n] = _cosine(embeddings[a], embeddings[b])
                reasons.append(None)
            else:
                reasons.append("no face detected in one of the renders")
        return MetricValues(values, reasons), pairs


class CSIMDetectBoth(CSIM):
    """Each image warped with the keypoints detected on it (what some papers do)."""

    detect_on_prediction = True
