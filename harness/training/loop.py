"""The training loop: a training run is a folder, like an evaluation run, and resumes after a kill.

    TRAIN_DIR/
      train.json                 identity (trainer, config, seed, steps, data manifest hash), command, provenance
      state/step_{n:07d}.pt      resumable state (trainer state + step), written atomically every ``checkpoint_every``
      losses.jsonl               one line per step: step, seconds, the named losses
      loss.svg                   the loss curve, redrawn at every checkpoint
      model.pt                   the exported method checkpoint (``harness.checkpoints``), written at the end

The folder's name is a hash of what determines the result (trainer, config, seed, steps, data manifest hash), so
the same command resumes the same run. A resumed run truncates ``losses.jsonl`` to its checkpoint and continues;
with the step-seeded randomness of ``harness.training.trainer`` it ends with the checkpoint an uninterrupted run
ends with.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.api.specs import TrainerSpec, load_target
from harness.checkpoints import save_checkpoint
from harness.errors import TrainingError
from harness.jsonio import atomic_write_bytes, atomic_write_json, read_json, stable_hash
from harness.safepath import check_name
from harness.training.trainer import Trainer, TrainingContext, step_seed

TrainProgress = Callable[[int, int, Mapping[str, float]], None]
KEEP_STATES = 2


@dataclass
class TrainRequest:
    trainer: str
    data: Path | str  # a corpus folder, or DATASET:SPLIT
    runs_dir: Path = Path("runs")
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    steps: int | None = None
    device: str = "cpu"
    checkpoint_every: int = 50
    command: str = ""
    synthetic_demo: bool = True
    data_root: Path | None = None  # the dataset folder for DATASET:SPLIT


@dataclass
class TrainResult:
    root: Path
    model: Path
    sha256: str
    steps: int
    resumed_from: int
    final_losses: dict[str, float]
    seconds: float
    loop_overhead_s: float  # time per step outside ``train_step`` (checkpointing, logging), averaged


@dataclass
class TrainingData:
    """What a run trains on: a corpus folder, or a dataset's training split resolved against its folder."""

    path: Path
    hash: str
    split: Any = None  # harness.data.splits.ResolvedSplit for DATASET:SPLIT


def resolve_training_data(data: str | Path, data_root: Path | None = None) -> TrainingData:
    """``data`` is a corpus folder (``harness synth``) or ``DATASET:SPLIT`` (e.g. ``nersemble-v2:train``)."""
    text = str(data)
    if Path(text).is_dir() or ":" not in text:
        return TrainingData(Path(text), data_manifest_hash(Path(text)))
    from harness.data.resolve import dataset_root, open_reader
    from harness.data.splits import load_split, resolve_split
    from harness.paths import protocols_dir
    from harness.plugins.registry import get_registry

    dataset, _, split_name = text.partition(":")
    registry = get_registry()
    spec = registry.dataset(dataset)
    if split_name not in spec.splits:
        raise TrainingError(f"dataset {dataset} has no training split {split_name!r}; it has: "
                            f"{', '.join(spec.splits) or 'none'}")
    split = load_split(protocols_dir() / spec.splits[split_name])
    reader = open_reader(spec, data_root)
    resolved = resolve_split(split, sorted(reader.subjects()), registry)
    root = dataset_root(spec, data_root) or Path(reader.root)
    return TrainingData(Path(root), resolved.hash, resolved)


def data_manifest_hash(data: Path) -> str:
    """sha256 of the training data's manifest (a corpus's ``manifest.json``), which names every shard's hash."""
    import hashlib

    manifest = Path(data) / "manifest.json"
    if not manifest.is_file():
        raise TrainingError(f"{data} has no manifest.json: not a corpus made by `harness synth`")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def _state_files(root: Path) -> list[Path]:
    return sorted((root / "state").glob("step_*.pt"))


def _load_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainingError(f"training state {path} is corrupt ({type(err).__name__}: {err}); delete it to resume "
                            "from the one before") from None


def _save_state(root: Path, step: int, trainer: Trainer) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save({"step": step, "trainer": trainer.state_dict()}, buffer)
    atomic_write_bytes(root / "state" / f"step_{step:07d}.pt", buffer.getvalue())
    for old in _state_files(root)[:-KEEP_STATES]:
        old.unlink(missing_ok=True)


