"""Metrics against values computed by hand on tiny images."""

import math

import pytest
import torch

from colorize.color import AB_SCALE, rgb_to_gray, rgb_to_lab
from colorize.metrics import MAX_PSNR, ab_error, auc, colorfulness, psnr, ssim


def test_identical_images_score_perfectly_and_finitely():
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(psnr(image, image), torch.full((2,), MAX_PSNR))
    assert torch.allclose(ssim(image, image), torch.ones(2))
    assert torch.allclose(auc(image, image), torch.ones(2))


def test_psnr_of_a_uniform_offset():
    target = torch.full((1, 3, 4, 4), 0.5)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)


def test_ssim_handles_images_smaller_than_its_window():
    small = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    assert ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(small, 1 - small).item() < 0.5


def test_auc_of_one_pixel_with_a_known_ab_error():
    target = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1)
    gray = rgb_to_gray(target)
    error = (rgb_to_lab(target)[1].mul(AB_SCALE).pow(2).sum().sqrt()).item()
    assert ab_error(gray, target).item() == pytest.approx(error, abs=0.05)
    # within the threshold t for t = ceil(error) ... 150: that many of the 151 thresholds
    expected = (150 - math.ceil(error) + 1) / 151
    assert auc(gray, target).item() == pytest.approx(expected, abs=1 / 151)


def test_auc_is_the_fraction_of_pixels_right_when_the_rest_is_far_off():
    green, magenta = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])  # ab about 230 apart
    target = torch.stack([green, green, green, green], dim=1).view(1, 3, 2, 2)
    prediction = torch.stack([green, green, magenta, magenta], dim=1).view(1, 3, 2, 2)
    assert auc(prediction, target).item() == pytest.approx(0.5)


def test_colorfulness_by_hand():
    gray = rgb_to_gray(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2)))
    assert colorfulness(gray).item() == pytest.approx(0.0, abs=0.05)
    # two pixels, pure red and black: rg = (255, 0), yb = (127.5, 0)
    red_black = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    spread = math.hypot(127.5, 63.75)  # std of rg, std of yb
    assert colorfulness(red_black).item() == pytest.approx(spread + 0.3 * spread, rel=1e-5)
