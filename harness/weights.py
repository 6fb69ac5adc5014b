"""The one weights cache (``$HARNESS_HOME/weights``): what is present, missing or corrupt, and fetching it.

Each weight source (a ``WeightsSpec`` registered by a plugin) lists its files with their path in the cache and,
where the publisher gives one, their checksum. A file with no published checksum has its sha256 recorded in
``checksums.json`` at the first fetch that succeeded and is checked against that record afterwards, so a later
corruption is still caught. Fetching never leaves a half-written or unverified file in the cache.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.api.method import MissingWeightsError
from harness.api.specs import WeightFile, WeightsSpec
from harness.jsonio import atomic_write_json, read_json
from harness.paths import harness_home

CHECKSUMS_FILE = "checksums.json"
CHUNK = 1 << 20

FileState = Literal["verified", "recorded", "unverified", "missing", "corrupt"]


def weights_dir() -> Path:
    return harness_home() / "weights"


class WeightsFetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class FileStatus:
    source: str
    relpath: str
    path: Path
    state: FileState
    size: int | None
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("verified", "recorded", "unverified")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded(root: Path) -> dict[str, str]:
    path = root / CHECKSUMS_FILE
    return dict(read_json(path)) if path.exists() else {}


def _check(expected: WeightFile, actual_sha: str, recorded: dict[str, str]) -> tuple[FileState, str]:
    if expected.sha256:
        if actual_sha == expected.sha256.lower():
            return "verified", ""
        return "corrupt", f"sha256 {actual_sha[:16]}..., expected {expected.sha256[:16]}..."
    if expected.sha256_prefix:
        if actual_sha.startswith(expected.sha256_prefix.lower()):
            return "verified", ""
        return "corrupt", f"sha256 {actual_sha[:16]}... does not start with the published {expected.sha256_prefix}"
    if expected.relpath in recorded:
        ok = recorded[expected.relpath] == actual_sha
        return ("recorded", "") if ok else ("corrupt", "sha256 differs from the one recorded when it was fetched")
    return "unverified", "no published checksum and not fetched by the harness"


def status(specs: Iterable[WeightsSpec], root: Path | None = None) -> list[FileStatus]:
    root = root or weights_dir()
    recorded = _recorded(root)
    rows: list[FileStatus] = []
    for spec in specs:
        for expected in spec.files:
            path = root / expected.relpath
            if not path.is_file():
                rows.append(FileStatus(spec.name, expected.relpath, path, "missing", None))
                continue
            state, detail = _check(expected, file_sha256(path), recorded)
            rows.append(FileStatus(spec.name, expected.relpath, path, state, path.stat().st_size, detail))
    return rows


def missing_files(spec: WeightsSpec, root: Path | None = None) -> list[FileStatus]:
    """Files of ``spec`` that are absent (cheap: no hashing); used before loading a metric or method."""
    root = root or weights_dir()
    return [FileStatus(spec.name, f.relpath, root / f.relpath, "missing", None)
            for f in spec.files if not (root / f.relpath).is_file()]


def require(spec: WeightsSpec, what: str) -> Path:
    """The weights root, or ``MissingWeightsError`` naming the first missing file and how to get it."""
    missing = missing_files(spec)
    if missing:
        raise MissingWeightsError(what, missing[0].path, how_to_get(spec))
    return weights_dir()


def how_to_get(spec: WeightsSpec) -> str:
    return (f"Run `harness weights fetch {spec.name}` on a machine with internet (source: {spec.url}), or copy "
            f"the files into {weights_dir()} at the paths `harness weights status` lists.")


def _download(url: str, dest: Path, timeout: float) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            expected_length = response.headers.get("Content-Length")
            written = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
    except OSError as err:
        raise WeightsFetchError(f"download of {url} failed: {err}") from err
    if expected_length is not None and written != int(expected_length):
        raise WeightsFetchError(f"download of {url} was cut short: {written} of {expected_length} bytes")
    return digest.hexdigest()


def _zip_members(archive: Path, spec: WeightsSpec) -> dict[str, str]:
    """Map each name in the zip (after ``strip``) to its member, refusing paths that escape the folder."""
    with zipfile.ZipFile(archive) as zf:
        names: dict[str, str] = {}
        for member in zf.namelist():
            parts = Path(member).parts[spec.strip:]
            if not parts or member.endswith("/"):
                continue
            if any(p in ("..", "") for p in parts) or Path(member).is_absolute():
                raise WeightsFetchError(f"{spec.url}: unsafe path {member!r} in the archive")
            names["/".join(parts)] = member
    return names


def _stage_zip(archive: Path, spec: WeightsSpec, staging: Path) -> None:
    members = _zip_members(archive, spec)
    prefix = spec.extract_to.rstrip("/") + "/" if spec.extract_to else ""
    wanted = [f.relpath.removeprefix(prefix) for f in spec.files]
    # The archive may nest the files one folder deeper; find the folder holding the first expected file.
    first = wanted[0]
    matches = [n for n in members if n == first or n.endswith("/" + first)]
    if not matches:
        raise WeightsFetchError(f"{spec.url}: the archive has no {first!r} (it holds {sorted(members)[:8]}...)")
    base = matches[0][: len(matches[0]) - len(first)]
    with zipfile.ZipFile(archive) as zf:
        for name, member in members.items():
            if not name.startswith(base):
                continue
            target = staging / prefix / name[len(base):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def fetch(spec: WeightsSpec, root: Path | None = None, url: str | None = None, timeout: float = 60.0) -> list[
        FileStatus]:
    """Download ``spec`` (from ``url`` when given, e.g. a mirror), verify it, and move it into the cache.

    Everything is staged in a temporary folder inside the cache and verified first: a download that is cut short, a
    checksum that does not match or an archive without the expected files raises ``WeightsFetchError`` and leaves
    the cache exactly as it was.
    """
    root = root or weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    source = url or spec.url
    recorded = _recorded(root)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        staging = Path(tmp) / "staging"
        staging.mkdir()
        download = Path(tmp) / "download"
        archive_sha = _download(source, download, timeout)
        if spec.archive_sha256 and archive_sha != spec.archive_sha256.lower():
            raise WeightsFetchError(f"{source}: sha256 {archive_sha} does not match the published "
                                    f"{spec.archive_sha256}; nothing was written")
        if spec.archive == "zip":
            try:
                _stage_zip(download, spec, staging)
            except zipfile.BadZipFile as err:
                raise WeightsFetchError(f"{source}: not a valid zip archive ({err}); nothing was written") from err
        else:
            target = staging / spec.files[0].relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(download, target)
        new_records: dict[str, str] = {}
        rows: list[FileStatus] = []
        for expected in spec.files:
            staged = staging / expected.relpath
            if not staged.is_file():
                raise WeightsFetchError(f"{source}: {expected.relpath} is not in the download; nothing was written")
            sha = file_sha256(staged)
            state, detail = _check(expected, sha, {})
            if state == "corrupt":
                raise WeightsFetchError(f"{source}: {expected.relpath}: {detail}; nothing was written")
            if state == "unverified":
                new_records[expected.relpath] = sha
                state = "recorded"
            rows.append(FileStatus(spec.name, expected.relpath, root / expected.relpath, state,
                                   staged.stat().st_size))
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            final = root / path.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            path.replace(final)
        if new_records:
            atomic_write_json(root / CHECKSUMS_FILE, {**recorded, **new_records})
    return rows


def select(specs: dict[str, WeightsSpec], names: Sequence[str]) -> list[WeightsSpec]:
    if not names:
        return [specs[n] for n in sorted(specs)]
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise KeyError(f"unknown weight source(s) {', '.join(unknown)}; known: {', '.join(sorted(specs))}")
    return [specs[n] for n in names]
