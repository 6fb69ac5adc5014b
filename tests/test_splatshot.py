"""SplatShot: schedule conversions, the loop against diffusers' own img2img, the feedback's chain rule, the refit,
full-size loading of tiny stand-in components, the trainer, and the runner's capability skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness_methods.splatshot.defaults import DEMO_ARCHITECTURE
from harness_methods.splatshot.loop import LoopSettings, feedback_gradient, feedback_loss, run_loop
from harness_methods.splatshot.networks import (
    Prior,
    build_demo_prior,
    ip_adapter_plus_state_dict,
    load_ip_adapter,
    make_scheduler,
)
from harness_methods.splatshot.schedule import eps_from_x0, img2img_timesteps, x0_from_eps

torch.set_num_threads(1)
TINY_ARCH = {**DEMO_ARCHITECTURE, "resolution": 32, "encoder_layers": 2, "encoder_hidden": 32, "encoder_patch": 8,
             "scaling_factor": 2.0}


@pytest.fixture(scope="module")
def demo_prior() -> Prior:
    torch.manual_seed(0)
    return build_demo_prior(TINY_ARCH)


def _tiny_sd_components(seed: int = 0):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8, sample_size=16)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=32))
    ip = ip_adapter_plus_state_dict(unet, 32, 4, 64, torch.Generator().manual_seed(seed))
    return unet, vae, encoder, ip


def test_x0_eps_round_trip_uses_the_schedulers_alphas_cumprod() -> None:
    scheduler = make_scheduler(DEMO_ARCHITECTURE)
    x_t, eps = torch.randn(2, 48, 4, 4), torch.randn(2, 48, 4, 4)
    for t in (1, 241, 481, 761, 999):
        x0 = x0_from_eps(scheduler, x_t, eps, t)
        assert torch.allclose(eps_from_x0(scheduler, x_t, x0, t), eps, atol=1e-4)
        abar = scheduler.alphas_cumprod[t]
        assert torch.allclose(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, x_t, atol=1e-5)
        # diffusers' DDIM step predicts the same x0 from the same eps
        scheduler.set_timesteps(25)
        step = scheduler.step(eps, t, x_t, eta=0.0)
        assert torch.allclose(step.pred_original_sample, x0, atol=1e-4)
    scheduler.set_timesteps(25)
    sd = make_scheduler(DEMO_ARCHITECTURE)
    assert img2img_timesteps(sd, 25, 0.5)[0] == 481 and len(img2img_timesteps(sd, 25, 0.5)) == 13


def test_loop_without_guidance_and_refit_is_diffusers_ddim_img2img() -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    from harness_methods.splatshot.codec import VaeCodec

    unet, vae, encoder, ip = _tiny_sd_components()
    load_ip_adapter(unet, ip)  # the original key layout, through diffusers' own loader
    assert type(unet.encoder_hid_proj.image_projection_layers[0]).__name__ == "IPAdapterPlusImageProjection"
    scheduler = make_scheduler(DEMO_ARCHITECTURE)
    text, negative = torch.randn(1, 5, 32), torch.randn(1, 5, 32)
    prior = Prior(unet.eval(), encoder.eval(), VaeCodec(vae.eval()), scheduler, text, negative, 16, 32)
    views = 3
    init = torch.rand(views, 3, 16, 16)
    target_id, base_id = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    settings = LoopSettings(steps=10, strength=0.5, cfg_scale=4.0, ip_adapter_scale=0.8, semantic_weight=0.5,
                            guidance_weight=0.0, mode="joint")
    ours = run_loop(prior, init, target_id, base_id, settings, torch.Generator().manual_seed(7), refitter=None)
    with torch.no_grad():
        z0 = prior.codec.encode(init * 2 - 1)
        positive, uncond = prior.image_embeds(target_id), prior.uncond_image_embeds(target_id)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                          scheduler=make_scheduler(DEMO_ARCHITECTURE), safety_checker=None,
                                          feature_extractor=None, image_encoder=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    embeds = torch.cat([uncond.expand(views, -1, -1), positive.expand(views, -1, -1)])[:, None]
    theirs = pipe(prompt_embeds=text.expand(views, -1, -1), negative_prompt_embeds=negative.expand(views, -1, -1),
                  image=z0, strength=0.5, num_inference_steps=10, guidance_scale=4.0, eta=0.0,
                  ip_adapter_image_embeds=[embeds], generator=torch.Generator().manual_seed(7),
                  output_type="latent").images
    assert ours.timesteps == [int(t) for t in pipe.scheduler.timesteps[5:]] and ours.timesteps[0] == 401
    assert torch.allclose(ours.latents, theirs, atol=1e-4), (ours.latents - theirs).abs().max()
    # and the identity conditioning matters: another photo gives another result
    other = run_loop(prior, init, torch.rand(1, 3, 32, 32), base_id, settings, torch.Generator().manual_seed(7))
    assert (other.latents - ours.latents).abs().max() > 1e-4


def test_feedback_moves_x0_towards_the_render_by_the_chain_rule(demo_prior: Prior) -> None:
    from harness_methods.splatshot.schedule import deps_from_dx0

    scheduler = demo_prior.scheduler
    x_t, eps = torch.randn(2, 48, 8, 8), torch.randn(2, 48, 8, 8)
    rendered = torch.rand(2, 3, 32, 32)
    for t in (241, 481):
        x0 = x0_from_eps(scheduler, x_t, eps, t)
        grad_eps, loss = feedback_gradient(demo_prior, x0, rendered, t)
        # finite difference of L(x0(eps)) along a random direction
        direction = torch.randn_like(eps)
        h = 1e-3

        def loss_at(e: torch.Tensor, t: int = t) -> float:
            decoded = (demo_prior.codec.decode(x0_from_eps(scheduler, x_t, e, t)) + 1) / 2
            return float(feedback_loss(decoded, rendered).double())

        fd = (loss_at(eps.double() + h * direction.double()) - loss_at(eps.double() - h * direction.double())) / (2 * h)
        assert abs(fd - float((grad_eps * direction).sum())) < 1e-3 * max(1.0, abs(fd)), (fd, t)
        # the sign and scale the chain rule predicts: dL/deps = -(sigma / alpha) dL/dx0
        x0_leaf = x0.clone().requires_grad_(True)
        feedback_loss((demo_prior.codec.decode(x0_leaf) + 1) / 2, rendered).backward()
        abar = scheduler.alphas_cumprod[t]
        assert torch.allclose(grad_eps, -((1 - abar).sqrt() / abar.sqrt()) * x0_leaf.grad, atol=1e-7)
        assert torch.allclose(grad_eps, deps_from_dx0(scheduler, x0_leaf.grad, t))
        # a step eps - w dL/deps lowers the loss for a positive weight, and more weight lowers it further
        losses = [loss_at(eps - w * grad_eps) for w in (0.0, 50.0, 200.0)]
        assert losses[0] == pytest.approx(loss, rel=1e-4) and losses[0] > losses[1] > losses[2], losses


def test_refit_lowers_its_loss_and_the_avatar_round_trips_through_ply(tmp_path: Path) -> None:
    from harness.render.gaussians import Gaussians
    from harness.render.renderer import camera_tensors
    from harness.synth.cameras import camera_set
    from harness_methods.splatshot.refit import FreeGaussians, Refitter, view_weights

    rng = torch.Generator().manual_seed(0)
    n = 300
    g = FreeGaussians(torch.randn(n, 3, generator=rng) * 0.05, torch.nn.functional.normalize(torch.randn(n, 4)),
                      torch.full((n, 3), np.log(0.01)), torch.full((n,), 1.0), torch.zeros(n, 3))
    cams = camera_set("rig", 24)[0][6:10]
    viewmats, Ks, _, _ = camera_tensors(cams)
    target = torch.zeros(len(cams), 3, 24, 24)
    target[:, 0] = 0.9
    refitter = Refitter(g, viewmats, Ks, 24, torch.ones(3), seed=0)
    before = refitter.loss(target)
    refitter.fit(target, 15)
    adam_steps = float(refitter.optimiser.state[g.colours]["step"])
    refitter.fit(target, 10)
    assert refitter.optimiser.state[g.colours]["step"] == adam_steps + 10  # state persists across calls
    assert refitter.loss(target) < before - 0.02
    w = view_weights(torch.tensor([0.1, 0.3, 0.2]))
    assert w[0] == 1 and w[1] == 0 and 0 < w[2] < 1
    path = tmp_path / "avatar.ply"
    g.to_gaussians().save_ply(path)
    back = FreeGaussians.from_gaussians(Gaussians.load_ply(path))
    for a, b in zip(g.tensors(), back.tensors(), strict=True):
        assert torch.equal(a.detach(), b)


def _write_full_size_folder(root: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet, vae, encoder, ip = _tiny_sd_components(1)
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    make_scheduler(DEMO_ARCHITECTURE).save_pretrained(root / "scheduler")
    encoder.save_pretrained(root / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "feature_extractor")
    words = ["a</w>", "photo</w>", "of</w>", "head</w>", "person</w>"]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    vocab.update({c: len(vocab) + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")})
    (root / "tok").mkdir()
    (root / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tok" / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(root / "tok" / "vocab.json"), str(root / "tok" / "merges.txt"),
                  model_max_length=8).save_pretrained(root / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, max_position_embeddings=8, bos_token_id=0,
                                 eos_token_id=1, pad_token_id=1)).save_pretrained(
        root / "text_encoder")
    (root / "ip_adapter").mkdir()
    torch.save(ip, root / "ip_adapter" / "ip-adapter-plus-face_sd15.bin")


def test_full_size_components_load_offline_and_missing_ones_are_named(tmp_path: Path) -> None:
    import shutil

    from harness.api import MissingWeightsError
    from harness_methods.splatshot.pretrained import load_pretrained

    root = tmp_path / "sd15"
    _write_full_size_folder(root)
    prior = load_pretrained(root, {"prompt": "a photo of a head", "negative_prompt": "", "resolution": 16},
                            torch.device("cpu"))
    assert prior.kind == "full" and prior.text_embeds.shape == (1, 8, 32) and prior.encoder_size == 32
    settings = LoopSettings(steps=4, strength=0.5, guidance_weight=0.0)
    out = run_loop(prior, torch.rand(2, 3, 16, 16), torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), settings,
                   torch.Generator().manual_seed(0))
    assert out.images.shape == (2, 3, 16, 16) and torch.isfinite(out.images).all()
    shutil.rmtree(root / "vae")
    (root / "ip_adapter" / "ip-adapter-plus-face_sd15.bin").unlink()
    with pytest.raises(MissingWeightsError) as err:
        load_pretrained(root, {}, torch.device("cpu"))
    text = str(err.value)
    assert "vae:" in text and "ip_adapter:" in text and str(root / "vae" / "config.json") in text
    assert "harness weights fetch splatshot-vae-config-json" in text and "unet:" not in text


def test_trainer_steps_on_a_corpus_and_exports_a_loadable_prior(tmp_path: Path) -> None:
    from harness.synth.corpus import CorpusConfig, generate_corpus
    from harness.training import TrainingContext
    from harness_methods.splatshot.trainer import SplatShotTrainer

    corpus = tmp_path / "corpus"
    generate_corpus(corpus, CorpusConfig(identities=2, expressions_per_identity=1, resolution=32, uv_resolution=8,
                                         camera_set="rig", num_gaussians=400, shard_size=2), workers=1)
    config = {**TINY_ARCH, "batch": 3, "lr": 1e-3, "lr_final": 1e-4, "condition_dropout": 0.5,
              "frontal_reference": 0.5, "background": 1.0}
    config.pop("scaling_factor")
    trainer = SplatShotTrainer()
    trainer.setup(TrainingContext(config=config, data=corpus, device="cpu", seed=0, steps=3))
    losses = [trainer.train_step(s)["loss"] for s in range(3)]
    assert all(np.isfinite(losses))
    checkpoint = trainer.export()
    assert checkpoint.method == "splatshot" and checkpoint.architecture["scaling_factor"] > 0
    prior = build_demo_prior(checkpoint.architecture, checkpoint.state)
    x = torch.randn(1, 48, 8, 8)
    with torch.no_grad():
        a = prior.predict(x, 300, prior.text_embeds, prior.image_embeds(torch.rand(1, 3, 32, 32)))
        b = trainer.prior.predict(x, 300, trainer.prior.text_embeds,
                                  trainer.prior.image_embeds(torch.rand(1, 3, 32, 32) * 0 + a.new_zeros(1)))
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    # the demo prior predicts x0; ``predict`` hands the loop the eps that gives back exactly that x0
    assert prior.prediction_type == "sample"
    with torch.no_grad():
        embeds = prior.image_embeds(torch.rand(1, 3, 32, 32))
        raw = prior.network(x, 300, prior.text_embeds, embeds)
        eps = prior.predict(x, 300, prior.text_embeds, embeds)
    assert torch.allclose(x0_from_eps(prior.scheduler, x, eps, 300), raw, atol=1e-4)
    # resume: a trainer loaded from the state takes the same next step
    state = trainer.state_dict()
    again = SplatShotTrainer()
    again.setup(TrainingContext(config=config, data=corpus, device="cpu", seed=0, steps=3))
    again.load_state_dict(state)
    torch.manual_seed(1)
    first = trainer.train_step(3)["loss"]
    torch.manual_seed(1)
    assert again.train_step(3)["loss"] == pytest.approx(first, rel=1e-5)


def test_registered_one_shot_static_full_head_and_reenactment_is_skipped() -> None:
    from harness.api import EvalUnit, ViewRef
    from harness.plugins.registry import build_registry
    from harness.runner import capability_skip

    registry = build_registry()
    spec = registry.method("splatshot")
    caps = spec.capabilities
    assert (caps.inputs, caps.animatable, caps.full_head, caps.needs_tracking) == ("one", False, True, False)
    assert spec.status == "reimplementation" and "stand-in" in spec.description.lower()
    assert "splatshot" in registry.specs["trainers"]
    ref = ViewRef("901", "EXP-1-head", 0, "222200037")
    reenact = EvalUnit("r", "self_reenactment", "901", (ref,), (ref,))
    novel = EvalUnit("n", "novel_view", "901", (ref,), (ref,))
    assert "animatable" in capability_skip(caps, reenact)
    assert capability_skip(caps, novel) is None
    assert all(w in registry.specs["weights"] for w in spec.weights)
