"""FLAME 2023, loaded from the user's own model file (FLAME may not be redistributed; nothing of it ships here).

The model file is the pickle distributed by the FLAME authors (``flame2023.pkl``; a Python 2 pickle whose arrays
are chumpy objects and whose joint regressor is a scipy sparse matrix). It is read without chumpy installed:
chumpy's plain ``Ch`` arrays are rebuilt from their pickled state (``x``), anything else is refused by name.
Optional companions, as distributed next to it: ``FLAME_masks.pkl`` (region vertex lists), a static landmark
embedding (``lmk_face_idx``, ``lmk_b_coords``) and a texture-space file with ``vt``/``ft`` (UV layout).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from harness.heads.model import PARENTS, HeadModel

FLAME_NAME = "flame2023"
NUM_SHAPE = 300
HOW_TO_GET = ("Register at https://flame.is.tue.mpg.de, download FLAME 2023 and pass the path of flame2023.pkl "
              "(never commit it: its licence forbids redistribution).")


class FlameFormatError(ValueError):
    pass


class _ChumpyArray:
    """Stands in for ``chumpy.ch.Ch`` while unpickling; keeps the array chumpy stored in ``x``."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.state["x"], dtype=dtype)


def _numpy_core(name: str) -> Any:
    import importlib

    try:
        return getattr(importlib.import_module("numpy._core.multiarray"), name)
    except ImportError:  # numpy < 2
        return getattr(importlib.import_module("numpy.core.multiarray"), name)


def _numpy_frombuffer() -> Any:
    import importlib

    try:
        return importlib.import_module("numpy._core.numeric")._frombuffer
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.numeric")._frombuffer


# Everything a FLAME pickle holds (numpy arrays and dtypes, scipy sparse matrices, chumpy arrays, and the
# old-protocol object reconstructor they are pickled with). Any other global is refused by name before it is
# imported, so a pickle cannot make the loader call anything else (``os.system``, ``builtins.eval``, ...).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_core("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_core("scalar"),
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("copyreg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("builtins", "object"): lambda: object,
    ("copy_reg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,  # Python 2 names
    ("__builtin__", "object"): lambda: object,
    ("builtins", "set"): lambda: set,  # chumpy keeps some attributes as sets
    ("__builtin__", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("_codecs", "encode"): lambda: __import__("_codecs").encode,  # bytes in protocol-2 pickles written by Python 3
}
_SPARSE = ("csc_matrix", "csr_matrix", "coo_matrix")
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse.csr", "scipy.sparse.coo", "scipy.sparse._csc",
                   "scipy.sparse._csr", "scipy.sparse._coo")


class _FlameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            if name != "Ch":
                raise FlameFormatError(f"the FLAME file holds a chumpy {module}.{name} object; only plain Ch arrays "
                                       "can be read without chumpy")
            return _ChumpyArray
        if module in _SPARSE_MODULES and name in _SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise FlameFormatError(f"the file refers to {module}.{name}, which a FLAME model never holds; refused "
                                   "(only numpy arrays, scipy sparse matrices and chumpy arrays are read)")
        return factory()


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return _FlameUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise FlameFormatError(f"missing FLAME file {path}. {HOW_TO_GET}") from None
    except FlameFormatError:
        raise
    except Exception as err:  # a damaged pickle fails with any error type (IndexError, KeyError, ...)
        raise FlameFormatError(f"{path} is not a readable FLAME pickle: {type(err).__name__}: {err}") from None


def _dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):
        return value.toarray()
    return np.asarray(value, dtype=np.float64)


def load_flame(path: Path, masks: Path | None = None, landmarks: Path | None = None,
               uv: Path | None = None) -> HeadModel:
    """FLAME 2023 as a ``HeadModel`` (300 shape + 100 expression components, FLAME's 5 joints)."""
    path = Path(path)
    raw = _read_pickle(path)
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
    if not isinstance(raw, dict) or any(k not in raw for k in required):
        have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise FlameFormatError(f"{path}: a FLAME pickle needs keys {list(required)}, found {have}")
    v_template = _dense(raw["v_template"])
    shapedirs = _dense(raw["shapedirs"])
    if shapedirs.ndim != 3 or shapedirs.shape[2] <= NUM_SHAPE:
        raise FlameFormatError(f"{path}: shapedirs has shape {shapedirs.shape}, expected (V, 3, 300 + expressions)")
    posedirs = _dense(raw["posedirs"])
    parents = tuple(int(p) for p in np.asarray(raw["kintree_table"])[0])
    parents = tuple(-1 if i == 0 else p for i, p in enumerate(parents))
    if parents != PARENTS:
        raise FlameFormatError(f"{path}: kinematic tree {parents} is not FLAME's {PARENTS}")
    faces = np.asarray(raw["f"], dtype=np.int64)
    uv_coords, uv_faces = np.zeros((0, 2)), np.zeros((0, 3), np.int64)
    if uv is not None:
        texture = np.load(uv)
        uv_coords, uv_faces = np.asarray(texture["vt"], np.float64), np.asarray(texture["ft"], np.int64)
    landmark_faces, landmark_bary = np.zeros(0, np.int64), np.zeros((0, 3))
    if landmarks is not None:
        embedding = _read_pickle(landmarks)
        landmark_faces = np.asarray(embedding["lmk_face_idx"], np.int64)
        landmark_bary = np.asarray(embedding["lmk_b_coords"], np.float64)
    regions = {}
    if masks is not None:
        regions = {str(k): np.asarray(v, np.int64) for k, v in _read_pickle(masks).items()}
    return HeadModel(
        name=FLAME_NAME, v_template=v_template, faces=faces, shapedirs=shapedirs[:, :, :NUM_SHAPE],
        exprdirs=shapedirs[:, :, NUM_SHAPE:], J_regressor=_dense(raw["J_regressor"]),
        lbs_weights=_dense(raw["weights"]), uv_coords=uv_coords, uv_faces=uv_faces,
        landmark_faces=landmark_faces, landmark_bary=landmark_bary, regions=regions,
        posedirs=posedirs.reshape(-1, posedirs.shape[-1]).T, parents=parents,
    )


def params_from_nersemble_tracking(tracking: Any, frame_index: int) -> dict[str, Any]:
    """One frame of NeRSemble's ``flame2023_tracking_v2.npz`` as a tracking dict (``HeadParams`` fields)."""
    frame = {k: np.asarray(tracking[k]) for k in ("expression", "rotation", "translation", "jaw", "neck", "eyes")}
    return {
        "model": FLAME_NAME,
        "shape": np.asarray(tracking["shape"])[0].tolist(),
        **{k: v[frame_index].tolist() for k, v in frame.items()},
        "scale": float(np.asarray(tracking["scale"]).reshape(-1)[0]),
    }
