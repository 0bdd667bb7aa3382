"""The training objective: noise the chroma, predict the noise (or v) given L and the image features, score it.

Used by `train_colorization.py` only; inference (the pipeline) never imports it.
"""

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from .color import rgb_to_lab


def crop_features(projected: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Projected whole-photo features (N, C, fh, fw) sampled at training crops' ``grid`` (N, s, s, 2), made by
    `colorize.data.feature_grid`: (N, C, s, s), aligned with the crops as resizing-then-cropping would be."""
    return F.grid_sample(projected, grid.to(projected.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def diffusion_loss(
    unet,
    noise_scheduler: DDPMScheduler,
    rgb: torch.Tensor,
    chroma_scale: float,
    features: torch.Tensor | None = None,
    snr_gamma: float | None = None,
    image_embeds: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The training objective for a batch of RGB crops (N, 3, H, W) in [0, 1]: noise the scaled ab at random
    timesteps and score the UNet's prediction of the noise (or of v) given L (and the image encoder's
    ``features`` (N, C, H, W) and pooled ``image_embeds`` (N, D), for the UNet's class embedding, when given)
    by mean squared error.

    ``snr_gamma``: Min-SNR-gamma weighting (Hang et al. 2023), each sample's loss weighted by
    min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v-prediction, as in diffusers'
    training scripts. ``generator`` (on the batch's device) draws the noise and timesteps; default: the
    global random state."""
    lightness, chroma = rgb_to_lab(rgb)
    clean = chroma * chroma_scale
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device, generator=generator
    )
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    inputs = [lightness, noisy] if features is None else [lightness, noisy, features.to(noisy.dtype)]
    prediction = unet(torch.cat(inputs, dim=1), timesteps, class_labels=image_embeds).sample
    if noise_scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    snr = compute_snr(noise_scheduler, timesteps)
    weights = torch.minimum(snr, torch.full_like(snr, snr_gamma))
    weights = weights / snr if noise_scheduler.config.prediction_type == "epsilon" else weights / (snr + 1)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()
