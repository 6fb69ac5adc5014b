"""``harness export``: a run's predictions in a benchmark's submission layout.

Format ``nersemble-benchmark`` (the NeRSemble benchmark server's, as its toolkit's ``SubmissionDataWriter`` writes
it): one MP4 per participant, sequence and camera, holding every frame of the sequence in order, at
``{pid:03d}/{SEQ}/cam_{serial}.mp4``, packed into one zip that is uploaded::

    OUT/{pid:03d}/{SEQ}/cam_{serial}.mp4      the videos (H.264, crf 14, yuv420p; 73 fps NVS, 24.3 fps mono-avatar)
    OUT/nvs_submission.zip                    the same videos under the same names (or mono_flame_avatar_...)
    OUT/export.json                           what was written, what is missing and why

The server expects, for the NVS task, the 5 benchmark sequences from the 3 hold-out cameras; for the mono-avatar
task, the 4 hold-out sequences of the 5 participants from the training camera and the 3 hold-out cameras. Frames
are those of the delivered videos' size, RGB: an RGBA prediction is composited over the protocol background (white,
as the benchmark's images). A video is written only when every frame of the sequence has a prediction; each
expected video that is not written is listed with the reason (the units it lacks).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from harness.api.types import ViewRef
from harness.data.errors import DatasetError
from harness.data.protocol import run_protocol
from harness.imageio import ImageReadError, read_image, to_uint8
from harness.jsonio import atomic_write_json
from harness.safepath import UnsafePathError
from harness.scoring.codec import MONO_AVATAR_FPS, NVS_FPS, CodecError, CodecRoundTrip, encode_mp4
from harness.store import RunStore

FORMATS = ("nersemble-benchmark",)
BENCHMARK_DATASET = "nersemble"
NVS_SEQUENCES = (("388", "GLASSES"), ("422", "EXP-2-eyes"), ("443", "FREE"), ("445", "EXP-6-tongue-1"),
                 ("475", "HAIR"))
NVS_HOLD_OUT_SERIALS = ("222200046", "222200037", "222200039")
MONO_PARTICIPANTS = ("393", "404", "461", "477", "486")
MONO_TEST_SEQUENCES = ("FREE", "EMO-1-shout+laugh", "SEN-09-frown_events_bad", "SEN-10-port_strong_smokey")
MONO_SERIALS = ("222200037", "222200046", "220700191", "222200039")  # the training camera, then the hold-out ones


class ExportError(RuntimeError):
    """A run that cannot be exported in the format asked for, or an output folder that would be overwritten."""


@dataclass(frozen=True)
class BenchmarkTask:
    name: str
    zip_name: str
    fps: Fraction
    videos: tuple[tuple[str, str, str], ...]  # (participant, sequence, serial), the server's expected files

    @staticmethod
    def arcname(participant: str, sequence: str, serial: str) -> str:
        return f"{participant}/{sequence}/cam_{serial}.mp4"


TASKS = (
    BenchmarkTask("nvs", "nvs_submission.zip", NVS_FPS,
                  tuple((p, s, c) for p, s in NVS_SEQUENCES for c in NVS_HOLD_OUT_SERIALS)),
    BenchmarkTask("mono_flame_avatar", "mono_flame_avatar_submission.zip", MONO_AVATAR_FPS,
                  tuple((p, s, c) for p in MONO_PARTICIPANTS for s in MONO_TEST_SEQUENCES for c in MONO_SERIALS)),
)


@dataclass
class ExportResult:
    out: Path
    task: str
    zip_path: Path | None
    written: list[str] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)  # {video, why}


def _task_of(run: dict[str, Any], refs: list[tuple[str, ViewRef]]) -> BenchmarkTask:
    label = f"{run.get('dataset')} / {run.get('protocol')}"
    if run.get("dataset") != BENCHMARK_DATASET:
        raise ExportError(f"the run is on dataset/protocol {label}; the NeRSemble benchmark takes predictions for "
                          f"its own release (dataset {BENCHMARK_DATASET}) of the hold-out cameras")
    targets = {(r.subject, r.sequence, r.camera) for _, r in refs}
    for task in TASKS:
        if targets & set(task.videos):
            return task
    cameras = sorted({r.camera for _, r in refs})
    raise ExportError(f"protocol {run.get('protocol')} of the run ({label}) is not a NeRSemble benchmark split: it "
                      f"targets cameras {', '.join(cameras)}, the server scores the NVS sequences from "
                      f"{', '.join(NVS_HOLD_OUT_SERIALS)} and the mono-avatar test sequences from "
                      f"{', '.join(MONO_SERIALS)} (every frame)")


def _frame(store: RunStore, unit: str, ref: ViewRef, background: np.ndarray) -> np.ndarray:
    try:
        path = store.find_prediction(unit, ref)
        rgb, alpha = read_image(path)
    except (UnsafePathError, ImageReadError, OSError) as err:
        raise ExportError(f"unit {unit}: prediction of camera {ref.camera} frame {ref.frame}: {err}") from None
    if alpha is not None:
        rgb = rgb * alpha[..., None] + background * (1.0 - alpha[..., None])
    return to_uint8(rgb[..., :3])


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; export writes into a new or empty folder only")


def export_run(run_dir: Path, out: Path, registry: Any, fmt: str = "nersemble-benchmark") -> ExportResult:
    """Write the run's predictions in the submission layout of ``fmt`` into ``out`` (new or empty)."""
    from harness.data.resolve import open_reader

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    store = RunStore(run_dir)
    if not store.run_json.is_file():
        raise ExportError(f"{store.run_json} does not exist: export takes a run folder (made by `harness run`, or "
                          "by `harness score DIR --dataset nersemble --protocol P` for predictions made elsewhere)")
    run = store.read_run()
    protocol, units = run_protocol(run, str(store.run_json))
    refs = [(u.name, r) for u in units for r in u.targets]
    task = _task_of(run, refs)
    out = Path(out)
    _check_out(out)
    reader = open_reader(registry.dataset(BENCHMARK_DATASET), run.get("data_root") or None)
    by_video: dict[tuple[str, str, str], dict[int, str]] = {}
    for unit, ref in refs:
        by_video.setdefault((ref.subject, ref.sequence, ref.camera), {})[ref.frame] = unit
    background = np.asarray(protocol.background, dtype=np.float32)
    setting = CodecRoundTrip(fps=float(task.fps))
    result = ExportResult(out=out, task=task.name, zip_path=None)
    out.mkdir(parents=True, exist_ok=True)
    for participant, sequence, serial in task.videos:
        name = task.arcname(participant, sequence, serial)
        why = _write_video(store, reader, by_video.get((participant, sequence, serial)), (participant, sequence,
                           serial), out / name, background, setting, task.fps)
        if why is None:
            result.written.append(name)
        else:
            result.missing.append({"video": name, "why": why if by_video.get((participant, sequence, serial))
                                   else f"no unit of protocol {protocol.label} predicts it"})
    if result.written:
        result.zip_path = out / task.zip_name
        with zipfile.ZipFile(result.zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in result.written:
                archive.write(out / name, name)
    atomic_write_json(out / "export.json", {
        "run": run.get("run_id"), "run_dir": str(run_dir), "format": fmt, "task": task.name,
        "codec": setting.as_dict(), "zip": task.zip_name if result.written else None,
        "written": result.written, "missing": result.missing, "expected": len(task.videos)})
    return result


def _write_video(store: RunStore, reader: Any, have: dict[int, str] | None, video: tuple[str, str, str], path: Path,
                 background: np.ndarray, setting: CodecRoundTrip, fps: Fraction) -> str | None:
    """Encode one expected video from the run's predictions into ``path``; None, or why it was not written."""
    if not have:
        return "no unit predicts it"
    participant, sequence, serial = video
    try:
        expected = reader.frames(participant, sequence)
        camera = reader.camera(participant, sequence, expected[0], serial)
    except DatasetError as err:
        return f"the dataset cannot say which frames and size it needs: {err}"

    def predicted(frame: int) -> bool:
        try:
            return frame in have and store.find_prediction(have[frame], ViewRef(*video[:2], frame, serial)).is_file()
        except UnsafePathError:
            return False

    absent = [f for f in expected if not predicted(f)]
    if absent:
        lacking = sorted({have[f] for f in absent if f in have})
        return (f"{len(absent)} of its {len(expected)} frames have no prediction (first: frame {absent[0]})"
                + (f"; units without it: {', '.join(lacking[:5])}" if lacking else "")
                + ("" if len(lacking) <= 5 else f" and {len(lacking) - 5} more"))

    def frames() -> Iterator[np.ndarray]:
        for f in expected:
            frame = _frame(store, have[f], ViewRef(participant, sequence, f, serial), background)
            if frame.shape[:2] != (camera.height, camera.width):
                raise ExportError(f"unit {have[f]}: the prediction of frame {f} is {frame.shape[1]}x"
                                  f"{frame.shape[0]}; the server takes the delivered {camera.width}x{camera.height}")
            yield frame

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        encode_mp4(frames(), fps, setting, partial)
    except (ExportError, CodecError) as err:
        partial.unlink(missing_ok=True)
        return str(err)
    partial.replace(path)
    return None
