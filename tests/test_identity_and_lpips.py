"""LPIPS and CSIM on stand-in weights in the real cache layouts: equal to the libraries' own calls, exact on
identical images, independent of batch size, failures counted, masking applied to both images alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from standins import face_image, install_insightface_standin, install_lpips_standin, trust_lpips_standin

from harness.api.method import MissingWeightsError
from harness.scoring import sources


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HARNESS_HOME holding stand-in LPIPS and insightface weights, for this module only."""
    home = tmp_path_factory.mktemp("weights_home")
    install_lpips_standin(home / "weights")
    install_insightface_standin(home / "weights")
    previous = os.environ["HARNESS_HOME"]
    os.environ["HARNESS_HOME"] = str(home)
    with pytest.MonkeyPatch.context() as patch:
        trust_lpips_standin(patch, home / "weights")
        yield home
    os.environ["HARNESS_HOME"] = previous


def _batch(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((n, 3, size, size), dtype=np.float32))


def _faces(n: int, seed: int = 0) -> torch.Tensor:
    images = [face_image(centre=(90 + 9 * (i % 8), 100 + 7 * (i % 5)), seed=seed + i) for i in range(n)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_lpips_equals_the_library_call_on_the_same_weights(weights_home: Path) -> None:
    import lpips

    from harness.scoring.lpips_metric import LPIPSAlex
    from harness.scoring.torchhub import torch_hub_dir

    before = torch.hub.get_dir()
    ours = LPIPSAlex("cpu")
    assert torch.hub.get_dir() == before  # the metric leaves torch.hub's directory as it found it
    with torch_hub_dir(weights_home / "weights" / sources.TORCH_HUB):
        library = lpips.LPIPS(net="alex", verbose=False).eval()
    a, b = _batch(4), _batch(4, seed=1)
    expected = library(a * 2 - 1, b * 2 - 1).flatten()
    np.testing.assert_allclose(ours(a, b).numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert ours(a, a).abs().max().item() == 0.0


def test_lpips_does_not_depend_on_batch_size(weights_home: Path) -> None:
    from harness.scoring.lpips_metric import LPIPSAlex

    metric = LPIPSAlex("cpu")
    a, b = _batch(32, size=64, seed=2), _batch(32, size=64, seed=3)
    one_by_one = torch.cat([metric(a[i:i + 1], b[i:i + 1]) for i in range(32)])
    np.testing.assert_allclose(metric(a, b).numpy(), one_by_one.numpy(), atol=1e-5)


def test_a_metric_without_weights_says_which_file_and_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    from harness.scoring.identity import CSIM
    from harness.scoring.lpips_metric import LPIPSAlex

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"alexnet-owt-7be5be79\.pth.*harness weights fetch lpips-alex"):
        LPIPSAlex("cpu")
    with pytest.raises(MissingWeightsError, match=r"det_10g\.onnx.*harness weights fetch insightface-buffalo_l"):
        CSIM("cpu")


def _library_app(weights_home: Path):
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(weights_home / "weights" / sources.INSIGHTFACE_DIR),
                       allowed_modules=["detection", "recognition"], providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640), det_thresh=0.5)
    return app


