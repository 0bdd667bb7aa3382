"""The field's flicker metrics for colorized clips, and per-frame checks that steadiness is not bought by going gray.

* **Warping error** (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): optical flow is computed on the
  *input* frames (the gray clip, the same for every method compared); frame t-1 of the output is warped to t, and
  the squared RGB difference (RGB in [0, 1]) is averaged over the pixels the forward-backward check keeps, then over
  t. The true colour clip's own value is the floor (flow is not perfect). Scored along two flows: Farneback's
  (``warping_error``: a flow `VideoColorizationPipeline` does not follow, so its own flow errors are not forgiven)
  and DIS, the pipeline's own (``warping_error_dis``).
* **CDC**, colour distribution consistency (Liu et al., TCVC): the Jensen-Shannon divergence of per-channel RGB
  histograms between frames t and t+1, t+2 and t+4, averaged over channels, t and the three gaps.
* **Colourfulness** (Hasler & Süsstrunk) per frame, and **lightness kept**: mean |L_out - L_in| in Lab units.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..color import L_SCALE, rgb_to_lab
from ..optical_flow import flow_with_confidence, warp
from .metrics import colorfulness, jensen_shannon

CDC_GAPS = (1, 2, 4)
CDC_BINS = 64


@dataclass(frozen=True)
class ClipFlow:
    """The flows of a clip's input frames: for each t >= 1, frame t from frame t-1 (H, W, 2) and its mask (H, W)."""

    flows: list[np.ndarray]
    masks: list[np.ndarray]


def gray_levels(rgb: np.ndarray) -> np.ndarray:
    """8-bit gray (H, W) of an RGB frame (H, W, 3) uint8 (the L channel of Lab, 0..100 mapped to 0..255)."""
    lightness, _ = rgb_to_lab(torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255)
    return ((lightness[0, 0].numpy() + 1) * 127.5).clip(0, 255).round().astype(np.uint8)


# Score key -> the flow estimator its warping error follows.
WARPING_ERRORS = {"warping_error": "farneback", "warping_error_dis": "dis"}


def clip_flow(frames: list[np.ndarray], estimator: str = "farneback") -> ClipFlow:
    """The `ClipFlow` of input frames (each (H, W, 3) uint8, colour or gray: flow runs on their gray levels) by
    ``estimator`` (a key of `colorize.optical_flow.FLOW_ESTIMATORS`)."""
    grays = [gray_levels(frame) for frame in frames]
    pairs = [flow_with_confidence(grays[t], grays[t - 1], estimator) for t in range(1, len(grays))]
    return ClipFlow([flow for flow, _ in pairs], [mask for _, mask in pairs])


def clip_flows(frames: list[np.ndarray]) -> dict[str, ClipFlow]:
    """Estimator -> `ClipFlow` of input frames, for each flow of `WARPING_ERRORS`."""
    return {estimator: clip_flow(frames, estimator) for estimator in WARPING_ERRORS.values()}


def as_float(frames) -> list[torch.Tensor]:
    """Frames (H, W, 3) uint8 as tensors (1, 3, H, W) in [0, 1]."""
    return [torch.tensor(np.asarray(frame)).permute(2, 0, 1)[None].float() / 255 for frame in frames]


def warping_error(frames: list[np.ndarray], flow: ClipFlow) -> float:
    """Mean over t of the occlusion-masked mean squared difference between output frame t and frame t-1 warped
    to t along the input's ``flow``."""
    rgb = as_float(frames)
    errors = []
    for t in range(1, len(rgb)):
        moved = warp(rgb[t - 1], torch.from_numpy(flow.flows[t - 1]).permute(2, 0, 1)[None])
        mask = torch.from_numpy(flow.masks[t - 1])
        squared = ((rgb[t] - moved) ** 2).sum(dim=1)[0]
        errors.append(float(squared[mask].mean()) if mask.any() else 0.0)
    return float(np.mean(errors)) if errors else 0.0


def channel_histograms(frame: np.ndarray, bins: int = CDC_BINS) -> np.ndarray:
    """Normalised histograms (3, bins) of an RGB frame's R, G and B levels."""
    return np.stack([np.bincount(frame[..., c].ravel().astype(np.int64) * bins // 256, minlength=bins) / frame[..., c].size for c in range(3)])


def color_distribution_consistency(frames: list[np.ndarray], gaps=CDC_GAPS) -> float:
    """CDC: mean JSD of the per-channel RGB histograms of frames t and t + gap, over channels, t and ``gaps``."""
    histograms = [torch.from_numpy(channel_histograms(np.asarray(frame))) for frame in frames]
    per_gap = []
    for gap in gaps:
        values = [jensen_shannon(histograms[t][c], histograms[t + gap][c])
                  for t in range(len(histograms) - gap) for c in range(3)]
        if values:
            per_gap.append(np.mean(values))
    return float(np.mean(per_gap)) if per_gap else 0.0


def mean_colorfulness(frames: list[np.ndarray]) -> float:
    """Mean Hasler-Süsstrunk colourfulness of the frames."""
    return float(np.mean([colorfulness(rgb).item() for rgb in as_float(frames)]))


def lightness_change(frames: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """Mean |L_out - L_in| in Lab units (0..100) over all frames' pixels."""
    changes = [(rgb_to_lab(out)[0] - rgb_to_lab(ref)[0]).abs().mean().item() * L_SCALE
               for out, ref in zip(as_float(frames), as_float(inputs))]
    return float(np.mean(changes))


def clip_scores(frames: list[np.ndarray], inputs: list[np.ndarray], flows: dict[str, ClipFlow]) -> dict[str, float]:
    """Warping errors (one per flow of `WARPING_ERRORS`; ``flows`` from `clip_flows` of the inputs), CDC,
    colourfulness and lightness change of colorized ``frames`` from the (gray) ``inputs``."""
    return {
        **{key: warping_error(frames, flows[estimator]) for key, estimator in WARPING_ERRORS.items()},
        "cdc": color_distribution_consistency(frames),
        "colorfulness": mean_colorfulness(frames),
        "lightness_change": lightness_change(frames, inputs),
    }
