"""Scoring video colorization methods on colour clips: each clip is turned gray, colorized by every method, and
scored against the true clip with `video_metrics` (warping error, CDC, colourfulness, lightness kept), with the
time each method took. Used by ``colorize evaluate-video`` and ``benchmarks/video_consistency.py``."""

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..image_processing import pick_frames
from ..pipeline_colorization import to_uint8
from .video_metrics import clip_flows, clip_scores

TRUTH = "truth"
# The stronger per-frame baseline: every frame a keyframe, all from one seed (a fresh seed per frame flickers more).
PER_FRAME = "per-frame, fixed seed"
VIDEO = "video (defaults)"
DEFAULT_METHODS = {PER_FRAME: {"keyframe_interval": 1}, VIDEO: {}}


@dataclass
class MethodResult:
    """One method on one clip: its frames (H, W, 3) uint8, scores, seconds and keyframes."""

    frames: list[np.ndarray]
    scores: dict[str, float]
    seconds: float = 0.0
    keyframes: list[int] = field(default_factory=list)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB frame (H, W, 3) uint8 as its gray version, still 3 channels."""
    return np.asarray(Image.fromarray(frame).convert("L").convert("RGB"))


def colorize_clip(pipe, gray_frames: list[np.ndarray], settings: dict, seed: int) -> tuple[list[np.ndarray], float, list[int]]:
    """(colour frames uint8, seconds, keyframes) of a `VideoColorizationPipeline` call with ``settings``; the
    setting ``{"seed_per_frame": True}`` colorizes each frame alone with seed + t (the naive per-frame colorizer)."""
    settings = dict(settings)
    start = time.perf_counter()
    if settings.pop("seed_per_frame", False):
        frames = [pipe([frame], keyframe_interval=1, generator=torch.Generator().manual_seed(seed + t), output_type="np",
                       **settings).frames[0] for t, frame in enumerate(gray_frames)]
        keyframes = list(range(len(gray_frames)))
    else:
        output = pipe(gray_frames, generator=torch.Generator().manual_seed(seed), output_type="np", **settings)
        frames, keyframes = list(output.frames), output.keyframes
    seconds = time.perf_counter() - start
    return [to_uint8(frame) for frame in frames], seconds, keyframes


def evaluate_clip(pipe, frames: list[np.ndarray], methods: dict[str, dict], seed: int = 0) -> dict[str, MethodResult]:
    """`MethodResult` per method (and ``"truth"``, the clip itself: the floor of the flicker metrics) on a colour
    clip ``frames`` (H, W, 3) uint8; the methods run one after another on the same gray frames."""
    gray = [to_gray(frame) for frame in frames]
    flows = clip_flows(gray)
    results = {TRUTH: MethodResult(frames, clip_scores(frames, frames, flows))}
    for name, settings in methods.items():
        colored, seconds, keyframes = colorize_clip(pipe, gray, settings, seed)
        results[name] = MethodResult(colored, clip_scores(colored, gray, flows), seconds, keyframes)
    return results


# Score key -> (column title, scale, format, shown as a ratio to the baseline).
COLUMNS = {
    "warping_error": ("warping error, Farneback flow (x 1e-3)", 1e3, ".3f", True),
    "warping_error_dis": ("warping error, DIS flow (x 1e-3)", 1e3, ".3f", True),
    "cdc": ("CDC (x 1e-3)", 1e3, ".2f", True),
    "colorfulness": ("colourfulness", 1, ".1f", True),
    "lightness_change": ("mean abs dL", 1, ".2f", False),
}


def summary_table(clips: dict[str, dict[str, MethodResult]], baseline: str = PER_FRAME) -> list[str]:
    """Markdown rows: each method's scores averaged over clips (and as ratios to ``baseline``'s), seconds per
    frame and keyframes; then one row per clip and method."""
    names = list(next(iter(clips.values())))
    mean = {name: {key: float(np.mean([clip[name].scores[key] for clip in clips.values()])) for key in COLUMNS} for name in names}
    seconds = {name: sum(clip[name].seconds for clip in clips.values()) / sum(len(clip[name].frames) for clip in clips.values())
               for name in names}
    header = "| {} | " + " | ".join(title for title, *_ in COLUMNS.values()) + " | s / frame | keyframes |"
    rule = "|---" * (len(COLUMNS) + 3) + "|"

    def cells(scores, name, base=None):
        out = []
        for key, (_, scale, fmt, as_ratio) in COLUMNS.items():
            ratio = f" ({scores[key] / base[key]:.2f}x)" if base and as_ratio and name not in (baseline, TRUTH) and base[key] else ""
            out.append(f"{scores[key] * scale:{fmt}}{ratio}")
        return out

    rows = [header.format("method"), rule]
    for name in names:
        if name == TRUTH:
            rows.append(f"| {name} | " + " | ".join(cells(mean[name], name)) + " | | |")
            continue
        time_ratio = f" ({seconds[name] / seconds[baseline]:.2f}x)" if baseline in seconds and name != baseline else ""
        keyframes = sum(len(clip[name].keyframes) for clip in clips.values())
        rows.append(f"| {name} | " + " | ".join(cells(mean[name], name, mean.get(baseline)))
                    + f" | {seconds[name]:.3f}{time_ratio} | {keyframes} |")
    rows += ["", header.format("clip | method"), rule + "---|"]
    for clip_name, clip in clips.items():
        for name, result in clip.items():
            per_frame = f"{result.seconds / len(result.frames):.3f}" if name != TRUTH else ""
            keyframes = len(result.keyframes) if name != TRUTH else ""
            rows.append(f"| {clip_name} | {name} | " + " | ".join(cells(result.scores, name, clip.get(baseline) and clip[baseline].scores))
                        + f" | {per_frame} | {keyframes} |")
    return rows


def strip(results: dict[str, MethodResult], count: int = 6) -> Image.Image:
    """``count`` evenly spaced frames of the truth and of each method, one row each, as one image."""
    rows = [np.concatenate(pick_frames(result.frames, count), axis=1) for result in results.values()]
    return Image.fromarray(np.concatenate(rows, axis=0))
