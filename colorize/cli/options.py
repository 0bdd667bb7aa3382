"""Options shared by every command that runs a pipeline (`colorize`, `colorize evaluate`, `colorize demo`), and
loading the pipeline they name (a `CommandError` when it cannot be loaded)."""

import argparse
from pathlib import Path

import torch

from ..pipeline_colorization import DEFAULT_GUIDANCE_SCALE, DEFAULT_MODEL, ColorizationPipeline
from ..schedulers import SCHEDULERS, scheduler_from_name
from ..settings import (
    argument_type, check_guidance_scale, check_num_inference_steps, check_sample_pair, check_saturation, check_strength,
    check_working_size,
)
from .errors import CommandError


def add_model_arguments(parser: argparse.ArgumentParser, default_steps: int | None = None):
    """Options shared by every command that runs a pipeline (``default_steps``: the command's default
    --num-inference-steps; None: the model's own)."""
    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="A saved ColorizationPipeline: local folder or Hub id."
    )
    parser.add_argument(
        "--num-inference-steps", type=argument_type(check_num_inference_steps), default=default_steps,
        help="Denoising steps of the schedule (with a chroma prior, --strength of them run). Default: "
        + (f"{default_steps}." if default_steps is not None else "the model's calibrated number (2, one UNet pass, for "
           "a model made by distill_sampler.py), else 4."),
    )
    parser.add_argument(
        "--guidance-scale", type=argument_type(check_guidance_scale), default=DEFAULT_GUIDANCE_SCALE,
        help="Classifier-free guidance on the image encoder's features: above 1, more vivid colours of what the "
        "encoder recognises (one extra UNet pass per step); 1, as trained; 0, ignore them. Models without an "
        "image encoder ignore it.",
    )
    parser.add_argument(
        "--saturation", type=argument_type(check_saturation), default=None,
        help="Chroma gain applied to the sampled colours: above 1 more saturated, below 1 paler, 0 gray; hues and "
        "lightness are kept. Default: the model's calibrated value (its config's saturation; 1 if it has none).",
    )
    parser.add_argument(
        "--strength", type=argument_type(check_strength), default=None,
        help="For models with a chroma prior: how far along the noise schedule sampling starts from the prior's "
        "colours (1: from pure noise, the prior unused; lower keeps more of it, in fewer steps). Default: the "
        "model's calibrated value (0.5 for the shipped one-pass model). Models without a prior ignore it.",
    )
    parser.add_argument(
        "--working-size", type=argument_type(check_working_size), default=None,
        help="Shorter side (px) of the grid the UNet denoises the colours on; outputs keep their own size. Larger "
        "places colours more finely, at about the square of the ratio in time. Default: the model's calibrated "
        "value (48 for the shipped model), else the UNet's training resolution.",
    )
    parser.add_argument(
        "--scheduler", default=None, choices=sorted(SCHEDULERS), help="Sampler; default: the model's own."
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed, for reproducible colours.")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device to run on."
    )


SAMPLE_SPREAD_HELP = (
    "sample k of a photo takes pair k (cycling), START 'prior' (from the model's chroma prior: its best guess), "
    "'noise' (a fresh draw: other hues where the photo is ambiguous), a strength S in (0, 1] (from the prior noised "
    "to S, led into the model's steps by one more UNet pass: a draw between the two) or 'mean' (the mean of the "
    "photo's drawn samples: their consensus, muted where they differ; no draw of its own, never first), GAIN times "
    "the saturation; e.g. prior:1 0.9:1.25 mean:0.7 0.75:1.3."
)


def add_sample_spread_argument(parser: argparse.ArgumentParser, stored: bool = False):
    """``--sample-spread``: for the commands that make several colorizations of a photo (``--num-samples``), or,
    ``stored``, for `colorize publish`, which writes it into the model's config."""
    if stored:
        help_text = (f"Store how the samples of a photo differ in the pipeline's config: {SAMPLE_SPREAD_HELP} Chosen by "
                     "measurement (`colorize evaluate --num-samples 4 --sample-spread ...`). Default: keep the model's own.")
    else:
        help_text = (f"How the --num-samples colorizations of a photo differ: {SAMPLE_SPREAD_HELP} Default: the "
                     "model's calibrated spread (its config's sample_spread; every sample from the prior if it has none).")
    parser.add_argument("--sample-spread", nargs="+", type=argument_type(check_sample_pair, parse=str), default=None,
                        metavar="START:GAIN", help=help_text)


def load_pipeline(args) -> ColorizationPipeline:
    """The pipeline ``args`` names (``--model``: a folder or a Hub id), with its ``--scheduler``, on ``--device``;
    `CommandError` with the reason when it cannot be loaded. Weights load from safetensors only (never a
    pickle), and no code from a model repository is run."""
    looks_local = args.model.startswith(("/", ".", "~")) or args.model.count("/") != 1
    try:
        if looks_local and not Path(args.model).expanduser().is_dir():
            raise FileNotFoundError(f"no pipeline folder at {args.model}")
        pipeline = ColorizationPipeline.from_pretrained(
            Path(args.model).expanduser() if looks_local else args.model, use_safetensors=True
        )
        if args.scheduler is not None:
            pipeline.scheduler = scheduler_from_name(args.scheduler, pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(args.device)
    except Exception as error:  # noqa: BLE001 - every reason a model cannot load is the same one-line error
        raise CommandError(f"cannot load the model '{args.model}': {type(error).__name__}: {error}") from error
