"""Colour hints: a few points whose colour the user knows, carried through the region each belongs to.

A hint is ``(x, y, color)``: pixel coordinates in the input image (x to the right, y down, from 0) and a
colour, an RGB tuple in 0..255 or any colour string PIL knows (``"#d02020"``, ``"yellow"``). Only the
colour's chroma (Lab a, b) is used: the photo keeps its own lightness.

How the pipeline honours hints, without any training (`hint_map` + `ColorizationPipeline.pull_towards_hints`):

1. Each hint is spread over the pixels it plausibly belongs to, at the model's working resolution: a
   weight that starts at 1 on the hint's pixel and passes from pixel to neighbour, multiplied at each
   step by ``decay`` and by how alike the two pixels' lightness is (``exp(-(dL / sigma)^2)``), so it
   fills a petal of even tone and stops at its edges (`spread`).
2. At every denoising step the model's estimate of the clean chroma is pulled towards the hints' chroma
   with that weight: exactly onto it at the hint pixels, partly around them. The model fills in the
   rest, so a hint also steers what it does not touch (the flower's other petals).
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor

from .color import L_SCALE, rgb_to_lab

# Spreading, in the working resolution's pixels: the weight falls to about a third after 15 steps of
# even tone, and to a tenth across a lightness edge of 1.5 * SIGMA L units (0..100).
DECAY = 0.93
SIGMA = 6.0
SHARPNESS = 8  # the power of the weights when hints that reach one pixel are mixed


def parse_color(color) -> tuple[int, int, int]:
    """An RGB tuple (0..255) from a tuple / list, a ``#rrggbb`` string or a colour name; ValueError if unknown."""
    if isinstance(color, str):
        try:
            return ImageColor.getrgb(color.strip())[:3]
        except ValueError:
            raise ValueError(f"unknown colour '{color}' (use #rrggbb or a colour name such as 'red')") from None
    values = tuple(color)
    if len(values) not in (3, 4) or not all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in values[:3]):
        raise ValueError(f"a colour must be (r, g, b) with values in 0..255, got {color!r}")
    return tuple(int(round(v)) for v in values[:3])


def hint_chroma(color) -> torch.Tensor:
    """Normalised Lab chroma (2,) of a hint colour."""
    rgb = torch.tensor(parse_color(color), dtype=torch.float32).view(1, 3, 1, 1) / 255.0
    return rgb_to_lab(rgb)[1].view(2)


def check_hints(hints: Sequence, width: int, height: int) -> list[tuple[float, float, torch.Tensor]]:
    """``hints`` for one image of ``width`` x ``height`` as (x, y, chroma); ValueError for a malformed hint, an
    unknown colour or a point outside the image."""
    checked = []
    for hint in hints:
        if not isinstance(hint, (tuple, list)) or len(hint) != 3:
            raise ValueError(f"a hint is (x, y, color), got {hint!r}")
        x, y, color = hint
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"hint at ({x}, {y}) is outside the {width}x{height} image")
        checked.append((float(x), float(y), hint_chroma(color)))
    return checked


