"""Validation during training: colorize the validation photos with the pipeline as it would be saved, score them
with `colorize evaluate`'s own scoring (`colorize.evaluation.scoring.colorize_and_score`: same metrics, same seeding
rule), save and log the gray | colorized | truth grid and a denoising strip."""

import logging
from pathlib import Path

import numpy as np

from ..evaluation.report import summary_line
from ..evaluation.scoring import colorize_and_score

logger = logging.getLogger(__name__)

VALIDATION_METRICS = ["psnr", "gray_psnr", "colorfulness_ratio", "auc", "gray_auc", "jsd", "gray_jsd"]


def logged_metrics(summary: dict | None) -> dict | None:
    """The validation scores as logged and recorded in the budget: ``val/<name>``."""
    if summary is None:
        return None
    return {f"val/{key}": summary[key] for key in VALIDATION_METRICS if summary.get(key) is not None}


def run_validation(pipeline, images: list, accelerator, global_step: int, output_dir: str, num_inference_steps: int,
                   num_shown: int, seed: int | None) -> dict:
    """Colorize and score the validation ``images`` (PIL photos with their true colours); save and log the grid of
    the first ``num_shown`` and a denoising strip. Returns the summary of the scores (what `colorize evaluate`
    writes to metrics.json, without KID and the chroma judges)."""
    scored = colorize_and_score(pipeline, images, num_inference_steps=num_inference_steps, seed=seed or 0, kid=False,
                                shown=range(num_shown), return_strip=True)
    log_pictures(accelerator, Path(output_dir) / "validation", global_step, scored.grid, scored.strip)
    accelerator.log(logged_metrics(scored.summary), step=global_step)
    logger.info(f"Validation at step {global_step}: {summary_line(scored.summary)}")
    return scored.summary


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
