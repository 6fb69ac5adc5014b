"""Reading and writing images in the harness contract (float32 RGB in [0, 1], alpha in [0, 1])."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

# The most pixels an image file may declare. Set explicitly (PIL's default only warns up to twice its own limit,
# and decodes): a header claiming more is refused by ``read_image``/``read_mask`` before any pixel is decoded. It
# holds every dataset frame (NeRSemble 2200x3208, Ava-256 4096x2668) and a 108-megapixel phone photo.
MAX_IMAGE_PIXELS = 128_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageReadError(RuntimeError):
    """An image file is missing, truncated or not an image; the message names the file."""


@contextmanager
def _decoding(path: Path, what: str) -> Iterator[None]:
    """Turn every way decoding ``path`` can fail into an ``ImageReadError`` naming the file.

    PIL's decompression-bomb warning is raised as an error here, so an oversized header is refused, never decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except FileNotFoundError:
        raise ImageReadError(f"missing {what} file {path}") from None
    except IsADirectoryError:
        raise ImageReadError(f"{what} file {path} is a folder, not a file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{what} file {path} is refused: {err} (limit: MAX_IMAGE_PIXELS = "
                             f"{MAX_IMAGE_PIXELS} pixels)") from None
    except MemoryError:
        raise ImageReadError(f"{what} file {path} does not fit in memory when decoded") from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError, struct.error, ...
        raise ImageReadError(f"unreadable {what} file {path}: {type(err).__name__}: {err}") from None


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an 8/16-bit PNG/JPEG or a float ``.npy``; returns (RGB float32 HxWx3, alpha HxW or None)."""
    if path.suffix == ".npy":
        return _read_npy(path)
    with _decoding(path, "image"), Image.open(path) as img:
        img.load()
        array = _pil_to_float(img)
    if array.shape[-1] == 4:
        return np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3])
    return array, None


def _pil_to_float(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with _decoding(path, "array"):
        array = np.load(path, allow_pickle=False)
    if not isinstance(array, np.ndarray):  # an .npz archive saved under a .npy name
        raise ImageReadError(f"array file {path} is an archive of arrays, not one (H, W, 3|4) array")
    if array.dtype.kind not in "fiu":
        raise ImageReadError(f"array file {path} holds {array.dtype} values; expected numbers (float in [0, 1])")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ImageReadError(f"array file {path} has shape {array.shape}; expected (H, W, 3) or (H, W, 4)")
    array = array.astype(np.float32, copy=False)
    if array.shape[-1] == 4:
        return np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3])
    return array, None


def read_mask(path: Path) -> np.ndarray:
    """Read a single-channel mask (first channel of a colour file) as float32 HxW in [0, 1]."""
    with _decoding(path, "mask"), Image.open(path) as img:
        img.load()
        array = np.asarray(img)
    if array.ndim == 3:
        array = array[..., 0]
    scale = 65535.0 if array.dtype == np.uint16 else 255.0 if array.dtype == np.uint8 else 1.0
    return array.astype(np.float32) / scale


def to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None, compress_level: int = 1) -> None:
    """Write float RGB (+ optional alpha) as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_uint8(rgb)
    if alpha is not None:
        data = np.concatenate([data, to_uint8(alpha)[..., None]], axis=-1)
    Image.fromarray(data).save(path, compress_level=compress_level)


def write_mask_png(path: Path, alpha: np.ndarray, compress_level: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(alpha)).save(path, compress_level=compress_level)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize float RGB (or HxW) with area-aware filtering (PIL box for shrinking, bilinear for growing)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    channels = [rgb] if rgb.ndim == 2 else [rgb[..., c] for c in range(rgb.shape[-1])]
    shrinking = width < rgb.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    out = [np.asarray(Image.fromarray(ch.astype(np.float32), mode="F").resize((width, height), method))
           for ch in channels]
    return out[0] if rgb.ndim == 2 else np.stack(out, axis=-1)
