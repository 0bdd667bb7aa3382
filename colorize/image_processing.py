"""Image tensors in and out of the pipeline: resizing, and picking the denoising steps to show."""

import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to ``size`` = (h, w), antialiased when shrinking."""
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def pick_frames(frames: list, count: int) -> list:
    """``count`` frames spread evenly over ``frames``, always ending with the last one."""
    if len(frames) <= count:
        return list(frames)
    if count == 1:  # the last alone (a one-step sample beside longer ones)
        return [frames[-1]]
    last = len(frames) - 1
    return [frames[round(i * last / (count - 1))] for i in range(count)]
