"""Canonical JSON, hashing and atomic writes: what makes ids stable and files never half-written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def naming(err: OSError, path: Path) -> OSError:
    """``err`` with ``path`` as its file name when it has none (a failed write on an open file names nothing), so
    the CLI can say which file a full disk stopped."""
    if err.filename:
        return err
    code = err.errno
    if code is None:  # polars and pyarrow say "... (os error 28)" without setting errno
        match = re.search(r"os error (\d+)", str(err))
        code = int(match.group(1)) if match else None
    if code is None:
        return err
    return OSError(code, os.strerror(code), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one; on any error the
    temporary file is removed and the old file is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        named = naming(err, path)
        if named is err:
            raise
        raise named from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


HARNESS_MADE = ".harness-made"


class RefusedFolderError(RuntimeError):
    """A folder the harness would replace holds things it did not make; nothing was touched."""


def mark_harness_made(root: Path, what: str) -> None:
    """Mark ``root`` as made by the harness, so a later generation may replace it."""
    atomic_write_json(Path(root) / HARNESS_MADE, {"made_by": "head-avatar-harness", "what": what})


def check_replaceable(root: Path) -> None:
    """Raise ``RefusedFolderError`` unless ``root`` is absent, an empty folder or one the harness made."""
    if not root.exists() and not root.is_symlink():
        return
    if root.is_symlink() or not root.is_dir():
        raise RefusedFolderError(f"{root} is not a folder; refusing to replace it")
    if (root / HARNESS_MADE).is_file():
        return
    entries = sorted(p.name for p in root.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RefusedFolderError(
            f"{root} holds files the harness did not make ({shown}); refusing to write into it. Point at an empty "
            "folder or a harness-made one, or leave the location unset to use the default")


@contextmanager
def atomic_folder(root: Path, what: str = "") -> Iterator[Path]:
    """Yield a staging folder next to ``root``; on success it replaces ``root`` whole, on any error it is removed
    and ``root`` is left as it was.

    Only an absent, empty or harness-made ``root`` (one holding the ``.harness-made`` marker this writes) is ever
    replaced: anything else raises ``RefusedFolderError`` before a byte is written.
    """
    root = Path(root)
    check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        yield tmp
        mark_harness_made(tmp, what)
        check_replaceable(root)  # the folder may have been filled while this was being written
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
