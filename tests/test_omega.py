"""OMEGA-Avatar (methods/omega): splatting and fusion, the weighted Laplacian, driving, .ply, training and the
real-people guard. Everything tiny, on CPU."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.api.types import Camera, View, ViewRef
from harness.data.rig import look_at_world_to_camera
from harness.heads.loading import load_head_model

TINY_ARCH = {"mv_resolution": 32, "uv_resolution": 32, "mv_channels": 8, "mv_latent": 32, "feature_channels": 8,
             "decoder_channels": 8, "refiner_channels": 8, "identity_token": 16, "vertex_code": 8}


@pytest.fixture(scope="session")
def template():
    return load_head_model("template")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.synth.corpus import CorpusConfig, generate_corpus

    root = tmp_path_factory.mktemp("omega_corpus")
    generate_corpus(root, CorpusConfig(identities=2, expressions_per_identity=2, resolution=32, uv_resolution=32,
                                       camera_set="soap+rig", num_gaussians=800, shard_size=4), workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.plugins.registry import get_registry
    from harness.training.loop import TrainRequest, train

    spec = get_registry().trainer("omega")
    request = TrainRequest(trainer="omega", data=tiny_corpus, runs_dir=tmp_path_factory.mktemp("omega_runs"),
                           config={**TINY_ARCH, "mv_pretrain": 1, "render_resolution": 16, "mv_batch": 2},
                           steps=3, checkpoint_every=3)
    result = train(request, spec)
    rows = (result.root / "losses.jsonl").read_text().splitlines()
    assert len(rows) == 3 and "side_view_l1" in rows[-1] and "mv_rgb" in rows[0]
    return result.model


def _corpus_view(corpus_root: Path, index: int, view: int) -> tuple[View, dict]:
    from harness.synth.corpus import Corpus

    s = Corpus(corpus_root).sample(index)
    size = s["rgb"].shape[1]
    camera = Camera(s["world_to_camera"][view].astype(np.float64), s["K"][view].astype(np.float64), size, size)
    alpha = s["alpha"][view].astype(np.float32) / 255
    image = s["rgb"][view].astype(np.float32) / 255 + (1 - alpha[..., None])
    return View(ViewRef("c", "s", index, str(view)), image, camera, alpha), s


# --- splatting and fusion ------------------------------------------------------------------------------------

def test_bilinear_splatting_conserves_mass() -> None:
    from harness.geometry.splat import bilinear_texel_weights, splat_points

    rng = np.random.default_rng(0)
    uv = torch.as_tensor(rng.uniform(0.1, 0.9, (200, 2)), dtype=torch.float32)
    _, weights = bilinear_texel_weights(uv, 16)
    assert torch.allclose(weights.sum(1), torch.ones(200), atol=1e-6)  # each splatted pixel spreads weight 1
    values = torch.full((200, 3), 0.7)
    splat = splat_points(values, uv, 16)
    assert splat.density.sum().item() == pytest.approx(200, rel=1e-5)
    assert splat.total.sum().item() == pytest.approx(0.7 * 3 * 200, rel=1e-5)
    seen = splat.density > 1e-3
    assert torch.allclose(splat.normalised[:, seen], torch.full_like(splat.normalised[:, seen], 0.7), atol=1e-3)


def test_fused_features_equal_a_hand_computation_for_two_views() -> None:
    from harness_methods.omega.fusion import ViewSplat, fuse_views

    # Two views on a 2 x 2 map, one channel. View a sees texel (0, 0) face-on and texel (0, 1) at a grazing angle;
    # view b sees (0, 1) face-on and (0, 0) not at all; texel (1, 1) is seen by a only, (1, 0) by nobody.
    density_a = torch.tensor([[1.0, 2.0], [0.0, 0.5]])
    density_b = torch.tensor([[0.0, 1.5], [0.0, 0.0]])
    facing_a = torch.tensor([[1.0, 0.1], [0.0, 0.8]])  # mean n.v of the pixels that landed there
    facing_b = torch.tensor([[0.0, 0.9], [0.0, 0.0]])
    value_a, value_b = torch.tensor([[3.0, 5.0], [0.0, 7.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    a = ViewSplat((value_a * density_a)[None], density_a, facing_a * density_a)
    b = ViewSplat((value_b * density_b)[None], density_b, facing_b * density_b)
    gamma = torch.tensor([1.0, 2.0])
    fused = fuse_views([a, b], gamma, levels=1, tau=0.5, use_confidence=True, eps=0.0 + 1e-12)
    w_a, w_b = 1.0 * 0.1 * 2.0, 2.0 * 0.9 * 1.5  # W = gamma C D at texel (0, 1)
    assert fused.levels[0][0, 0, 1].item() == pytest.approx((w_a * 5.0 + w_b * 1.0) / (w_a + w_b), rel=1e-5)
    assert fused.levels[0][0, 0, 0].item() == pytest.approx(3.0, rel=1e-5)
    assert fused.levels[0][0, 1, 1].item() == pytest.approx(7.0, rel=1e-5)
    assert fused.levels[0][0, 1, 0].item() == 0.0
    assert fused.weights[0][0, 1].item() == pytest.approx(w_a + w_b, rel=1e-5)
    # density-only fusion (the ablation): W = gamma D
    dens = fuse_views([a, b], gamma, levels=1, use_confidence=False, eps=1e-12)
    d_a, d_b = 2.0, 2.0 * 1.5
    assert dens.levels[0][0, 0, 1].item() == pytest.approx((d_a * 5.0 + d_b * 1.0) / (d_a + d_b), rel=1e-5)
    assert fused.levels[0][0, 0, 1].item() < dens.levels[0][0, 0, 1].item()  # the grazing view counts less


def test_coarse_levels_fill_holes() -> None:
    from harness_methods.omega.fusion import ViewSplat, fuse_views

    density = torch.ones(4, 4)
    density[1, 1] = 0.0
    value = torch.full((1, 4, 4), 2.0)
    view = ViewSplat(value * density, density, density.clone())
    fused = fuse_views([view], torch.ones(1), levels=2, tau=0.5)
    assert fused.filled[0, 1, 1].item() == pytest.approx(2.0, rel=1e-3)  # the hole takes the coarse value
    assert fused.coverage[1, 1].item() < fused.coverage[0, 0].item()


def _quad(facing_camera: bool):
    """A 2-triangle square at z = 0 in a camera on +z, wound towards it or away from it."""
    vertices = torch.tensor([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [-0.1, 0.1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]]) if facing_camera else np.array([[0, 2, 1], [0, 3, 2]])
    layout = types.SimpleNamespace(faces=faces, uv_coords=np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
                                   uv_faces=faces)
    K = np.array([[100.0, 0, 16], [0, 100.0, 16], [0, 0, 1]])
    w2c = look_at_world_to_camera(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    return vertices, faces, layout, Camera(w2c, K, 32, 32)


@pytest.mark.parametrize("towards", [True, False])
def test_back_facing_texels_get_zero_confidence(towards: bool) -> None:
    from harness.geometry.mesh_raster import rasterize_mesh
    from harness_methods.omega.fusion import splat_view, view_confidence

    vertices, faces, layout, camera = _quad(towards)
    raster = rasterize_mesh(vertices, faces, camera)
    assert raster.mask.any()
    splat = splat_view(torch.ones(2, 32, 32), raster, vertices, faces, camera, layout, 8)
    seen = splat.density > 0.5
    assert seen.sum() > 10  # both sides are rasterised: the texels are splatted either way
    confidence = view_confidence(splat)
    if towards:
        assert (confidence[seen] > 0.9).all()
    else:
        assert torch.count_nonzero(confidence) == 0


# --- stage B ------------------------------------------------------------------------------------------------

def _grid_mesh(n: int = 5) -> tuple[torch.Tensor, np.ndarray]:
    ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    vertices = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], 1).astype(np.float32) * 0.1
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            faces += [[i, i + 1, i + n + 1], [i, i + n + 1, i + n]]
    return torch.as_tensor(vertices), np.array(faces)


def _uniform_laplacian(x: torch.Tensor, faces: np.ndarray) -> torch.Tensor:
    neighbours = [set() for _ in range(len(x))]
    for a, b, c in faces:
        for i, j in ((a, b), (b, c), (c, a)):
            neighbours[i].add(j)
            neighbours[j].add(i)
    terms = [((x[i] - x[sorted(nb)].mean(0)) ** 2).sum() for i, nb in enumerate(neighbours)]
    return torch.stack(terms).mean()


def test_weighted_laplacian_with_equal_weights_is_the_uniform_laplacian() -> None:
    from harness_methods.omega.fitting import neighbour_mean_matrix, weighted_laplacian

    vertices, faces = _grid_mesh()
    x = vertices + torch.as_tensor(np.random.default_rng(1).normal(0, 0.02, vertices.shape), dtype=torch.float32)
    M = neighbour_mean_matrix(faces, len(x))
    for w in (1.0, 3.5):
        got = weighted_laplacian(x, M, torch.full((len(x),), w))
        assert got.item() == pytest.approx(_uniform_laplacian(x, faces).item(), rel=1e-5)
    weights = torch.ones(len(x))
    weights[0] = 10.0
    assert weighted_laplacian(x, M, weights).item() != pytest.approx(_uniform_laplacian(x, faces).item(), rel=1e-3)


def test_laplacian_gradient_pulls_a_displaced_vertex_to_its_neighbours_mean() -> None:
    from harness_methods.omega.fitting import neighbour_mean_matrix, weighted_laplacian

    vertices, faces = _grid_mesh()
    x = vertices.clone()
    centre = 12  # the middle of the 5 x 5 grid
    x[centre, 2] = 0.05
    x.requires_grad_(True)
    M = neighbour_mean_matrix(faces, len(x))
    weighted_laplacian(x, M, torch.ones(len(x))).backward()
    mean = x.detach()[[7, 8, 11, 13, 16, 17]].mean(0)  # the grid's six neighbours of the centre
    step = -x.grad[centre]
    assert torch.dot(step, mean - x.detach()[centre]) > 0
    moved = x.detach()[centre] + 0.5 * step / step.norm() * 0.01
    assert (moved - mean).norm() < (x.detach()[centre] - mean).norm()


def test_laplacian_weights_are_large_on_hair_and_small_on_the_face(template) -> None:
    from harness_methods.omega.fitting import laplacian_weights, nonface_faces, symmetric_pairs

    w = laplacian_weights(template, 1.0, 0.1)
    assert torch.all(w[np.asarray(template.regions["hair"])] == 1.0)
    assert torch.allclose(w[np.asarray(template.regions["face"])], torch.tensor(0.1))
    mask = nonface_faces(template)
    assert 0 < mask.sum() < len(mask)
    names = template.landmark_names
    assert all(names[a].replace("_l", "_r", 1) == names[b] for a, b in symmetric_pairs(template))


# --- driving and .ply ---------------------------------------------------------------------------------------

def _random_avatar(template):
    from harness_methods.omega.avatar import mesh_binding
    from harness_methods.omega.method import OmegaAvatar

    binding = mesh_binding(template, 16)
    from harness.heads.binding import BoundGaussians

    n = len(binding.vertex_faces) + len(binding.texel_faces)
    rng = torch.Generator().manual_seed(0)
    head = BoundGaussians(torch.cat([binding.vertex_faces, binding.texel_faces]),
                          torch.cat([binding.vertex_bary, binding.texel_bary]),
                          torch.randn(n, 3, generator=rng) * 0.05,
                          torch.nn.functional.normalize(torch.randn(n, 4, generator=rng), dim=-1),
                          torch.full((n, 3), -1.0), torch.randn(n, generator=rng), torch.rand(n, 1, 3, generator=rng))
    params = template.params(shape=np.linspace(-1, 1, template.num_shape) * 0.5)
    return OmegaAvatar(template, params, torch.zeros(len(template.v_template), 3), head,
                       ViewRef("s", "q", 0, "c"), None, {})


def test_driving_moves_only_what_expression_and_pose_move(template) -> None:
    from harness_methods.omega.fitting import posed
    from harness_methods.omega.method import driven_params

    avatar = _random_avatar(template)
    faces = torch.as_tensor(template.faces)
    rest = avatar.head.place(posed(template, avatar.params, avatar.offsets).vertices, faces)["means"]
    jaw = template.params(jaw=[0.3, 0.0, 0.0])
    driven = driven_params(avatar, jaw)
    assert np.allclose(driven.shape, avatar.params.shape)  # identity kept
    moved = avatar.head.place(posed(template, driven, avatar.offsets).vertices, faces)["means"]
    jaw_weight = template.lbs_weights[:, 2] > 1e-6
    corners = template.faces[avatar.head.face_ids.numpy()]
    touched = jaw_weight[corners].any(1)
    shift = (moved - rest).norm(dim=1)
    assert shift[~torch.as_tensor(touched)].max().item() < 1e-6  # nothing off the jaw moves
    assert shift[torch.as_tensor(touched)].max().item() > 1e-3
    # a pose change moves everything rigidly; the source frame itself leaves the avatar as fitted
    turned = driven_params(avatar, template.params(rotation=[0.0, 0.3, 0.0]))
    assert not np.allclose(turned.rotation, avatar.params.rotation)
    avatar.source_tracking = template.params(rotation=[0.0, 0.1, 0.0])
    assert driven_params(avatar, avatar.source_tracking) is avatar.params
    relative = driven_params(avatar, template.params(rotation=[0.0, 0.1, 0.0], expression=[0.5]))
    assert np.allclose(relative.rotation, avatar.params.rotation, atol=1e-9)
    assert relative.expression[0] == pytest.approx(0.5)


def test_avatar_round_trips_through_ply(template, tmp_path: Path) -> None:
    from harness.render.gaussians import Gaussians
    from harness_methods.omega.fitting import posed
    from harness_methods.omega.method import gaussians_of

    avatar = _random_avatar(template)
    vertices = posed(template, avatar.params).vertices
    g = gaussians_of(avatar.head, vertices, torch.as_tensor(template.faces))
    g.save_ply(tmp_path / "a.ply")
    back = Gaussians.load_ply(tmp_path / "a.ply")
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert np.allclose(getattr(back, name), getattr(g, name), atol=1e-6), name


def test_soap_cameras_turn_round_the_head() -> None:
    from harness.synth.cameras import camera_set
    from harness_methods.omega.config import SOAP_YAWS
    from harness_methods.omega.views import orbit_cameras

    cameras, angles = camera_set("soap", 32)
    assert [a[0] for a in angles] == list(SOAP_YAWS)
    ours = orbit_cameras(cameras[0], 1.0, SOAP_YAWS)
    for a, b in zip(ours, cameras, strict=True):
        assert np.allclose(a.world_to_camera, b.world_to_camera, atol=1e-6)


# --- training, inference, guard -----------------------------------------------------------------------------

def test_trained_checkpoint_reconstructs_drives_and_saves(tiny_corpus: Path, tiny_checkpoint: Path,
                                                          tmp_path: Path) -> None:
    from harness.api import Target
    from harness.checkpoints import load_checkpoint
    from harness_methods.omega.method import Omega

    ckpt = load_checkpoint(tiny_checkpoint, "omega")
    assert ckpt.architecture["uv_resolution"] == 32 and ckpt.head_model
    view, sample = _corpus_view(tiny_corpus, 0, 0)
    other, _ = _corpus_view(tiny_corpus, 0, 14)
    tracking = {"model": "open-head-template-v1", **load_head_model("template").params(
        expression=sample["expression"] * 0 + 0.5, jaw=[0.2, 0, 0]).to_dict()}
    outputs = {}
    for arm in ({}, {"visibility_fusion": False}, {"single_view": True}):
        method = Omega()
        method.load("cpu", {"checkpoint": str(tiny_checkpoint), "fit_steps": 2, **arm})
        avatar = method.reconstruct([view])
        images = method.render(avatar, [Target(other.ref, other.camera), Target(other.ref, other.camera, tracking)])
        assert [i.shape for i in images] == [(32, 32, 4)] * 2
        assert all(np.isfinite(i).all() and i.min() >= 0 and i.max() <= 1 for i in images)
        assert not np.allclose(images[0], images[1])  # driving changes the render
        outputs[str(arm)] = images[0]
    assert not np.allclose(outputs["{}"], outputs[str({"single_view": True})])
    method.save(avatar, tmp_path / "avatar")
    assert (tmp_path / "avatar" / "gaussians.ply").is_file()
    with pytest.raises(ValueError, match="no head tracking"):
        method.render(avatar, [Target(ViewRef("c", "s", 9, "1"), other.camera)])


def test_real_data_without_a_full_checkpoint_says_what_to_train(tmp_path: Path, monkeypatch) -> None:
    from harness.api import MissingWeightsError, RunContext
    from harness_methods.omega.method import Omega

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    method = Omega()
    method.run_context = RunContext(dataset="nersemble", protocol="nvs", synthetic_subjects=False)
    with pytest.raises(MissingWeightsError) as err:
        method.load("cpu", {})
    message = str(err.value)
    assert "harness train omega --data nersemble-v2:train" in message and "checkpoint=demo" in message


def test_shipped_demo_checkpoint_loads_on_the_demo() -> None:
    from harness.api import RunContext
    from harness_methods.omega.method import DEMO_CHECKPOINT, Omega

    if not DEMO_CHECKPOINT.is_file():
        pytest.fail(f"the demo checkpoint {DEMO_CHECKPOINT} is not shipped")
    method = Omega()
    method.run_context = RunContext(dataset="demo", protocol="demo", synthetic_subjects=True)
    method.load("cpu", {})
    assert method.checkpoint.synthetic_demo and DEMO_CHECKPOINT.stat().st_size < 8_000_000


def test_soap_generator_names_the_missing_folder(tmp_path: Path) -> None:
    from harness.api import MissingWeightsError
    from harness_methods.omega.generator import SoapGenerator

    with pytest.raises(MissingWeightsError, match="soap_mv_pipeline"):
        SoapGenerator("", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="soap_normal_pipeline"):
        SoapGenerator(str(tmp_path), str(tmp_path / "absent"))


def test_trains_a_few_steps_on_a_dataset_split(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from dataset_writers import write_v2

    from harness.plugins.registry import get_registry
    from harness.training.loop import TrainRequest, train

    write_v2(tmp_path / "v2", frames=2, downscale=16)
    spec = get_registry().trainer("omega")
    request = TrainRequest(trainer="omega", data="nersemble-v2:train", data_root=tmp_path / "v2",
                           runs_dir=tmp_path / "runs", steps=1, checkpoint_every=1,
                           config={**TINY_ARCH, "render_resolution": 16, "targets_per_step": 1, "fit_steps": 1,
                                   "generator_checkpoint": str(tiny_checkpoint)}, synthetic_demo=False)
    result = train(request, spec)
    row = (result.root / "losses.jsonl").read_text().splitlines()[0]
    assert "raw_l1" in row and "mv_rgb" not in row  # stage A frozen on real data


def test_face_psnr_pairing_resamples_whole_units() -> None:
    from harness_methods.omega.face_psnr import paired

    ref = lambda u, c: (f"unit{u}", ViewRef("s", "q", u, str(c)))  # noqa: E731
    a = {ref(u, c): 20.0 + u for u in range(4) for c in range(3)}
    b = {k: v + 1.5 for k, v in a.items()}
    b[ref(9, 0)] = 99.0  # only in B: not paired
    out = paired(a, b, resamples=200)
    assert out["diff"] == pytest.approx(1.5) and out["low"] == pytest.approx(1.5) and out["high"] == pytest.approx(1.5)
    assert out["targets"] == 12 and out["units"] == 4
