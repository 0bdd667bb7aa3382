import torch

from colorize.color import AB_SCALE, fit_chroma_to_gamut, lab_to_rgb, rgb_to_gray, rgb_to_lab


def test_lab_round_trip_recovers_rgb():
    rgb = torch.rand(4, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    lightness, chroma = rgb_to_lab(rgb)
    assert lightness.shape == (4, 1, 17, 23) and chroma.shape == (4, 2, 17, 23)
    assert torch.allclose(lab_to_rgb(lightness, chroma), rgb, atol=1e-4)


def test_normalised_ranges_cover_the_srgb_gamut():
    # The eight corners of the RGB cube hold the extreme L, a and b values.
    corners = torch.tensor([[r, g, b] for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)])
    lightness, chroma = rgb_to_lab(corners.T.reshape(3, 8, 1))
    assert lightness.min() == -1.0 and abs(lightness.max().item() - 1.0) < 1e-4
    assert chroma.abs().max() <= 1.0
    assert chroma.abs().max() > 0.9  # the scale is tight, not wasted


def test_gray_has_no_chroma_and_keeps_lightness():
    rgb = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    gray = rgb_to_gray(rgb)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-4) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-4)
    gray_lightness, gray_chroma = rgb_to_lab(gray)
    assert gray_chroma.abs().max() * AB_SCALE < 0.05
    assert torch.allclose(gray_lightness, rgb_to_lab(rgb)[0], atol=1e-3)


def test_fit_chroma_to_gamut_keeps_lightness_and_in_gamut_colours():
    generator = torch.Generator().manual_seed(2)
    lightness = torch.rand(2, 1, 9, 7, generator=generator) * 2 - 1
    chroma = (torch.rand(2, 2, 9, 7, generator=generator) * 2 - 1) * 1.5  # mostly far out of gamut
    fitted = fit_chroma_to_gamut(lightness, chroma)
    rgb = lab_to_rgb(lightness, fitted, clip=False)
    assert rgb.min() > -1e-3 and rgb.max() < 1 + 1e-3
    assert torch.allclose(rgb_to_lab(rgb.clamp(0, 1))[0], lightness, atol=2e-3)
    # only shrunk, never rotated or grown
    ratio = fitted / chroma
    assert torch.allclose(ratio[:, 0], ratio[:, 1], atol=1e-5) and ratio.max() <= 1 + 1e-6
    # colours already inside the gamut are untouched
    inside_l, inside_ab = rgb_to_lab(torch.rand(1, 3, 5, 5, generator=generator))
    assert torch.equal(fit_chroma_to_gamut(inside_l, inside_ab), inside_ab)