def _read_losses(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # a line cut by a kill
        if row["step"] >= upto:
            break
        rows.append(row)
    return rows


def plot_losses(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for r in rows for k in r if k not in ("step", "seconds")})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in names:
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, lw=1.2 if name == "loss" else 0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if rows and all(r.get("loss", 1) > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue().encode())


def train_identity(spec: TrainerSpec, request: TrainRequest, config: dict[str, Any], steps: int,
                   data: TrainingData) -> dict[str, Any]:
    return {"trainer": spec.name, "config": config, "seed": request.seed, "steps": steps, "data": data.hash}


def train(request: TrainRequest, spec: TrainerSpec, progress: TrainProgress | None = None) -> TrainResult:
    """Train (or resume training) and export the method checkpoint."""
    import torch

    from harness.provenance import collect

    config = {**spec.default_config, **request.config}
    steps = int(request.steps if request.steps is not None else config.get("steps", 100))
    if steps < 1:
        raise TrainingError("the number of training steps must be at least 1")
    data = resolve_training_data(request.data, request.data_root)
    identity = train_identity(spec, request, config, steps, data)
    root = Path(request.runs_dir) / "train" / check_name(f"{spec.name}-{stable_hash(identity, 10)}", "training run")
    root.mkdir(parents=True, exist_ok=True)
    record_path = root / "train.json"
    record = read_json(record_path) if record_path.exists() else {}
    if record and record.get("identity") != identity:
        raise TrainingError(f"{record_path} belongs to another training run")
    record.update({"identity": identity, "command": request.command or " ".join(sys.argv),
                   "data": str(data.path.resolve()), "device": request.device,
                   "split": data.split.identity if data.split is not None else None,
                   "provenance": collect(request.device, {})})
    atomic_write_json(record_path, record)

    trainer: Trainer = load_target(spec.target)()
    if str(request.device).startswith("cpu"):
        # A fixed thread count (1 unless HARNESS_THREADS says otherwise), not one that follows the load: a resumed
        # run must take bitwise the same steps, and on a busy 2-core machine 2 threads ran ~6x slower than 1.
        torch.set_num_threads(max(1, int(os.environ.get("HARNESS_THREADS") or 1)))
    torch.manual_seed(step_seed(request.seed, -1, "setup"))  # network initialisation is seeded too
    extra = {"split": data.split} if data.split is not None else {}
    trainer.setup(TrainingContext(config=config, data=data.path, device=request.device, seed=request.seed,
                                  steps=steps, extra=extra))
    start = 0
    states = _state_files(root)
    if states:
        state = _load_state(states[-1])
        trainer.load_state_dict(state["trainer"])
        start = int(state["step"])
    losses_path = root / "losses.jsonl"
    rows = _read_losses(losses_path, start)
    atomic_write_bytes(losses_path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    t_all = time.perf_counter()
    inside_s = 0.0
    latest: dict[str, float] = {}
    with open(losses_path, "a", encoding="utf-8") as log:
        for step in range(start, steps):
            torch.manual_seed(step_seed(request.seed, step, "torch"))
            t0 = time.perf_counter()
            latest = {k: float(v) for k, v in trainer.train_step(step).items()}
            spent = time.perf_counter() - t0
            inside_s += spent
            row = {"step": step, "seconds": round(spent, 4), **latest}
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            done = step + 1
            if done % request.checkpoint_every == 0 or done == steps:
                os.fsync(log.fileno())
                _save_state(root, done, trainer)
                plot_losses(rows, root / "loss.svg", f"{spec.name}: training loss")
            if progress:
                progress(done, steps, latest)
    seconds = time.perf_counter() - t_all
    checkpoint = trainer.export()
    checkpoint.provenance = {
        **checkpoint.provenance, "command": record["command"], "seed": request.seed, "steps": steps,
        "data_manifest_sha256": identity["data"], "trainer": spec.name, "config": config,
        "harness_version": record["provenance"].get("harness_version"),
        "harness_commit": record["provenance"].get("harness_commit"), "synthetic_demo": request.synthetic_demo,
        "training_run": root.name,
    }
    sha = save_checkpoint(checkpoint, root / "model.pt")
    record.update({"finished": True, "model": "model.pt", "model_sha256": sha})
    atomic_write_json(record_path, record)
    ran = steps - start
    overhead = (seconds - inside_s) / ran if ran else 0.0
    return TrainResult(root, root / "model.pt", sha, steps, start, latest, seconds, overhead)
