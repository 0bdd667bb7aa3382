"""Picture grids for validation and reports: gray | colorized | truth rows, and denoising strips."""

import PIL.Image
import torch

from .color import in_row_bands, rgb_to_gray
from .image_io import pil_to_tensor
from .image_processing import pick_frames


def tensor_to_pil(rgb: torch.Tensor) -> PIL.Image.Image:
    """An RGB tensor (3, H, W) in [0, 1] as an 8-bit PIL image."""
    return PIL.Image.fromarray((rgb.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8"))


def gray_picture(image: PIL.Image.Image) -> PIL.Image.Image:
    """The gray version of a photo (its L channel, no chroma), as an RGB PIL image: the model's input."""
    return tensor_to_pil(in_row_bands(rgb_to_gray, pil_to_tensor(image)))


def _fit_height(image: PIL.Image.Image, height: int) -> PIL.Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.convert("RGB").resize((width, height), PIL.Image.Resampling.BICUBIC)


def make_grid(rows: list[list[PIL.Image.Image]], height: int = 128, gap: int = 2) -> PIL.Image.Image:
    """Paste rows of images (each scaled to ``height``) into one white-separated picture, left-aligned."""
    scaled = [[_fit_height(image, height) for image in row] for row in rows]
    widths = [sum(image.width for image in row) + gap * (len(row) - 1) for row in scaled]
    grid = PIL.Image.new("RGB", (max(widths), len(rows) * height + gap * (len(rows) - 1)), "white")
    for row_index, row in enumerate(scaled):
        x = 0
        for image in row:
            grid.paste(image, (x, row_index * (height + gap)))
            x += image.width + gap
    return grid


STRIP_FRAMES = 8  # denoising steps shown in a strip


def step_frames(intermediates: list, index: int = 0) -> list[PIL.Image.Image]:
    """Output ``index`` of a pipeline call after each step it kept: ``intermediates`` is the call's
    ``output.intermediates`` (one entry per step, holding PIL images or RGB tensors)."""
    return [frame if isinstance(frame, PIL.Image.Image) else tensor_to_pil(frame)
            for frame in (step[index] for step in intermediates)]


def denoising_strip(intermediates: list, index: int = 0, height: int = 128) -> PIL.Image.Image:
    """One row: output ``index`` of a pipeline call after `STRIP_FRAMES` evenly spaced denoising steps, noisiest
    first (``intermediates``: see `step_frames`)."""
    return make_grid([pick_frames(step_frames(intermediates, index), STRIP_FRAMES)], height=height)


def denoising_animation(intermediates: list, index: int = 0, max_height: int = 256) -> list[PIL.Image.Image]:
    """Output ``index`` of a pipeline call after every step it kept, at most ``max_height`` px high: the frames of
    an animation (``intermediates``: see `step_frames`)."""
    frames = step_frames(intermediates, index)
    scale = min(1.0, max_height / frames[0].height)
    size = (max(1, round(frames[0].width * scale)), max(1, round(frames[0].height * scale)))
    return [frame.resize(size, PIL.Image.Resampling.BICUBIC) for frame in frames]
