"""Names that become path components, and writes that must stay under their root.

Every name taken from a file the user or a plugin controls (protocol subjects, sequences and cameras, dataset
listings, run.json fields, plugin spec names) is checked once where it enters with ``check_name``; every write
into a run folder, a report site or a staging folder is checked with ``inside``, so a hostile or mistaken name can
neither write outside its root nor make the harness delete something outside it.
"""

from __future__ import annotations

from pathlib import Path

_FORBIDDEN = ("/", "\\", "\0")


class UnsafePathError(ValueError):
    """A name would leave its folder, or a path resolves outside the root it must stay under."""


def check_name(value: object, what: str) -> str:
    """``value`` if it is usable as one path component, else ``UnsafePathError`` saying what and why."""
    if not isinstance(value, str) or not value:
        raise UnsafePathError(f"{what} {value!r} is not a non-empty string")
    why = None
    if value in (".", ".."):
        why = "is a relative folder reference"
    elif any(c in value for c in _FORBIDDEN):
        why = "contains a path separator or NUL"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        why = "contains a control character"
    elif value != value.strip():
        why = "starts or ends with whitespace"
    elif value.startswith("~"):
        why = "starts with '~'"
    elif len(value) > 200:
        why = "is longer than 200 characters"
    if why:
        raise UnsafePathError(f"{what} {value!r} cannot be used as a file or folder name: it {why}")
    return value


def inside(root: Path, path: Path, what: str = "path") -> Path:
    """``path`` if it resolves (links followed) to ``root`` or below, else ``UnsafePathError``."""
    resolved_root = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise UnsafePathError(f"{what} {path} resolves to {resolved}, outside {resolved_root}")
    return Path(path)
