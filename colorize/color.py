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


def rgb_to_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split RGB in [0, 1], shaped (..., 3, H, W), into ``(L_norm, ab_norm)``: (..., 1, H, W) and (..., 2, H, W)."""
    lab = kornia.color.rgb_to_lab(rgb.float().clamp(0, 1))
    lightness = lab[..., :1, :, :] / L_SCALE - 1.0
    chroma = lab[..., 1:, :, :] / AB_SCALE
    return lightness, chroma


def lab_to_rgb(lightness: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_lab`: normalised L and ab back to RGB in [0, 1] (out-of-gamut colours are clipped)."""
    lab = torch.cat([(lightness.float() + 1.0) * L_SCALE, chroma.float() * AB_SCALE], dim=-3)
    return kornia.color.lab_to_rgb(lab, clip=True)


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """The L channel of ``rgb`` shown as a 3-channel gray RGB image: what the model starts from."""
    lightness, chroma = rgb_to_lab(rgb)
    return lab_to_rgb(lightness, torch.zeros_like(chroma))