def parse_hint(text: str) -> tuple[float, float, tuple[int, int, int]]:
    """``"X,Y,COLOR"`` (e.g. ``"120,80,#d02020"`` or ``"40,200,yellow"``) as a hint; ValueError if malformed."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise ValueError(f"a hint is X,Y,COLOR (e.g. 120,80,#d02020), got '{text}'")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"a hint's X and Y are pixel coordinates, got '{text}'") from None
    return x, y, parse_color(parts[2])


def hints_from_image(image: Image.Image) -> list[tuple[int, int, tuple[int, int, int]]]:
    """Hints from an RGBA image the size of the photo: each opaque pixel (alpha >= 128) is a hint of its colour."""
    if "A" not in image.getbands():
        raise ValueError("a hint image needs transparency (RGBA): its opaque pixels are the hints")
    pixels = np.asarray(image.convert("RGBA"))
    rows, columns = np.nonzero(pixels[..., 3] >= 128)
    return [(int(x), int(y), tuple(int(v) for v in pixels[y, x, :3])) for y, x in zip(rows, columns)]


def hints_per_image(hints, num_images: int) -> list[list]:
    """``hints`` as one list per input image: a flat list of (x, y, color) applies to a single image; a list of
    such lists gives each image its own (empty lists allowed)."""
    hints = list(hints or [])
    if not hints:
        return [[] for _ in range(num_images)]
    nested = bool(hints) and all(isinstance(item, (list, tuple)) and (not item or isinstance(item[0], (list, tuple)))
                                 for item in hints)
    if not nested:
        if num_images != 1:
            raise ValueError(f"{num_images} images need one list of hints each (a list of {num_images} lists)")
        return [hints]
    if len(hints) != num_images:
        raise ValueError(f"got hint lists for {len(hints)} images, but {num_images} images")
    return [list(item) for item in hints]


def spread(seeds: torch.Tensor, lightness: torch.Tensor, decay: float | None = None, sigma: float = SIGMA) -> torch.Tensor:
    """Edge-aware spreading of hint weights (K, 1, h, w), 1 at each hint's pixel, over working-resolution L
    (1, 1, h, w) in [-1, 1]: each pixel takes the best of its 8 neighbours' weight times ``decay`` (default
    `DECAY`; 0: no spreading) times their lightness affinity, until nothing changes (at most h + w rounds)."""
    decay = DECAY if decay is None else decay
    lab_lightness = (lightness + 1.0) * L_SCALE
    padded_l = F.pad(lab_lightness, (1, 1, 1, 1), mode="replicate")
    height, width = lightness.shape[-2:]
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    # affinity[s]: how much a pixel takes from its neighbour in direction s (same for every hint)
    affinity = torch.stack([
        decay * torch.exp(-((lab_lightness - padded_l[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]) / sigma) ** 2)
        for dy, dx in shifts
    ])
    weights = seeds
    for _ in range(height + width):
        padded = F.pad(weights, (1, 1, 1, 1))
        incoming = torch.stack([padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in shifts])
        updated = torch.maximum(weights, (incoming * affinity).amax(dim=0))
        if torch.equal(updated, weights):
            break
        weights = updated
    return weights


def hint_map(hints: list[tuple[float, float, torch.Tensor]], full_size: tuple[int, int],
             lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked hints of an image of ``full_size`` (H, W), as maps at the working resolution of ``lightness``
    (1, 1, h, w): the hinted chroma (1, 2, h, w), each pixel's mean of the hints reaching it weighted by
    weight ** SHARPNESS, and the
    weight (1, 1, h, w) with which the sample is pulled towards it (1 on a hint's own pixel)."""
    height, width = lightness.shape[-2:]
    cells: dict[tuple[int, int], list[torch.Tensor]] = {}  # hints in one working pixel act as one (their mean)
    for x, y, chroma in hints:
        cell = (min(int(y * height / full_size[0]), height - 1), min(int(x * width / full_size[1]), width - 1))
        cells.setdefault(cell, []).append(chroma)
    seeds = torch.zeros(len(cells), 1, height, width)
    for k, (row, column) in enumerate(cells):
        seeds[k, 0, row, column] = 1.0
    weights = spread(seeds, lightness.float().cpu())  # (K, 1, h, w)
    chroma = torch.stack([torch.stack(values).mean(dim=0) for values in cells.values()]).view(-1, 2, 1, 1)
    # Where several hints reach a pixel, the nearest (most strongly reaching) dominates: on its own pixel a
    # hint's weight is 1, so its colour is what the pixel gets.
    sharp = weights**SHARPNESS
    known = (sharp * chroma).sum(dim=0, keepdim=True) / sharp.sum(dim=0, keepdim=True).clamp_min(1e-12)
    return known, weights.amax(dim=0, keepdim=True)
