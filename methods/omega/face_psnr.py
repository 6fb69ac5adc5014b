"""Face-region PSNR of a run's predictions (the harness has no such metric), and a paired comparison of two runs.

    python -m harness_methods.omega.face_psnr RUN_A [RUN_B] [--data-root DEMO_FOLDER] [--bootstrap N]

For each predicted target image of a run on a dataset that ships head tracking (the demo): the head model posed by
the target frame's tracking is z-buffer rasterised into the target camera; the face-region mask is the pixels whose
nearest triangle belongs to the face, lips or eye regions (``config.FACE_REGIONS``), intersected with the ground
truth's alpha > 0.5. Prediction and ground truth are composited onto white with the ground-truth alpha (as the
harness's masked metrics), and ``PSNR = 10 log10(1 / MSE)`` over the mask's pixels and the three channels
(data range 1). With two runs: the mean difference B - A over the targets both predicted, with a paired bootstrap
95% interval over units (targets resampled with their unit).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.types import ViewRef
from harness_methods.omega.config import FACE_REGIONS


def face_mask(adapter: Any, ref: ViewRef, model: Any) -> np.ndarray | None:
    from harness.geometry.mesh_raster import rasterize_mesh
    from harness.heads.loading import params_from_tracking
    from harness.heads.model import deform

    tracking = adapter.tracking(ref.subject, ref.sequence, ref.frame)
    if tracking is None:
        return None
    camera = adapter.camera(ref.subject, ref.sequence, ref.frame, ref.camera)
    vertices = deform(model, params_from_tracking(tracking, model)).vertices
    raster = rasterize_mesh(vertices, model.faces, camera)
    is_face = torch.as_tensor(np.isin(model.face_regions(), FACE_REGIONS))
    ids = raster.face_ids
    return ((ids >= 0) & is_face[ids.clamp_min(0)]).numpy()


def run_face_psnr(run: Path, data_root: Path | None = None) -> dict[tuple[str, ViewRef], float]:
    """{(unit, target ref): face-region PSNR} for every prediction of ``run``."""
    from harness.data.protocol import run_protocol
    from harness.data.resolve import open_reader
    from harness.heads.loading import load_head_model
    from harness.imageio import read_image
    from harness.plugins.registry import get_registry
    from harness.store import RunStore

    record = json.loads((run / "run.json").read_text())
    _, units = run_protocol(record, str(run / "run.json"))
    spec = get_registry().dataset(record["dataset"])
    adapter = open_reader(spec, data_root)
    model = load_head_model("template")
    out: dict[tuple[str, ViewRef], float] = {}
    for unit in units:
        for ref in unit.targets:
            path = run / "predictions" / unit.name / RunStore.relative_prediction(ref)
            if not path.is_file():
                continue
            mask = face_mask(adapter, ref, model)
            if mask is None:
                continue
            view = adapter.load_view(ref)
            alpha = view.alpha if view.alpha is not None else np.ones(view.image.shape[:2], np.float32)
            mask = mask & (alpha > 0.5)
            if not mask.any():
                continue
            pred, _ = read_image(path)
            a = alpha[..., None]
            gt_w, pred_w = view.image * a + (1 - a), pred[..., :3] * a + (1 - a)
            mse = float(((pred_w - gt_w)[mask] ** 2).mean())
            out[(unit.name, ref)] = 10 * np.log10(1.0 / max(mse, 1e-12))
    return out


def paired(a: dict, b: dict, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    keys = sorted(set(a) & set(b), key=lambda k: (k[0], k[1]))
    units = sorted({k[0] for k in keys})
    diff = {u: [b[k] - a[k] for k in keys if k[0] == u] for u in units}
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        pick = rng.choice(len(units), len(units))
        means.append(np.mean(np.concatenate([diff[units[i]] for i in pick])))
    all_diff = np.concatenate([diff[u] for u in units])
    return {"a": float(np.mean([a[k] for k in keys])), "b": float(np.mean([b[k] for k in keys])),
            "diff": float(all_diff.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5)), "targets": len(keys), "units": len(units)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scores = [run_face_psnr(r, args.data_root) for r in args.runs]
    result: dict[str, Any] = {str(r): float(np.mean(list(s.values()))) if s else None
                              for r, s in zip(args.runs, scores, strict=True)}
    for r, s in zip(args.runs, scores, strict=True):
        print(f"{r}: face-region PSNR {result[str(r)]:.3f} dB over {len(s)} targets")
    if len(scores) == 2:
        comparison = paired(scores[0], scores[1], args.bootstrap)
        result["comparison"] = comparison
        print(f"B - A: {comparison['diff']:+.3f} dB, 95% CI [{comparison['low']:+.3f}, {comparison['high']:+.3f}] "
              f"({comparison['targets']} targets, {comparison['units']} units)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
