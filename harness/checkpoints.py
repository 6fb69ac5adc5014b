"""Method checkpoints as weights: one file holding a network's state, its architecture and where it came from.

A checkpoint is a ``torch.save`` of plain data (tensors, numbers, strings, lists, dicts), so it is read with
``torch.load(weights_only=True)``: loading one never runs code. It records

- ``method`` and ``architecture`` (every size the network is built from),
- ``head_model`` and ``uv_layout`` (the hash of the head model's UV layout), checked against what the method uses,
- ``provenance``: the training command, seed, training-data manifest hash, steps, harness version and commit, and
  ``synthetic_demo`` (a stand-in trained on synthetic heads, labelled as such wherever its numbers appear),
- ``state`` (the network's ``state_dict``; a method may keep several networks under their own keys).

Its sha256 is the file's own, computed when it is loaded and recorded in every unit's ``info.json``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CheckpointError
from harness.jsonio import atomic_write_bytes

FORMAT = "harness-method-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    method: str
    architecture: dict[str, Any]
    state: dict[str, Any]
    head_model: str = ""
    uv_layout: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""

    @property
    def synthetic_demo(self) -> bool:
        return bool(self.provenance.get("synthetic_demo", False))

    def describe(self) -> str:
        """One line for reports: which checkpoint, and whether it is a synthetic-demo stand-in."""
        kind = "synthetic-demo stand-in" if self.synthetic_demo else "full checkpoint"
        name = self.path.name if self.path else "(unsaved)"
        return f"{self.method} {kind} {name} sha256 {self.sha256[:12]}"


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> str:
    """Write ``checkpoint`` atomically; returns the file's sha256."""
    import torch

    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "method": checkpoint.method,
               "architecture": checkpoint.architecture, "head_model": checkpoint.head_model,
               "uv_layout": checkpoint.uv_layout, "provenance": checkpoint.provenance,
               "state": {k: v.detach().cpu().contiguous() if hasattr(v, "detach") else v
                         for k, v in checkpoint.state.items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(Path(path), data)
    checkpoint.path, checkpoint.sha256 = Path(path), hashlib.sha256(data).hexdigest()
    return checkpoint.sha256


def load_checkpoint(path: Path, method: str | None, head_model: str | None = None, uv_layout: str | None = None,
                    how_to_get: str = "") -> Checkpoint:
    """Read a checkpoint for ``method`` (None: any method); refuse one that is corrupt, for another method, another
    head model or another UV layout, with one message naming the file."""
    import torch

    path = Path(path)
    hint = f" {how_to_get}" if how_to_get else ""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.{hint}") from None
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged pickle fails with any error type (IndexError, KeyError, ...)
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__}: "
                              f"{(str(err).splitlines() or [''])[0][:200]}).{hint}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a harness method checkpoint (no '{FORMAT}' header).{hint}")
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {raw.get('format_version')}, newer than this harness "
                              f"reads ({FORMAT_VERSION}); update the harness")
    if method is not None and raw.get("method") != method:
        raise CheckpointError(f"{path} is a checkpoint of method {raw.get('method')!r}, not {method!r}")
    if head_model is not None and raw.get("head_model") != head_model:
        raise CheckpointError(f"{path} was trained for head model {raw.get('head_model')!r}; this run uses "
                              f"{head_model!r}. Train one for it (`harness train {method} ...`) or pick the matching "
                              "head model")
    if uv_layout is not None and raw.get("uv_layout") != uv_layout:
        raise CheckpointError(f"{path} was trained for UV layout {raw.get('uv_layout')!r} of head model "
                              f"{raw.get('head_model')!r}; this head model's UV layout is {uv_layout!r}")
    return Checkpoint(method=raw["method"], architecture=dict(raw.get("architecture", {})),
                      state=dict(raw.get("state", {})), head_model=raw.get("head_model", ""),
                      uv_layout=raw.get("uv_layout", ""), provenance=dict(raw.get("provenance", {})), path=path,
                      sha256=hashlib.sha256(data).hexdigest())


CHECKPOINTS_DIR = "checkpoints"  # under the weights cache: user-supplied and trained full-size checkpoints


def checkpoint_summary(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    """What a unit's ``info.json`` records of the checkpoint that produced it."""
    if checkpoint is None:
        return None
    return {"file": str(checkpoint.path) if checkpoint.path else None, "sha256": checkpoint.sha256,
            "synthetic_demo": checkpoint.synthetic_demo, "head_model": checkpoint.head_model,
            "uv_layout": checkpoint.uv_layout, "training_command": checkpoint.provenance.get("command"),
            "training_seed": checkpoint.provenance.get("seed"),
            "data_manifest_sha256": checkpoint.provenance.get("data_manifest_sha256")}


def find_checkpoints(root: Path) -> list[tuple[Path, Checkpoint | None, str]]:
    """Every ``.pt`` under ``root/checkpoints`` with its header (or None and why it cannot be read)."""
    rows: list[tuple[Path, Checkpoint | None, str]] = []
    for path in sorted((Path(root) / CHECKPOINTS_DIR).rglob("*.pt")):
        try:
            rows.append((path, load_checkpoint(path, None), ""))
        except CheckpointError as err:  # listed as unusable, with the reason
            rows.append((path, None, str(err).splitlines()[0][:200]))
    return rows


def select_checkpoint(method: str, choice: str, demo_file: Path, context: Any, head_model: str, uv_layout: str,
                      how_to_train: str) -> Checkpoint:
    """The checkpoint a learned method runs with, by its ``checkpoint`` config value.

    ``"demo"``: the shipped synthetic-demo stand-in (``demo_file``), on any data: every report marks the run.
    A path: that file. ``"auto"``: the stand-in on the procedural demo datasets (``context.synthetic_subjects``);
    elsewhere the newest full checkpoint of ``method`` under ``$HARNESS_HOME/weights/checkpoints/<method>/``, and
    with none there a ``MissingWeightsError`` saying what to train or pass: a demo-scale model never runs on real
    people's photos unless asked to. ``context`` is the runner's ``RunContext`` (None outside the runner: treated as
    real data).
    """
    from harness.api.method import MissingWeightsError
    from harness.weights import weights_dir

    def load(path: Path) -> Checkpoint:
        return load_checkpoint(path, method, head_model, uv_layout)

    choice = str(choice or "auto")
    if choice == "demo":
        return load(Path(demo_file))
    if choice != "auto":
        return load(Path(choice).expanduser())
    if context is not None and bool(getattr(context, "synthetic_subjects", False)):
        return load(Path(demo_file))
    folder = weights_dir() / CHECKPOINTS_DIR / method
    full = [(path.stat().st_mtime, path) for path, checkpoint, _ in find_checkpoints(weights_dir())
            if checkpoint is not None and checkpoint.method == method and not checkpoint.synthetic_demo
            and checkpoint.head_model == head_model and checkpoint.uv_layout == uv_layout]
    if full:
        return load(max(full)[1])
    dataset = getattr(context, "dataset", None) or "this data"
    raise MissingWeightsError(
        f"{method}: no full-size checkpoint for head model {head_model!r} (dataset {dataset} is not synthetic, and "
        "the shipped model is a synthetic-demo stand-in trained on procedural heads)", folder,
        f"Train one ({how_to_train}) and put the .pt there, or pass --config checkpoint=PATH; "
        "--config checkpoint=demo runs the synthetic-demo stand-in anyway (every report marks it)")
