"""The one weights cache (``$HARNESS_HOME/weights``): what is present, missing or corrupt, and fetching it.

Each weight source (a ``WeightsSpec`` registered by a plugin) lists its files with their path in the cache and,
where the publisher gives one, their checksum. A file with no published checksum has its sha256 recorded in
``checksums.json`` at the first fetch that succeeded and is checked against that record afterwards, so a later
corruption is still caught. Fetching never leaves a half-written or unverified file in the cache.
"""

from __future__ import annotations

import contextlib
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
VERIFIED_FILE = ".verified.json"  # (size, mtime) -> sha256 of files already hashed, so loading stays cheap
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


class CorruptWeightsError(MissingWeightsError):
    """A weight file is present but fails its checksum (or is code the harness did not fetch); it is not used."""

    def __init__(self, what: str, path: Path, detail: str, how_to_get: str) -> None:
        RuntimeError.__init__(self, f"{what}: weight file {path} is not usable: {detail}. {how_to_get}")
        self.path, self.how_to_get = Path(path), how_to_get


def _cached_sha256(path: Path, relpath: str, cache: dict[str, list], changed: list[bool]) -> str:
    stat = path.stat()
    entry = cache.get(relpath)
    if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
        return str(entry[2])
    sha = file_sha256(path)
    cache[relpath] = [stat.st_size, stat.st_mtime_ns, sha]
    changed[0] = True
    return sha


def _code_files(spec: WeightsSpec, root: Path) -> list[str]:
    """For a source whose files run as code: every Python file under its folder (relative to ``root``)."""
    if not spec.code:
        return []
    folder = root / spec.extract_to if spec.extract_to else (root / spec.files[0].relpath).parent
    return sorted(p.relative_to(root).as_posix() for p in folder.rglob("*.py") if p.is_file())


def verify(spec: WeightsSpec, root: Path | None = None) -> list[tuple[Path, str]]:
    """(path, why) for each present file of ``spec`` that must not be used: a checksum that does not match the
    published or recorded one, or, for code, any Python file without a checksum recorded by ``fetch`` (code is only
    run when the harness fetched and verified it). Hashes are cached against each file's size and mtime."""
    root = root or weights_dir()
    recorded = _recorded(root)
    listed = {f.relpath: f for f in spec.files}
    shas = _sha256s(root, [*listed, *(c for c in _code_files(spec, root) if c not in listed)])
    problems: list[tuple[Path, str]] = []
    for relpath, sha in shas.items():
        state, detail = _check(listed.get(relpath, WeightFile(relpath)), sha, recorded)
        if state == "corrupt":
            problems.append((root / relpath, f"corrupt ({detail})"))
        elif state == "unverified" and spec.code:
            problems.append((root / relpath, "code that the harness did not fetch and cannot verify; it is never run"))
    return problems


def checksums(spec: WeightsSpec, root: Path | None = None) -> dict[str, str]:
    """sha256 of each present file of ``spec`` by its path under the cache (cached against size and mtime, so a
    second call after ``require`` hashes nothing)."""
    return _sha256s(root or weights_dir(), [f.relpath for f in spec.files])


def _sha256s(root: Path, relpaths: list[str]) -> dict[str, str]:
    """sha256 of each present file among ``relpaths``, through the size + mtime cache in ``VERIFIED_FILE``."""
    cache_path = root / VERIFIED_FILE
    try:
        cache = dict(read_json(cache_path)) if cache_path.exists() else {}
    except (OSError, ValueError):
        cache = {}
    changed = [False]
    out = {rel: _cached_sha256(root / rel, rel, cache, changed) for rel in relpaths if (root / rel).is_file()}
    if changed[0]:
        with contextlib.suppress(OSError):  # a read-only cache still verifies, only more slowly
            atomic_write_json(cache_path, cache)
    return out


def require(spec: WeightsSpec, what: str) -> Path:
    """The weights root, or an error naming the first missing or unusable file and how to get it.

    A file that fails its checksum raises ``CorruptWeightsError`` (a ``MissingWeightsError``: the metric or method
    is reported unavailable with the fix), so corrupt weights are never used.
    """
    root = weights_dir()
    missing = missing_files(spec, root)
    if missing:
        raise MissingWeightsError(what, missing[0].path, how_to_get(spec))
    problems = verify(spec, root)
    if problems:
        raise CorruptWeightsError(what, problems[0][0], problems[0][1], how_to_get(spec))
    return root


def record_checksums(root: Path, checksums: dict[str, str]) -> None:
    """Record sha256 values for files with no published checksum (what ``fetch`` does after it verified them)."""
    atomic_write_json(root / CHECKSUMS_FILE, {**_recorded(root), **checksums})


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
        if spec.code:  # every file of a code source is recorded, so no unrecorded module is ever imported
            for path in staging.rglob("*"):
                relpath = path.relative_to(staging).as_posix()
                if path.is_file() and relpath not in new_records:
                    new_records[relpath] = file_sha256(path)
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            final = root / path.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            path.replace(final)
        if new_records:
            record_checksums(root, new_records)
    return rows


def select(specs: dict[str, WeightsSpec], names: Sequence[str]) -> list[WeightsSpec]:
    if not names:
        return [specs[n] for n in sorted(specs)]
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise KeyError(f"unknown weight source(s) {', '.join(unknown)}; known: {', '.join(sorted(specs))}")
    return [specs[n] for n in names]
