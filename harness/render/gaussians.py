"""The Gaussian container every method produces, and its load/save in the standard 3DGS ``.ply`` layout.

Stored as in the 3DGS ``.ply`` (so a save/load round trip is bit-exact and common splat viewers open the files):
means in world units, rotations as quaternions (w, x, y, z, not necessarily normalised), scales as natural logs,
opacities as logits, spherical-harmonic coefficients as ``f_dc_*`` (degree 0) and ``f_rest_*`` (degrees 1..3, stored
channel-major: all red coefficients, then green, then blue). Extra per-Gaussian feature channels are saved as
``feat_*`` properties, which viewers ignore.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SH_COEFFS = {0: 1, 1: 4, 2: 9, 3: 16}


class PlyFormatError(ValueError):
    pass


@dataclass
class Gaussians:
    means: np.ndarray  # (N, 3)
    quats: np.ndarray  # (N, 4) w, x, y, z
    log_scales: np.ndarray  # (N, 3)
    opacity_logits: np.ndarray  # (N,)
    sh: np.ndarray  # (N, K, 3), K = (degree + 1) ** 2
    features: np.ndarray | None = None  # (N, F)

    def __post_init__(self) -> None:
        n = len(self.means)
        shapes = {"means": (n, 3), "quats": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"Gaussians.{name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3 or \
                self.sh.shape[1] not in SH_COEFFS.values():
            raise ValueError(f"Gaussians.sh has shape {self.sh.shape}, expected (N, 1|4|9|16, 3)")
        if self.features is not None and (self.features.ndim != 2 or len(self.features) != n):
            raise ValueError(f"Gaussians.features has shape {self.features.shape}, expected (N, F)")

    def __len__(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return {k: d for d, k in SH_COEFFS.items()}[self.sh.shape[1]]

    @property
    def scales(self) -> np.ndarray:
        return np.exp(self.log_scales)

    @property
    def opacities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.opacity_logits))

    def _columns(self) -> list[tuple[str, np.ndarray]]:
        rest = self.sh[:, 1:, :].transpose(0, 2, 1).reshape(len(self), -1)  # channel-major, as 3DGS writes it
        columns = [(n, self.means[:, i]) for i, n in enumerate("xyz")]
        columns += [(n, np.zeros(len(self), np.float32)) for n in ("nx", "ny", "nz")]
        columns += [(f"f_dc_{i}", self.sh[:, 0, i]) for i in range(3)]
        columns += [(f"f_rest_{i}", rest[:, i]) for i in range(rest.shape[1])]
        columns.append(("opacity", self.opacity_logits))
        columns += [(f"scale_{i}", self.log_scales[:, i]) for i in range(3)]
        columns += [(f"rot_{i}", self.quats[:, i]) for i in range(4)]
        if self.features is not None:
            columns += [(f"feat_{i}", self.features[:, i]) for i in range(self.features.shape[1])]
        return columns

    def save_ply(self, path: Path) -> None:
        columns = self._columns()
        table = np.empty(len(self), dtype=[(name, "<f4") for name, _ in columns])
        for name, values in columns:
            table[name] = values
        header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(self)}"]
        header += [f"property float {name}" for name, _ in columns]
        header.append("end_header")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(("\n".join(header) + "\n").encode("ascii"))
            handle.write(table.tobytes())
        tmp.replace(path)

    @classmethod
    def load_ply(cls, path: Path) -> Gaussians:
        data = Path(path).read_bytes()
        end = data.find(b"end_header\n")
        if not data.startswith(b"ply\n") or end < 0:
            raise PlyFormatError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
        lines = data[:end].decode("ascii").splitlines()
        if "format binary_little_endian 1.0" not in lines:
            raise PlyFormatError(f"{path}: only binary_little_endian PLY is supported")
        count, names = None, []
        for line in lines:
            parts = line.split()
            if parts[:2] == ["element", "vertex"]:
                count = int(parts[2])
            elif parts[:1] == ["element"]:
                raise PlyFormatError(f"{path}: unexpected element {parts[1]!r}; a 3DGS file has only vertices")
            elif parts[:1] == ["property"]:
                if parts[1] != "float":
                    raise PlyFormatError(f"{path}: property {parts[-1]} is {parts[1]}, expected float")
                names.append(parts[2])
        if count is None:
            raise PlyFormatError(f"{path}: no vertex element")
        body = data[end + len(b"end_header\n"):]
        dtype = np.dtype([(n, "<f4") for n in names])
        if len(body) != count * dtype.itemsize:
            raise PlyFormatError(f"{path}: {len(body)} bytes of vertex data, expected {count * dtype.itemsize} for "
                                 f"{count} Gaussians (truncated file?)")
        table = np.frombuffer(body, dtype=dtype)
        missing = [n for n in ("x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0") if n not in names]
        if missing:
            raise PlyFormatError(f"{path}: missing 3DGS properties {missing}")

        def stack(prefix: str, k: int) -> np.ndarray:
            return np.stack([table[f"{prefix}{i}"] for i in range(k)], axis=1).astype(np.float32)

        n_rest = sum(1 for n in names if n.startswith("f_rest_"))
        k = 1 + n_rest // 3
        if k not in SH_COEFFS.values() or n_rest % 3:
            raise PlyFormatError(f"{path}: {n_rest} f_rest properties do not make SH degree 0-3")
        sh = np.empty((count, k, 3), np.float32)
        sh[:, 0, :] = stack("f_dc_", 3)
        if n_rest:
            sh[:, 1:, :] = stack("f_rest_", n_rest).reshape(count, 3, k - 1).transpose(0, 2, 1)
        n_feat = sum(1 for n in names if n.startswith("feat_"))
        return cls(
            means=np.stack([table[c] for c in "xyz"], axis=1).astype(np.float32),
            quats=stack("rot_", 4), log_scales=stack("scale_", 3),
            opacity_logits=table["opacity"].astype(np.float32), sh=sh,
            features=stack("feat_", n_feat) if n_feat else None,
        )
