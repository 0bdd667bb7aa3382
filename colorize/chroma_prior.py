"""`ChromaPrior`: a small regression head that predicts a photo's chroma from the image encoder's maps, the
starting point the diffusion refines (predict-and-refine).

Sampled from pure noise, the UNet at 32 px places each flower's colour only as well as it learned to from 3k
photos: a daisy's yellow centre spreads over its petals. Regressing ab directly from the frozen encoder's
stride-32 and stride-16 maps names the flower from its colours more often (benchmarks/README.md), but gives
one flat, average colouring. The pipeline therefore noises the prior to ``strength`` of the schedule and
lets the diffusion refine it (SDEdit, Meng et al. 2022): the prior's colours, the diffusion's detail and
variety.

- Input: `colorize.image_encoder.BackboneMaps.stacked` (the stride-32 map upsampled to stride 16 and the stride-16 map,
  1280 + 112 channels), whatever the encoder's own ``fine_features``.
- Output: ab in the UNet's space (normalised ab times the pipeline's ``chroma_scale``) at stride 16, times
  ``gain``.
- Two kinds, trained by `train_chroma_prior.py`:
  - ``bins_per_axis=0``: a regression, mean squared error to the photos' ab averaged to the map's cells. Its
    colours are the average of the plausible ones: a daisy's white petals get some of the yellow that petals of
    that shape sometimes have, and the gain that gives the colours back tints them further.
  - ``bins_per_axis=Q``: for each cell, a distribution over Q x Q ab bins (soft cross-entropy to the cell's
    histogram), decoded by the annealed mean at ``temperature`` (Zhang et al. 2016, "Colorful Image
    Colorization"): the mean of the sharpened distribution, near its mode where one colour dominates (white
    petals stay white) and the average where none does.
"""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .image_encoder import FEATURE_CHANNELS, FINE_CHANNELS

# Pixels per map cell, per side, at which `bin_targets` counts a photo's colours: enough for a histogram, cheap.
PIXELS_PER_CELL = 4

# The strength a prior starts sampling from unless told otherwise (a one-pass distilled UNet saves its own).
DEFAULT_STRENGTH = 0.8


def bin_centers(bins_per_axis: int) -> torch.Tensor:
    """The normalised (a, b) of each of the Q x Q bins that split [-1, 1]^2 evenly: (2, Q * Q), a-major."""
    axis = (torch.arange(bins_per_axis) + 0.5) / bins_per_axis * 2 - 1
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)])


def bin_targets(chroma: torch.Tensor, size, bins_per_axis: int) -> torch.Tensor:
    """Normalised ab (N, 2, H, W) -> each cell's histogram over the Q x Q bins on a ``size`` = (h, w) grid,
    (N, Q * Q, h, w), summing to 1 per cell (the photo is first area-resized to `PIXELS_PER_CELL` pixels a cell)."""
    h, w = size
    small = F.interpolate(chroma.float(), size=(h * PIXELS_PER_CELL, w * PIXELS_PER_CELL), mode="area")
    index = ((small.clamp(-1, 1 - 1e-6) + 1) / 2 * bins_per_axis).long()
    index = index[:, 0] * bins_per_axis + index[:, 1]
    one_hot = F.one_hot(index, bins_per_axis**2).permute(0, 3, 1, 2).float()
    return F.avg_pool2d(one_hot, PIXELS_PER_CELL)


class ChromaPrior(ModelMixin, ConfigMixin):
    r"""
    The chroma of a photo predicted from the image encoder's stacked maps, the starting point of refinement.

    Parameters:
        coarse_channels (`int`, defaults to 128): the 1x1 projection of the 1280 stride-32 channels.
        fine_channels (`int`, defaults to 64): the 1x1 projection of the 112 stride-16 channels.
        hidden_channels (`int`, defaults to 128): the 3x3 convolution between them and the output layer.
        gain (`float`, defaults to 1.5): the prediction is multiplied by it (chosen so that the outputs are about as
            colourful as the real photos).
        strength (`float`, defaults to 0.8): the pipeline's default ``strength``: how far along the noise schedule
            the refinement starts (1: from pure noise, the prior unused; 0: from the prior lightly noised to the
            last of the ``num_inference_steps``, refined by that one step).
        bins_per_axis (`int`, defaults to 0): 0, a regression of ab; Q > 0, a distribution over Q x Q ab bins per
            cell, decoded by the annealed mean.
        temperature (`float`, defaults to 0.25): the annealed mean's temperature (with bins): 1 is the
            distribution's mean, towards 0 its mode.
        chroma_scale (`float`, defaults to 4.4): the pipeline's ``chroma_scale`` (with bins): the decoded normalised
            ab times it is the UNet's space.
    """

    @register_to_config
    def __init__(
        self,
        coarse_channels: int = 128,
        fine_channels: int = 64,
        hidden_channels: int = 128,
        gain: float = 1.5,
        strength: float = DEFAULT_STRENGTH,
        bins_per_axis: int = 0,
        temperature: float = 0.25,
        chroma_scale: float = 4.4,
    ):
        super().__init__()
        if bins_per_axis < 0 or temperature <= 0:
            raise ValueError(f"bins_per_axis must be >= 0 and temperature > 0, got {bins_per_axis} and {temperature}.")
        outputs = bins_per_axis**2 if bins_per_axis else 2
        last_kernel = 1 if bins_per_axis else 3  # Q * Q outputs: a 3x3 layer trains about 3 times slower
        self.coarse = nn.Conv2d(FEATURE_CHANNELS, coarse_channels, kernel_size=1)
        self.fine = nn.Conv2d(FINE_CHANNELS, fine_channels, kernel_size=1)
        self.head = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(coarse_channels + fine_channels, hidden_channels, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_channels, outputs, kernel_size=last_kernel, padding=last_kernel // 2),
        )
        if bins_per_axis:
            self.register_buffer("centers", bin_centers(bins_per_axis) * chroma_scale, persistent=False)

    def regress(self, stacked: torch.Tensor) -> torch.Tensor:
        """What training fits, from stacked maps (N, 1280 + 112, h, w): ab in the UNet's space (N, 2, h, w), without
        the gain; with bins, the logits of each cell's distribution over them (N, Q * Q, h, w)."""
        stacked = stacked.to(self.dtype)
        coarse, fine = stacked[:, :FEATURE_CHANNELS], stacked[:, FEATURE_CHANNELS:]
        return self.head(torch.cat([self.coarse(coarse), self.fine(fine)], dim=1))

    def decode(self, output: torch.Tensor) -> torch.Tensor:
        """`regress`'s output as ab in the UNet's space (N, 2, h, w): the regression itself, or with bins the annealed
        mean, sum over bins of softmax(logits / temperature) times the bin's colour."""
        if not self.config.bins_per_axis:
            return output
        probabilities = F.softmax(output.float() / self.config.temperature, dim=1)
        return torch.einsum("nkhw,ck->nchw", probabilities, self.centers.float())

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """The prior: the decoded prediction times ``gain``."""
        return self.decode(self.regress(stacked)) * self.config.gain
