"""Colorization quality metrics, per image, on RGB tensors (N, 3, H, W) in [0, 1].

- `psnr`, `ssim`: torchmetrics, data range 1, on RGB.
- `auc`: Zhang, Isola & Efros (2016), "Colorful Image Colorization": the fraction of pixels whose ab
  error (Euclidean, in Lab units) is within a threshold, for thresholds 0..150, averaged over the
  thresholds: the area under that curve normalised to [0, 1] (1 = every pixel's colour exact).
- `colorfulness`: Hasler & Süsstrunk (2003), on RGB in 0..255; 0 for a gray image.
"""

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .color import AB_SCALE, rgb_to_lab

# PSNR of two identical images is infinite; it is capped here so averages stay finite.
MAX_PSNR = 100.0
AUC_MAX_THRESHOLD = 150  # Lab units, as in Zhang et al. 2016
SSIM_KERNEL_SIZE = 11


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, capped at `MAX_PSNR`: shape (N,)."""
    values = peak_signal_noise_ratio(
        prediction.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return values.clamp(max=MAX_PSNR)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each image pair (Gaussian window 11, sigma 1.5; narrower for images under 11 px): (N,)."""
    kernel = min(SSIM_KERNEL_SIZE, min(prediction.shape[-2:]))
    kernel -= 1 - kernel % 2  # odd
    return structural_similarity_index_measure(
        prediction.float(), target.float(), data_range=1.0, reduction="none",
        kernel_size=kernel, sigma=1.5 * kernel / SSIM_KERNEL_SIZE,
    )


def ab_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel Euclidean distance between the ab of two RGB images, in Lab units: (N, H, W)."""
    _, predicted_chroma = rgb_to_lab(prediction)
    _, target_chroma = rgb_to_lab(target)
    return (predicted_chroma - target_chroma).mul(AB_SCALE).pow(2).sum(dim=1).sqrt()


def auc(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Area under the cumulative ab-error curve for thresholds 0, 1, ..., 150, in [0, 1]: (N,)."""
    error = ab_error(prediction, target).flatten(1)
    # error <= t  <=>  ceil(error) <= t for integer t: count pixels per ceil(error) and accumulate.
    bins = error.ceil().clamp(max=AUC_MAX_THRESHOLD + 1).long()
    counts = torch.zeros(error.shape[0], AUC_MAX_THRESHOLD + 2).scatter_add_(1, bins, torch.ones_like(error))
    within = counts.cumsum(dim=1)[:, : AUC_MAX_THRESHOLD + 1] / error.shape[1]
    return within.mean(dim=1)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of each image: (N,).

    0 for a gray image; about 30 is "moderately colourful", above 100 "extremely colourful".
    """
    red, green, blue = (rgb.float() * 255.0).unbind(dim=1)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean
