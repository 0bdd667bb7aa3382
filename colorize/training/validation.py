"""Validation during training: colorize the validation photos with the pipeline as it would be saved, score them
as `colorize evaluate` does, save and log the gray | colorized | truth grid and a denoising strip."""

import logging
from pathlib import Path

import numpy as np
import torch

from ..image_io import pil_to_tensor
from ..metrics import ImageScores, SetScores, score, summarize
from ..visualize import STRIP_FRAMES, denoising_strip, gray_picture, make_grid

logger = logging.getLogger(__name__)

VALIDATION_METRICS = ["psnr", "gray_psnr", "colorfulness_ratio", "auc", "gray_auc", "jsd", "gray_jsd"]


def logged_metrics(summary: dict | None) -> dict | None:
    """The validation scores as logged and recorded in the budget: ``val/<name>``."""
    if summary is None:
        return None
    return {f"val/{key}": summary[key] for key in VALIDATION_METRICS if summary.get(key) is not None}


def run_validation(pipeline, images: list, accelerator, global_step: int, output_dir: str, num_inference_steps: int,
                   num_shown: int, seed: int | None) -> dict:
    """Colorize the validation ``images``; save and log the grid of the first ``num_shown`` and a denoising strip.
    Returns the summary of the scores (`colorize.metrics.summarize`, plus the ab-histogram JSD)."""
    generator = torch.Generator(device="cpu").manual_seed(seed or 0)
    output = pipeline(
        images, num_inference_steps=num_inference_steps, generator=generator, return_intermediates=True,
        num_intermediates=STRIP_FRAMES,
    )
    scores, set_scores = [], SetScores(kid=False)
    for index, (colorized, truth) in enumerate(zip(output.images, images)):
        colorized, truth = pil_to_tensor(colorized)[None], pil_to_tensor(truth)[None]
        scores.append(ImageScores(file=str(index), group=None, **score(colorized, truth)))
        set_scores.add(colorized, truth, group=None)
    summary = summarize(scores, with_best_of_n=False)
    summary.update(set_scores.summary(classifier=None), scheduler=type(pipeline.scheduler).__name__,
                   num_inference_steps=num_inference_steps, seed=seed or 0)
    shown = images[:num_shown]
    grid = make_grid([[gray_picture(g), c, t] for g, c, t in zip(shown, output.images, shown)])
    strip = denoising_strip([step[0] for step in output.intermediates])
    log_pictures(accelerator, Path(output_dir) / "validation", global_step, grid, strip)
    metrics = logged_metrics(summary)
    accelerator.log(metrics, step=global_step)
    logger.info(f"Validation at step {global_step}: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    return summary


def log_pictures(accelerator, folder: Path, global_step: int, grid, strip):
    """Save the grid and strip as ``grid-<step>.png`` / ``denoising-<step>.png`` and log them to the trackers."""
    folder.mkdir(parents=True, exist_ok=True)
    grid.save(folder / f"grid-{global_step:06d}.png")
    strip.save(folder / f"denoising-{global_step:06d}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for name, picture in (("validation/grid", grid), ("validation/denoising", strip)):
                tracker.log_images({name: np.asarray(picture)[None]}, step=global_step, dataformats="NHWC")
        elif tracker.name == "wandb":
            tracker.log_images({"validation/grid": [grid], "validation/denoising": [strip]}, step=global_step)
