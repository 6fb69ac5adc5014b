"""The demo is the template rendered by our renderer, with its tracking shipped; gs-fit beats nearest-input on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from harness.api import ViewRef
from harness.data.demo import NUM_FRAMES, SEQUENCE, head_params, rig_cameras, subject_identity
from harness.heads.template import head_template
from harness.plugins.registry import build_registry
from harness.runner import RunRequest, run
from harness.synth.heads import build_head, render_posed


def test_demo_frames_are_the_template_posed_by_the_shipped_tracking(demo_adapter) -> None:
    from harness.api.types import Camera
    from harness.data.demo import FULL_HEIGHT, FULL_WIDTH

    model = head_template()
    ref = ViewRef("902", SEQUENCE, 4, "222200040")
    view = demo_adapter.load_view(ref)
    tracking = demo_adapter.tracking(ref.subject, ref.sequence, ref.frame)
    assert tracking["model"] == model.name and len(tracking["expression"]) == model.num_expression
    head = build_head(model, subject_identity(0, 1), np.random.default_rng([0, 1, 1]))
    extrinsics, K = rig_cameras()
    camera = Camera(extrinsics[ref.camera], K, FULL_WIDTH, FULL_HEIGHT).resized(*view.image.shape[1::-1])
    _, alpha = render_posed(model, head, head_params(tracking), [camera])
    assert np.abs(alpha[0] - view.alpha).max() <= 1.5 / 255
    # A different frame's tracking does not reproduce it: the head moves between frames.
    other = demo_adapter.tracking(ref.subject, ref.sequence, (ref.frame + 2) % NUM_FRAMES)
    _, moved = render_posed(model, head, head_params(other), [camera])
    assert np.abs(moved[0] - view.alpha).max() > 0.5


def _one_unit_protocol(tmp_path: Path) -> Path:
    protocol = {
        "name": "demo-one-unit", "version": 1, "dataset": "demo", "subjects": ["901"], "background": [1.0, 1.0, 1.0],
        "tasks": [{"kind": "novel_view", "sequences": [SEQUENCE], "frames": [0], "source_cameras": ["222200037"],
                   "target_cameras": ["222200040", "220700191", "222200043", "221501007"]}],
    }
    path = tmp_path / "one_unit.yaml"
    path.write_text(yaml.safe_dump(protocol))
    return path


@pytest.mark.parametrize("metric", ["psnr", "ssim"])
def test_gs_fit_beats_nearest_input_on_novel_views(metric: str, fitted_runs: dict[str, Path]) -> None:
    means = {}
    for method, root in fitted_runs.items():
        table = pl.read_parquet(root / "metrics.parquet")
        rows = table.filter((pl.col("metric") == metric) & (pl.col("variant") == "masked"))
        assert rows.height == 4 and rows["value"].is_finite().all()
        means[method] = rows["value"].mean()
    assert means["gs-fit"] > means["nearest-input"] + (1.0 if metric == "psnr" else 0.01), means


@pytest.fixture(scope="module")
def fitted_runs(tmp_path_factory: pytest.TempPathFactory, demo_adapter) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("gsfit")
    protocol = _one_unit_protocol(tmp)
    registry = build_registry()
    roots = {}
    for method, config in (("gs-fit", {"steps": 20, "num_gaussians": 8000}), ("nearest-input", {})):
        result = run(RunRequest(method=method, dataset="demo", protocol=str(protocol), runs_dir=tmp / "runs",
                                config=config, device="cpu"), registry)
        roots[method] = result["prepared"].store.root
    return roots


def test_gs_fit_saves_a_viewer_ready_ply(tmp_path: Path, demo_adapter) -> None:
    from harness.render.gaussians import Gaussians
    from harness.runner import with_tracking
    from harness_methods.gs_fit.method import GsFit

    method = GsFit()
    method.load("cpu", {"steps": 2, "num_gaussians": 500})
    avatar = method.reconstruct([with_tracking(demo_adapter.load_view(ViewRef("903", SEQUENCE, 0, "222200037")),
                                               demo_adapter)])
    method.save(avatar, tmp_path / "avatar")
    loaded = Gaussians.load_ply(tmp_path / "avatar" / "gaussians.ply")
    assert len(loaded) == 500 and np.isfinite(loaded.means).all()
    with pytest.raises(ValueError, match="unknown config keys"):
        method.load("cpu", {"stepz": 3})
