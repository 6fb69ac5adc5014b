"""DreamSim on stand-in weights in DreamSim's own cache layout (random ViT-B/16 backbones, LoRA adapter)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from standins import install_dreamsim_standin


@pytest.fixture(scope="module")
def dreamsim_metric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    home = tmp_path_factory.mktemp("dreamsim_home")
    install_dreamsim_standin(home / "weights")
    previous = os.environ["HARNESS_HOME"]
    os.environ["HARNESS_HOME"] = str(home)
    from harness.scoring.dreamsim_metric import DreamSim

    before = torch.hub.get_dir()
    metric = DreamSim("cpu")
    assert torch.hub.get_dir() == before  # DreamSim's loader must not move torch.hub for the whole process
    metric.home = home
    yield metric
    os.environ["HARNESS_HOME"] = previous


def _images(n: int, seed: int, size: tuple[int, int] = (96, 80)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, *size), generator=generator)


def test_dreamsim_equals_the_library_model_on_the_same_crops(dreamsim_metric) -> None:
    from dreamsim import dreamsim

    from harness.scoring.dreamsim_metric import square_box, to_model_input
    from harness.scoring.sources import DREAMSIM_DIR
    from harness.scoring.torchhub import torch_hub_dir

    cache = dreamsim_metric.home / "weights" / DREAMSIM_DIR
    with torch_hub_dir(cache):
        library, preprocess = dreamsim(pretrained=True, device="cpu", cache_dir=str(cache),
                                       dreamsim_type="ensemble")
    gt, pred = _images(2, 0), _images(2, 1)
    boxes = [square_box(None, 96, 80)] * 2
    # The crop goes through DreamSim's own preprocessing (8-bit PIL image, its resize): bitwise the same input.
    from PIL import Image

    from harness.scoring.dreamsim_metric import crop_square

    crop = (crop_square(gt[0], boxes[0]).permute(1, 2, 0).double().numpy() * 255).round().astype(np.uint8)
    assert torch.equal(to_model_input(gt[:1], boxes[:1]), preprocess(Image.fromarray(crop)).float())
    with torch.no_grad():
        expected = library(to_model_input(pred, boxes), to_model_input(gt, boxes))
    np.testing.assert_allclose(dreamsim_metric(pred, gt).values, expected.numpy(), atol=1e-5)
    assert np.abs(dreamsim_metric(gt, gt).values).max() < 1e-6


def test_dreamsim_batch_size_changes_nothing(dreamsim_metric) -> None:
    gt, pred = _images(32, 2, (48, 48)), _images(32, 3, (48, 48))
    whole = dreamsim_metric(pred, gt).values
    single = np.concatenate([dreamsim_metric(pred[i:i + 1], gt[i:i + 1]).values for i in range(32)])
    np.testing.assert_allclose(whole, single, atol=1e-5)


def test_the_same_square_crop_is_cut_from_both_images(dreamsim_metric) -> None:
    """Only pixels outside the ground truth's head box differ: the distance is 0. Inside: it is not."""
    from harness.scoring.dreamsim_metric import crop_square, square_box

    gt = _images(1, 4, (120, 100))
    alpha = torch.zeros(120, 100)
    alpha[30:70, 40:70] = 1.0  # head box 40 high, 30 wide -> square of side 44 centred on (50, 55)
    assert square_box(alpha, 120, 100) == (28, 33, 44)
    outside = gt.clone()
    outside[..., :25, :] = 0.0
    outside[..., :, 80:] = 0.0
    assert dreamsim_metric(outside, gt, alpha=[alpha]).values[0] < 1e-6
    inside = gt.clone()
    inside[..., 40:60, 45:65] = 0.0
    assert dreamsim_metric(inside, gt, alpha=[alpha]).values[0] > 1e-4
    # A box that leaves the frame is filled with white for both images alike.
    corner = crop_square(gt[0], (-10, -10, 30))
    assert corner.shape == (3, 30, 30) and (corner[:, :10, :] == 1.0).all()


def test_dreamsim_reference_free_against_the_input_photo(dreamsim_metric) -> None:
    photo = _images(1, 5, (64, 64))
    values = dreamsim_metric.against_photo(torch.cat([photo, _images(2, 6, (64, 64))]), photo).values
    assert values[0] < 1e-6 and (values[1:] > 1e-4).all()
