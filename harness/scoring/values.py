"""What a metric returns, and the cache of ground-truth features that metrics with an embedding reuse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.jsonio import stable_hash
from harness.paths import harness_home


@dataclass
class MetricValues:
    """Per-image values; ``reasons[i]`` says why value ``i`` is undefined (e.g. no face found), else None."""

    values: np.ndarray
    reasons: list[str | None]

    @classmethod
    def of(cls, result: Any) -> MetricValues:
        if isinstance(result, MetricValues):
            return result
        values = np.asarray(result.detach().double().cpu().numpy() if hasattr(result, "detach") else result,
                            dtype=np.float64).reshape(-1)
        return cls(values, [None] * len(values))


Features = dict[str, np.ndarray]


@runtime_checkable
class ReferenceFeatureMetric(Protocol):
    """A metric whose ground-truth side (keypoints, embeddings) is computed once and cached by image hash.

    ``cache_identity`` must change whenever the features would (settings, weights).
    """

    cache_identity: str

    def reference_features(self, gt: Any) -> list[Features]: ...

    def compare(self, pred: Any, gt: Any, features: list[Features]) -> MetricValues: ...


class ReferenceCache:
    """Ground-truth features on disk under ``$HARNESS_HOME/cache/reference``, one small file per image."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or harness_home() / "cache" / "reference"

    def _path(self, metric: str, identity: str, key: str) -> Path:
        return self.root / metric / stable_hash(identity) / key[:2] / f"{key}.npz"

    def get(self, metric: str, identity: str, key: str) -> Features | None:
        path = self._path(metric, identity, key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):  # a damaged cache file is recomputed, never trusted
            return None

    def put(self, metric: str, identity: str, key: str, features: Features) -> None:
        path = self._path(metric, identity, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **features)
        tmp.replace(path)