def test_csim_equals_insightfaces_own_pipeline(weights_home: Path) -> None:
    from harness.scoring.identity import CSIM, CSIMDetectBoth, to_bgr_uint8

    app = _library_app(weights_home)
    recognizer = app.models["recognition"]
    gt = _faces(3)
    pred = (gt + 0.06 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    gt_faces = [app.get(img, max_num=1)[0] for img in to_bgr_uint8(gt)]
    gt_embeddings = [face.embedding.copy() for face in gt_faces]  # recognizer.get overwrites face.embedding
    pred_bgr = to_bgr_uint8(pred)

    # Headline: the ground truth's keypoints warp both images.
    expected = [recognizer.compute_sim(recognizer.get(img, face), emb)
                for img, face, emb in zip(pred_bgr, gt_faces, gt_embeddings, strict=True)]
    np.testing.assert_allclose(CSIM("cpu")(pred, gt).values, expected, atol=1e-6)
    # Variant: keypoints detected on each image.
    expected_both = [recognizer.compute_sim(app.get(img, max_num=1)[0].embedding, emb)
                     for img, emb in zip(pred_bgr, gt_embeddings, strict=True)]
    np.testing.assert_allclose(CSIMDetectBoth("cpu")(pred, gt).values, expected_both, atol=1e-6)
    assert not np.allclose(expected, 1.0)


def test_csim_identical_images_give_one_and_batch_size_changes_nothing(weights_home: Path) -> None:
    from harness.scoring.identity import CSIM

    metric = CSIM("cpu")
    gt = _faces(32)
    np.testing.assert_allclose(metric(gt, gt).values, 1.0, atol=1e-6)
    pred = (gt * 0.9 + 0.05).clamp(0, 1)
    whole = metric(pred, gt).values
    single = np.concatenate([metric(pred[i:i + 1], gt[i:i + 1]).values for i in range(32)])
    np.testing.assert_allclose(whole, single, atol=1e-5)


def test_csim_failures_have_no_value_and_a_reason(weights_home: Path) -> None:
    from harness.scoring.identity import CSIM, NO_FACE_GT, NO_FACE_PRED, CSIMDetectBoth

    faces = _faces(2)
    blank = torch.full_like(faces, 0.8)
    gt = torch.cat([faces, blank])
    result = CSIM("cpu")(gt, gt)
    assert np.isfinite(result.values[:2]).all() and np.isnan(result.values[2:]).all()
    assert result.reasons == [None, None, NO_FACE_GT, NO_FACE_GT]
    both = CSIMDetectBoth("cpu")(torch.cat([blank[:1], faces[1:]]), faces)
    assert both.reasons == [NO_FACE_PRED, None]


def test_csim_reference_free_variants(weights_home: Path) -> None:
    from harness.scoring.identity import CSIM

    metric = CSIM("cpu")
    renders = torch.cat([_faces(3, seed=5), torch.full((1, 3, 256, 256), 0.8)])
    against = metric.against_photo(renders, _faces(1, seed=9))
    assert np.isfinite(against.values[:3]).all() and against.reasons[3] == "no face detected in the render"
    cross, pairs = metric.cross_view(renders)
    assert len(pairs) == 6 and np.isfinite(cross.values).sum() == 3


def test_scorer_counts_csim_failures_and_masks_both_images_alike(weights_home: Path, demo_adapter,
                                                                 tmp_path: Path) -> None:
    """Predictions equal to the ground truth inside the head and noise outside it: masked LPIPS is 0 and masked
    CSIM 1 wherever defined, while the full-frame variants see the difference. Demo heads have no stand-in
    "face", so CSIM is undefined for every image, and every one of them is counted with its reason."""
    from harness.data.resolve import resolve_protocol
    from harness.imageio import write_png
    from harness.plugins.registry import build_registry
    from harness.scoring.scorer import score_run
    from harness.store import RunStore

    registry = build_registry()
    protocol = resolve_protocol(registry.dataset("demo"), None)
    unit = protocol.units()[0]
    store = RunStore(tmp_path / "external")
    rng = np.random.default_rng(0)
    for ref in unit.targets:
        view = demo_adapter.load_view(ref)
        a = view.alpha[..., None]
        noise = rng.random(view.image.shape, dtype=np.float32)
        path = store.find_prediction(unit.name, ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, np.where(a > 0.999, view.image, noise * (1 - a) + view.image * a))
    from harness.external import prepare_external_run

    prepare_external_run(store.root, registry, "demo", "demo", None, "masked-test")
    scored = score_run(store.root, registry, metric_names=["lpips", "csim"])
    table = scored.metrics.filter(pl.col("unit") == unit.name)
    lp = table.filter(pl.col("metric") == "lpips")
    assert lp.filter(pl.col("variant") == "masked")["value"].max() < 2e-3
    assert lp.filter(pl.col("variant") == "full")["value"].min() > 0.01
    cs = table.filter(pl.col("metric") == "csim")
    assert cs.height == 2 * len(unit.targets)
    assert cs["value"].null_count() == cs.height and set(cs["note"]) == {"no face detected in the ground truth"}
