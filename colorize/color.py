"""RGB <-> CIE Lab conversion and the scalings the model works in.

The colour maths is kornia's (`kornia.color.rgb_to_lab` / `lab_to_rgb`, sRGB with D65 white); this
module only fixes how Lab is scaled before it reaches the UNet:

* ``L`` (0..100) is mapped to [-1, 1]: ``L_norm = L / L_SCALE - 1`` with ``L_SCALE = 50``.
* ``a``, ``b`` are divided by ``AB_SCALE = 110``. The sRGB gamut spans about a in [-86, 98] and
  b in [-108, 94], so ``ab_norm`` lies in about [-1, 1].

The diffusion model sees ``ab_norm * chroma_scale`` (see `ColorizationPipeline`): natural photos
have ``ab_norm`` with a standard deviation far below 1, and the noise schedules assume data of
about unit variance, just as Stable Diffusion multiplies its latents by ``vae.config.scaling_factor``.
"""

import kornia
import torch

L_SCALE = 50.0
AB_SCALE = 110.0
# ab_norm of the flowers training photos has an RMS of 0.227; multiplying by 1 / 0.227 feeds the
# UNet chroma of about unit variance. Saved per pipeline (model_index.json), so fine-tunes keep it.
DEFAULT_CHROMA_SCALE = 4.4


# Full-resolution conversions of photos over this many pixels (16.8 MP) run on bands of rows (`in_row_bands`):
# their temporaries (about 90 bytes a pixel in kornia's maths) stay bounded whatever the photo's size. Smaller
# photos are converted whole: band edges can move a pixel's value by a float rounding step (vectorised and scalar
# maths differ in the last bit), so up to this size outputs are exactly those of whole-image conversions.
BAND_PIXELS = 2**24


def in_row_bands(function, *images: torch.Tensor, band_pixels: int = BAND_PIXELS):
    """``function(*images)`` for a pointwise colour conversion of images (..., C, H, W) of one height and width,
    computed band by band of rows and put back together along H (a tuple result: each part). Up to
    ``band_pixels`` pixels it is ``function(*images)`` itself."""
    height, width = images[0].shape[-2:]
    rows = max(1, band_pixels // width)
    if rows >= height:
        return function(*images)
    parts = [function(*(image[..., start : start + rows, :] for image in images)) for start in range(0, height, rows)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(band, dim=-2) for band in zip(*parts))
    return torch.cat(parts, dim=-2)


def rgb_to_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split RGB in [0, 1], shaped (..., 3, H, W), into ``(L_norm, ab_norm)``: (..., 1, H, W) and (..., 2, H, W)."""
    lab = kornia.color.rgb_to_lab(rgb.float().clamp(0, 1))
    lightness = lab[..., :1, :, :] / L_SCALE - 1.0
    chroma = lab[..., 1:, :, :] / AB_SCALE
    return lightness, chroma


def lab_to_rgb(lightness: torch.Tensor, chroma: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Inverse of `rgb_to_lab`: normalised L and ab back to RGB (clipped to [0, 1] unless ``clip=False``)."""
    lab = torch.cat([(lightness.float() + 1.0) * L_SCALE, chroma.float() * AB_SCALE], dim=-3)
    return kornia.color.lab_to_rgb(lab, clip=clip)


def fit_chroma_to_gamut(lightness: torch.Tensor, chroma: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Shrink ab towards gray, pixel by pixel, just enough for L + ab to be a valid sRGB colour.

    Clipping RGB instead would change the lightness (and hue) of over-saturated pixels; shrinking
    the chroma keeps L exactly. Works on (N, 1, H, W) and (N, 2, H, W); bisection on the shrink
    factor, only for the pixels that are out of gamut.
    """
    rgb = lab_to_rgb(lightness, chroma, clip=False)
    outside = ((rgb < 0) | (rgb > 1)).any(dim=1).flatten()
    if not outside.any():
        return chroma
    pixel_lightness = lightness.permute(0, 2, 3, 1).reshape(-1, 1)[outside]
    pixel_chroma = chroma.permute(0, 2, 3, 1).reshape(-1, 2)[outside]
    low = torch.zeros_like(pixel_lightness)  # gray: always inside the gamut
    high = torch.ones_like(pixel_lightness)
    for _ in range(iterations):
        middle = (low + high) / 2
        candidate = lab_to_rgb(pixel_lightness.T[None, :, :, None], (pixel_chroma * middle).T[None, :, :, None], clip=False)
        inside = ((candidate >= 0) & (candidate <= 1)).all(dim=1).reshape(-1, 1)
        low = torch.where(inside, middle, low)
        high = torch.where(inside, high, middle)
    fitted = chroma.permute(0, 2, 3, 1).reshape(-1, 2).clone()
    fitted[outside] = pixel_chroma * low
    return fitted.reshape(chroma.shape[0], *chroma.shape[2:], 2).permute(0, 3, 1, 2)


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """The L channel of ``rgb`` shown as a 3-channel gray RGB image: what the model starts from."""
    lightness, chroma = rgb_to_lab(rgb)
    return lab_to_rgb(lightness, torch.zeros_like(chroma))
