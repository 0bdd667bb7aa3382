"""Colorization quality metrics, on RGB tensors (N, 3, H, W) in [0, 1]."""

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

# PSNR of two identical images is infinite; it is capped here so averages stay finite.
MAX_PSNR = 100.0


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair (torchmetrics, data range 1), capped at `MAX_PSNR`: shape (N,)."""
    values = peak_signal_noise_ratio(
        prediction.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return values.clamp(max=MAX_PSNR)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of each image, on RGB scaled to 0..255: shape (N,).

    0 for a gray image; about 30 is "moderately colourful", above 100 "extremely colourful".
    """
    red, green, blue = (rgb.float() * 255.0).unbind(dim=1)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean
