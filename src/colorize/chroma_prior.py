"""`ChromaPrior`: a small regression head that predicts a photo's chroma from the image encoder's maps, the
starting point the diffusion refines (predict-and-refine).

Sampled from pure noise, the UNet at 32 px places each flower's colour only as well as it learned to from 3k
photos: a daisy's yellow centre spreads over its petals. Regressing ab directly from the frozen encoder's
stride-32 and stride-16 maps names the flower from its colours more often (benchmarks/README.md), but gives
one flat, average colouring. The pipeline therefore noises the prior to ``strength`` of the schedule and
lets the diffusion refine it (SDEdit, Meng et al. 2022): the prior's colours, the diffusion's detail and
variety.

- Input: `ImageEncoder.stacked_features` (the stride-32 map upsampled to stride 16 and the stride-16 map,
  1280 + 112 channels), whatever the encoder's own ``fine_features``.
- Output: ab in the UNet's space (normalised ab times the pipeline's ``chroma_scale``) at stride 16, times
  ``gain``: the regression's colours are the average of the plausible ones, paler than any of them.
- Trained by `train_chroma_prior.py` (mean squared error to the photos' ab averaged to the map's cells).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .image_encoder import FEATURE_CHANNELS, FINE_CHANNELS


class ChromaPrior(ModelMixin, ConfigMixin):
    r"""
    Regression of ab from the image encoder's stacked maps, the starting point of refinement.

    Parameters:
        coarse_channels (`int`, defaults to 128): the 1x1 projection of the 1280 stride-32 channels.
        fine_channels (`int`, defaults to 64): the 1x1 projection of the 112 stride-16 channels.
        hidden_channels (`int`, defaults to 128): the 3x3 convolution between them and the 2 ab channels.
        gain (`float`, defaults to 1.5): the prediction is multiplied by it (1.5: the real photos' colourfulness,
            measured).
        strength (`float`, defaults to 0.8): the pipeline's default ``strength``: how far along the noise schedule
            the refinement starts (1: from pure noise, the prior unused; 0: from the prior lightly noised to the
            last of the ``num_inference_steps``, refined by that one step).
    """

    @register_to_config
    def __init__(
        self,
        coarse_channels: int = 128,
        fine_channels: int = 64,
        hidden_channels: int = 128,
        gain: float = 1.5,
        strength: float = 0.8,
    ):
        super().__init__()
        self.coarse = nn.Conv2d(FEATURE_CHANNELS, coarse_channels, kernel_size=1)
        self.fine = nn.Conv2d(FINE_CHANNELS, fine_channels, kernel_size=1)
        self.head = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(coarse_channels + fine_channels, hidden_channels, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_channels, 2, kernel_size=3, padding=1),
        )

    def regress(self, stacked: torch.Tensor) -> torch.Tensor:
        """The trained regression of stacked maps (N, 1280 + 112, h, w): ab in the UNet's space (N, 2, h, w),
        without the gain (what training fits)."""
        stacked = stacked.to(self.dtype)
        coarse, fine = stacked[:, :FEATURE_CHANNELS], stacked[:, FEATURE_CHANNELS:]
        return self.head(torch.cat([self.coarse(coarse), self.fine(fine)], dim=1))

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """The prior: the regression times ``gain``."""
        return self.regress(stacked) * self.config.gain
