#!/usr/bin/env python
"""Train, or fine-tune, a `ColorizationPipeline` on a folder of colour photos.

    accelerate launch --config_file accelerate_config.yaml train_colorization.py \
        --train_data_dir ../shared/data/flowers/train --output_dir outputs/flowers \
        --model_preset small --resolution 64 --use_ema --max_train_steps 20000

The UNet sees the L channel concatenated with noisy ab (Lab chroma, scaled by ``chroma_scale``)
and learns to predict the noise (or v) with an MSE loss. Modelled on diffusers'
examples/unconditional_image_generation/train_unconditional.py, whose flag names it keeps.
"""

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import datasets
import diffusers
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, broadcast_object_list, send_to_device, set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file
from tqdm.auto import tqdm

from colorize import ColorizationPipeline
from colorize.color import DEFAULT_CHROMA_SCALE
from colorize.data import (
    IMAGE_COLUMN,
    DeviceBatches,
    EpochShuffle,
    TrainingCrops,
    derived_seed,
    drop_unusable_images,
    load_image_dataset,
    local_shards,
    split_dataset,
    usable_image,
)
from colorize.hub import Provenance, make_model_card, push_folder_to_hub, read_budget
from colorize.image_encoder import ImageEncoder
from colorize.image_io import find_images, open_image, pil_to_tensor
from colorize.metrics import ImageScores, SetScores, score, summarize
from colorize.modeling import (
    DEFAULT_SCHEDULER_CONFIG,
    PRESETS,
    add_class_embedding,
    add_feature_channels,
    build_noise_scheduler,
    build_unet,
    time_embedding_dim,
)
from colorize.pipeline_colorization import DEFAULT_NUM_INFERENCE_STEPS
from colorize.schedulers import SCHEDULERS, scheduler_from_name
from colorize.stage_params import respell_flags
from colorize.streaming import StreamingCrops, collate_crops, open_stream
from colorize.training import TIMESTEP_BIAS_STRATEGIES, crop_features, diffusion_loss, timestep_weights
from colorize.visualize import STRIP_FRAMES, denoising_strip, gray_picture, make_grid

logger = get_logger(__name__, log_level="INFO")

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    group = parser.add_argument_group("model")
    group.add_argument(
        "--pretrained_model_name_or_path", default=None,
        help="A saved ColorizationPipeline (local folder or Hub id) to fine-tune: its UNet weights, scheduler "
        "config and chroma_scale are the starting point. Without it a fresh UNet of --model_preset is trained.",
    )
    group.add_argument("--revision", default=None, help="Hub revision of --pretrained_model_name_or_path.")
    group.add_argument("--model_preset", default="small", choices=sorted(PRESETS), help="UNet size for a fresh model.")
    group.add_argument(
        "--chroma_scale", type=float, default=None,
        help=f"Factor between normalised ab (about [-1, 1]) and the model's space, for about unit variance. "
        f"Default: the pretrained pipeline's, else {DEFAULT_CHROMA_SCALE} (measured on the flowers photos).",
    )
    group.add_argument(
        "--prediction_type", default=None, choices=["epsilon", "v_prediction"],
        help=f"What the UNet predicts. Default: the pretrained pipeline's, else {DEFAULT_SCHEDULER_CONFIG['prediction_type']}.",
    )
    group.add_argument(
        "--ddpm_num_steps", type=int, default=None,
        help=f"Training timesteps. Default: the pretrained pipeline's, else {DEFAULT_SCHEDULER_CONFIG['num_train_timesteps']}.",
    )
    group.add_argument(
        "--ddpm_beta_schedule", default=None, choices=["linear", "scaled_linear", "squaredcos_cap_v2"],
        help=f"Noise schedule. Default: the pretrained pipeline's, else {DEFAULT_SCHEDULER_CONFIG['beta_schedule']} (cosine).",
    )
    group.add_argument(
        "--image_encoder", action=argparse.BooleanOptionalAction, default=True,
        help="Condition the UNet on a frozen ImageNet EfficientNet-Lite0's features of the gray photo (see "
        "colorize/image_encoder.py). A pretrained pipeline's encoder is kept; one without gets a new encoder and "
        "zero-initialised UNet input channels for it (it starts out computing what it did). --no-image_encoder: "
        "L only.",
    )
    group.add_argument(
        "--projection_channels", type=int, default=16,
        help="Channels the encoder's 1280 feature channels are projected to (a new encoder only).",
    )
    group.add_argument(
        "--feature_dropout", type=float, default=0.1,
        help="Probability of hiding the encoder features from a training sample (never L), so that the pipeline "
        "can use classifier-free guidance (guidance_scale).",
    )
    group.add_argument(
        "--pooled_features", action=argparse.BooleanOptionalAction, default=None,
        help="Also add the encoder's features averaged over the photo, linearly projected, to the UNet's time "
        "embedding (a global 'what is this photo'). Default: as the pretrained pipeline has it, else off. Added "
        "to a pretrained pipeline, the projection starts at zero (the model starts out computing what it did).",
    )
    group.add_argument(
        "--fine_features", action=argparse.BooleanOptionalAction, default=None,
        help="Also use the encoder backbone's stride-16 map (112 channels, finer than its 1280-channel stride-32 "
        "one), projected and added to the projected features: colours placed more precisely. Default: as the "
        "pretrained pipeline has it, else off. Added to a pretrained pipeline, its projection starts at zero (the "
        "model starts out computing what it did). The feature cache grows about 4x (features at stride 16).",
    )

    group = parser.add_argument_group("data")
    group.add_argument(
        "--train_data_dir", default=None,
        help="A folder of colour images (class sub-folders allowed), a text file listing image paths (e.g. the "
        "train.txt of `colorize prepare`), or a folder of parquet or webdataset .tar shards.",
    )
    group.add_argument(
        "--validation_data_dir", default=None,
        help="Validation images (folder or list file, e.g. `colorize prepare`'s validation.txt). Default: split "
        "--validation_split off the training images.",
    )
    group.add_argument("--dataset_name", default=None, help="A Hugging Face dataset id, instead of --train_data_dir.")
    group.add_argument("--dataset_config_name", default=None, help="The config of --dataset_name, if it has several.")
    group.add_argument("--image_column", default="image", help="The column of --dataset_name that holds the images.")
    group.add_argument("--cache_dir", default=None, help="Where 🤗 datasets and the Hub cache downloads.")
    group.add_argument("--validation_split", type=float, default=0.1, help="Fraction held out for validation.")
    group.add_argument("--split_seed", type=int, default=42, help="Seed of the train / validation split.")
    group.add_argument("--max_train_samples", type=int, default=None, help="Use only this many training images.")
    group.add_argument(
        "--resolution", type=int, default=None,
        help="Side of the square training crops, in pixels: the model's working size, a multiple of the UNet's "
        "downsampling factor (8 for the small and base presets, 2 for tiny). Default: the pretrained UNet's "
        "sample_size when fine-tuning (32 for models/flowers), else 64.",
    )
    group.add_argument("--center_crop", action="store_true", help="Center-crop instead of random crops.")
    group.add_argument(
        "--random_flip", action=argparse.BooleanOptionalAction, default=True, help="Random horizontal flips."
    )
    group.add_argument(
        "--cache_images", action=argparse.BooleanOptionalAction, default=True,
        help="Keep each image decoded and resized in memory after its first use (about 4 * resolution^2 bytes "
        "per image), so that later epochs only crop and flip.",
    )
    group.add_argument("--dataloader_num_workers", type=int, default=0, help="Data loading processes (0: main).")
    group.add_argument(
        "--streaming", action="store_true",
        help="Stream the photos instead of holding them in memory (archives larger than RAM): --dataset_name "
        "streamed from the Hub, or --train_data_dir as a folder of parquet or webdataset .tar shards, or of "
        "images. Each process reads its own shards; photos are decoded in the main process (data-loading "
        "workers are not used); encoder features are computed as photos arrive. Needs --max_train_steps. "
        "Without --validation_data_dir the first usable photos of the stream are held out for validation.",
    )
    group.add_argument(
        "--data_on_device", action="store_true",
        help="Hold the decoded photos and their encoder maps on the training device and cut each batch there "
        "(crops, flips and feature grids by tensor indexing: no per-step host work or copies, no loader "
        "workers). For GPUs: it takes about 3 bytes per pixel of the resized photos plus 0.18 MB per photo of "
        "maps in device memory. Not with --streaming.",
    )
    group.add_argument(
        "--shuffle_buffer_size", type=int, default=1000,
        help="With --streaming: photos held in the shuffle buffer (datasets' IterableDataset.shuffle).",
    )
    group.add_argument(
        "--feature_cache", default=None,
        help="A file keeping the frozen image-encoder features of the training photos (about 0.2 MB a photo), "
        "reused by later runs on the same photos and encoder; default: computed anew each run.",
    )

    group = parser.add_argument_group("optimisation")
    group.add_argument(
        "--seed", type=int, default=None,
        help="Seed of the run: the model's initialisation, the data order, crops, flips, noise and feature dropout "
        "all follow from it, so a run resumed from a checkpoint ends where an uninterrupted one would. Default: "
        "drawn at random and logged; a checkpoint keeps its run's seed.",
    )
    group.add_argument("--train_batch_size", type=int, default=16, help="Batch size per device.")
    group.add_argument("--num_epochs", type=int, default=100, help="Epochs, unless --max_train_steps is given.")
    group.add_argument("--max_train_steps", type=int, default=None, help="Total optimiser steps; overrides epochs.")
    group.add_argument(
        "--max_train_minutes", type=float, default=None,
        help="Stop after this many minutes of training (wall clock, from the first step), whatever the step: the "
        "last step then validates, checkpoints and saves the pipeline as the final step would. For time-boxed "
        "machines; the learning-rate schedule still runs over --max_train_steps.",
    )
    group.add_argument("--gradient_accumulation_steps", type=int, default=1, help="Batches per optimiser step.")
    group.add_argument("--learning_rate", type=float, default=1e-4, help="Peak learning rate.")
    group.add_argument(
        "--lr_scheduler", default="cosine",
        choices=["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"],
        help="Learning-rate schedule (diffusers' get_scheduler).",
    )
    group.add_argument(
        "--lr_warmup_steps", type=int, default=None,
        help="Linear warm-up steps. Default: 10%% of the run, at most 500. A warm-up as long as the run or longer "
        "(the peak learning rate never reached) is shortened to 10%% of it, with a warning.",
    )
    group.add_argument("--adam_beta1", type=float, default=0.95, help="AdamW beta1.")
    group.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW beta2.")
    group.add_argument("--adam_weight_decay", type=float, default=1e-6, help="AdamW weight decay.")
    group.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW epsilon.")
    group.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm.")
    group.add_argument(
        "--snr_gamma", type=float, default=None,
        help="Min-SNR-gamma loss weighting (5 is the paper's choice); default: plain MSE.",
    )
    group.add_argument(
        "--timestep_bias_strategy", default="none", choices=TIMESTEP_BIAS_STRATEGIES,
        help="Train more (or less) often at some timesteps, as diffusers' SDXL script does: 'later' the noisiest "
        "--timestep_bias_portion of them (where a colourizer decides each region's colour), 'earlier' the least "
        "noisy, 'range' those in [--timestep_bias_begin, --timestep_bias_end). Default: uniform.",
    )
    group.add_argument(
        "--timestep_bias_multiplier", type=float, default=1.0,
        help="How much more often the biased timesteps are drawn (below 1: less often). 1 means no bias.",
    )
    group.add_argument("--timestep_bias_portion", type=float, default=0.25, help="Share of the timesteps biased by 'earlier' / 'later'.")
    group.add_argument("--timestep_bias_begin", type=int, default=0, help="First timestep biased by 'range'.")
    group.add_argument("--timestep_bias_end", type=int, default=1000, help="End (exclusive) of the timesteps biased by 'range'.")
    group.add_argument("--use_ema", action="store_true", help="Keep an EMA of the weights; it is what gets saved.")
    group.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    group.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")
    group.add_argument("--ema_max_decay", type=float, default=0.9999, help="Largest EMA decay.")
    group.add_argument(
        "--mixed_precision", default="auto", choices=["auto", "no", "fp16", "bf16"],
        help="Mixed precision. auto: bf16 on a GPU that supports it and on a CPU with native bf16 instructions "
        "(AMX or AVX512-BF16); otherwise fp32. On a CPU without them bf16 is emulated and about 15x slower "
        "(benchmarks/README.md).",
    )

    group = parser.add_argument_group("checkpoints, validation and logging")
    group.add_argument("--output_dir", default="colorization-model", help="Where the pipeline and checkpoints go.")
    group.add_argument("--checkpointing_steps", type=int, default=500, help="Save a resumable state every N steps.")
    group.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep at most this many checkpoints.")
    group.add_argument(
        "--resume_from_checkpoint", default=None,
        help="A checkpoint folder in --output_dir (or a path to one), or 'latest'.",
    )
    group.add_argument("--validation_steps", type=int, default=500, help="Colorize validation images every N steps.")
    group.add_argument("--num_validation_images", type=int, default=4, help="How many validation images to show.")
    group.add_argument(
        "--num_scored_validation_images", type=int, default=32,
        help="How many validation images are colorized and scored (val/psnr, val/auc, ...) at each validation; "
        "the first --num_validation_images of them are shown in the grid.",
    )
    group.add_argument(
        "--num_inference_steps", type=int, default=DEFAULT_NUM_INFERENCE_STEPS,
        help="Denoising steps for validation (with the pipeline's default guidance scale).",
    )
    group.add_argument(
        "--inference_scheduler", default="dpm", choices=sorted(SCHEDULERS),
        help="Sampler saved with the pipeline and used for validation (dpm = DPM-Solver++; see benchmarks/README.md).",
    )
    group.add_argument("--logger", default="tensorboard", choices=["tensorboard", "wandb"], help="Tracker.")
    group.add_argument("--logging_dir", default="logs", help="Tracker folder, inside --output_dir.")

    group = parser.add_argument_group("Hugging Face Hub")
    group.add_argument("--push_to_hub", action="store_true", help="Push the final pipeline and a model card.")
    group.add_argument("--hub_model_id", default=None, help="Repository id; default: --output_dir's name.")
    group.add_argument("--hub_token", default=None, help="Hub token; default: the one `hf auth login` stored.")
    group.add_argument("--hub_private_repo", action="store_true", help="Create the repository as private.")

    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = parser.parse_args(respell_flags(parser, argv))
    args.training_command = "accelerate launch train_colorization.py " + shlex.join(argv)
    if (args.train_data_dir is None) == (args.dataset_name is None):
        parser.error("give exactly one of --train_data_dir or --dataset_name")
    if args.streaming and args.data_on_device:
        parser.error("--data_on_device holds every photo in device memory: it cannot be used with --streaming")
    if args.streaming and args.max_train_steps is None:
        parser.error("--streaming needs --max_train_steps (a stream has no length to count epochs in)")
    if args.timestep_bias_multiplier <= 0:
        parser.error(f"--timestep_bias_multiplier must be positive, got {args.timestep_bias_multiplier}")
    if not 0 < args.timestep_bias_portion < 1:
        parser.error(f"--timestep_bias_portion must be between 0 and 1, got {args.timestep_bias_portion}")
    if not 0 <= args.timestep_bias_begin < args.timestep_bias_end:
        parser.error("--timestep_bias_begin must be at least 0 and below --timestep_bias_end")
    return args


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 arithmetic in hardware (Intel AMX, AVX512-BF16), where bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_mixed_precision(choice: str) -> str:
    """--mixed_precision auto: bf16 where the hardware computes it natively, else "no" (fp32)."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def fail(message: str):
    """Stop with one line on stderr and exit status 1: no traceback for a mistake in the command."""
    raise SystemExit(f"train_colorization.py: error: {message}")


def check_output_dir(output_dir: str):
    """Fail before anything is loaded, not at the first checkpoint, when output_dir cannot be written (a full or
    read-only disk, a file in the way). The probe goes in output_dir or its nearest existing parent and is
    removed: a failed start leaves no folder behind."""
    existing = Path(output_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        probe = existing / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"0" * 1024)
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        fail(f"Cannot write to --output_dir {output_dir}: {error}")


def check_data_source(source: str | None, flag: str):
    """A local data folder or list must exist and list at least one image file (or hold data shards)."""
    if source is None or local_shards(source) is not None:
        return
    try:
        if not find_images(source):
            fail(f"{flag} {source} holds no image files")
    except FileNotFoundError:
        fail(f"{flag} {source}: no such folder or list file")


def pretrained_unet_config(args) -> dict:
    """The pretrained pipeline's UNet config (config file only, weights not read), or {} for a fresh model."""
    if not args.pretrained_model_name_or_path:
        return {}
    try:
        return dict(UNet2DModel.load_config(
            args.pretrained_model_name_or_path, subfolder="unet", revision=args.revision, cache_dir=args.cache_dir
        ))
    except (OSError, ValueError) as error:
        fail(f"cannot read the pipeline --pretrained_model_name_or_path {args.pretrained_model_name_or_path}: "
             f"{str(error).splitlines()[0]}")


def choose_resolution(args) -> int:
    """--resolution, or the pretrained UNet's sample_size (fine-tuning keeps the model's working size), else 64;
    checked against the UNet's downsampling factor."""
    config = pretrained_unet_config(args)
    resolution = args.resolution or config.get("sample_size") or 64
    if args.resolution is None and config:
        logger.info(f"--resolution {resolution}: the pretrained UNet's sample_size (its working size)")
    levels = len(config.get("block_out_channels") or PRESETS[args.model_preset]["block_out_channels"])
    factor = 2 ** (levels - 1)
    if resolution % factor:
        lower, upper = resolution // factor * factor, (resolution // factor + 1) * factor
        fail(f"--resolution {resolution} is not a multiple of {factor}, the UNet's downsampling factor: use "
             f"{lower or upper} or {upper}")
    return resolution


def check_resume(args):
    """A checkpoint named by --resume_from_checkpoint must exist; the error lists the ones that do."""
    if args.resume_from_checkpoint in (None, "latest"):
        return
    path = args.resume_from_checkpoint
    if os.path.isdir(path) or os.path.isdir(os.path.join(args.output_dir, path)):
        return
    existing = list_checkpoints(args.output_dir)
    found = f"{args.output_dir} has {', '.join(existing)}" if existing else f"{args.output_dir} has no checkpoints"
    fail(f"--resume_from_checkpoint {path}: no such checkpoint ({found}; 'latest' picks the newest)")


def check_start(args):
    """Everything that can be checked before a model or photo is loaded or a file written: fail in one line."""
    check_data_source(args.train_data_dir, "--train_data_dir")
    check_data_source(args.validation_data_dir, "--validation_data_dir")
    args.resolution = choose_resolution(args)
    check_resume(args)
    check_output_dir(args.output_dir)


def warmup_steps(args) -> int:
    """--lr_warmup_steps, defaulting to 10 % of the run (at most 500); one as long as the run is shortened."""
    short = max(args.max_train_steps // 10, 1) if args.max_train_steps >= 10 else 0
    if args.lr_warmup_steps is None:
        return min(short, 500)
    if args.lr_warmup_steps >= args.max_train_steps:
        logger.warning(
            f"--lr_warmup_steps {args.lr_warmup_steps} is as long as the {args.max_train_steps}-step run: the learning "
            f"rate would never reach {args.learning_rate}. Using {short} warm-up steps instead."
        )
        return short
    return args.lr_warmup_steps


def load_starting_point(args):
    """(unet, image encoder or None, noise_scheduler, chroma_scale, saturation, chroma prior or None, working size
    or None): fine-tuned from a pipeline (whose calibrated saturation and chroma prior, untouched by this training,
    it keeps, with its calibrated working size unless --resolution changes the UNet's), or fresh from a preset
    (saturation 1, no prior, sampled at --resolution)."""
    encoder, saturation, chroma_prior, working_size = None, 1.0, None, None
    if args.pretrained_model_name_or_path:
        pretrained = ColorizationPipeline.from_pretrained(
            args.pretrained_model_name_or_path, revision=args.revision, cache_dir=args.cache_dir
        )
        unet, encoder, base_config = pretrained.unet, pretrained.image_encoder, dict(pretrained.scheduler.config)
        chroma_scale = args.chroma_scale or pretrained.config.chroma_scale
        saturation, chroma_prior = pretrained.config.saturation, pretrained.chroma_prior
        working_size = pretrained.config.working_size
        if unet.config.sample_size != args.resolution:
            if working_size is not None:
                logger.info(f"working size {working_size} was measured for {unet.config.sample_size} px training: this "
                            f"model samples at its --resolution {args.resolution} (`colorize publish --working-size` to change)")
                working_size = None
            unet.register_to_config(sample_size=args.resolution)
        if encoder is None and args.image_encoder:
            encoder = ImageEncoder.from_imagenet(projection_channels=args.projection_channels)
            unet = add_feature_channels(unet, args.projection_channels)
        if args.fine_features and encoder is not None and encoder.fine_projection is None:
            encoder.add_fine_projection()
        elif args.fine_features is False and encoder is not None and encoder.fine_projection is not None:
            raise SystemExit(f"{args.pretrained_model_name_or_path} uses fine features: it cannot be trained without them.")
        if args.pooled_features and encoder is not None and encoder.pooled_projection is None:
            unet = add_class_embedding(unet)
            encoder.add_pooled_projection(time_embedding_dim(unet))
        elif args.pooled_features is False and encoder is not None and encoder.pooled_projection is not None:
            raise SystemExit(f"{args.pretrained_model_name_or_path} uses pooled features: it cannot be trained without them.")
    else:
        if args.image_encoder:
            encoder = ImageEncoder.from_imagenet(
                projection_channels=args.projection_channels, fine_features=bool(args.fine_features)
            )
        channels = encoder.config.projection_channels if encoder is not None else 0
        pooled = bool(args.pooled_features and encoder is not None)
        unet, base_config = build_unet(args.model_preset, args.resolution, channels, class_embedding=pooled), {}
        if pooled:
            encoder.add_pooled_projection(time_embedding_dim(unet))
        chroma_scale = args.chroma_scale or DEFAULT_CHROMA_SCALE
    noise_scheduler = build_noise_scheduler(
        chroma_scale,
        base_config,
        num_train_timesteps=args.ddpm_num_steps,
        beta_schedule=args.ddpm_beta_schedule,
        prediction_type=args.prediction_type,
    )
    return unet, encoder, noise_scheduler, chroma_scale, saturation, chroma_prior, working_size


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints in output_dir, oldest first (half-written ``*.tmp`` folders are ignored)."""
    if not os.path.isdir(output_dir):
        return []
    names = [name for name in os.listdir(output_dir) if CHECKPOINT_PATTERN.match(name)]
    return sorted(names, key=lambda name: int(CHECKPOINT_PATTERN.match(name).group(1)))


def remove_partial_checkpoints(output_dir: str):
    """Delete ``checkpoint-N.tmp`` folders that a killed run was writing: never complete, never resumed from."""
    for partial in Path(output_dir).glob("checkpoint-*.tmp"):
        logger.warning(f"Removing {partial}: a checkpoint that an interrupted run did not finish writing")
        shutil.rmtree(partial, ignore_errors=True)


def save_checkpoint(accelerator, output_dir: str, global_step: int, total_limit: int | None, seed: int,
                    stream_position: dict | None = None):
    """Save a resumable state atomically: written to ``checkpoint-N.tmp``, then renamed. Called on every
    process (each saves its own random state and, streaming, where its stream stands; the main process the
    models, optimizer and scheduler)."""
    final_path = os.path.join(output_dir, f"checkpoint-{global_step}")
    temporary_path = final_path + ".tmp"
    if accelerator.is_main_process:
        if total_limit is not None:
            existing = list_checkpoints(output_dir)
            for name in existing[: max(0, len(existing) - total_limit + 1)]:
                logger.info(f"Removing old checkpoint {name}")
                shutil.rmtree(os.path.join(output_dir, name))
        shutil.rmtree(temporary_path, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary_path)
    if stream_position is not None:
        Path(temporary_path, f"stream-{accelerator.process_index}.json").write_text(json.dumps(stream_position) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        Path(temporary_path, RUN_FILE).write_text(json.dumps({"seed": seed}) + "\n")
        shutil.rmtree(final_path, ignore_errors=True)
        os.replace(temporary_path, final_path)
        logger.info(f"Saved state to {final_path}")


def describe_hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        device = torch.cuda.get_device_name(accelerator.device)
    else:
        device = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{accelerator.num_processes} x {device}, {torch.get_num_threads()} torch threads/process"


class BudgetLog:
    """What this run spent, in ``output_dir/budget/run-<start>.json``, rewritten at each checkpoint and at the
    end, so that a run killed half-way still leaves its record. `colorize publish` sums the records."""

    def __init__(self, args, accelerator, start_step: int, images_per_step: int):
        self.started = time.time()
        started = datetime.fromtimestamp(self.started, timezone.utc)
        self.path = Path(args.output_dir) / "budget" / f"run-{started:%Y%m%dT%H%M%SZ}.json"
        self.record = {
            "command": args.training_command,
            "started": started.isoformat(timespec="seconds"),
            "hardware": describe_hardware(accelerator),
            "mixed_precision": accelerator.mixed_precision,
            "start_step": start_step,
            "images_per_step": images_per_step,
        }

    def write(self, step: int, validation_metrics: dict | None):
        self.record.update(
            end_step=step,
            images_seen=(step - self.record["start_step"]) * self.record["images_per_step"],
            hours=round((time.time() - self.started) / 3600, 4),
            validation=validation_metrics,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record, indent=2) + "\n")


RUN_FILE = "run.json"  # in each checkpoint: the run's seed


def choose_seed(args, accelerator, resume_path: str | None) -> int:
    """The seed of the checkpoint resumed from (the run goes on as it began), else --seed, else one drawn at
    random on the main process and shared with the others (they must agree on the data order)."""
    run_file = Path(resume_path or "", RUN_FILE)
    if resume_path and run_file.is_file():
        seed = json.loads(run_file.read_text())["seed"]
        if args.seed is not None and args.seed != seed:
            logger.warning(f"--seed {args.seed} ignored: resuming the run of seed {seed} from {resume_path}")
        return seed
    seed = [args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")]
    if accelerator.num_processes > 1:
        broadcast_object_list(seed)
    return seed[0]


def step_generator(seed: int, batch_number: int, process_index: int, device) -> torch.Generator:
    """The random stream of one training batch (noise, timesteps, feature dropout): a function of the run's seed
    and the batch's number in the run, so a resumed run repeats it exactly."""
    return torch.Generator(device=device).manual_seed(derived_seed(seed, batch_number, process_index))


def stream_start(resume_path: str | None, process_index: int) -> tuple[int, int]:
    """(epoch, position) where this process's stream stood at the checkpoint resumed from; (0, 0) for a new run."""
    if resume_path is None:
        return 0, 0
    state_file = Path(resume_path, f"stream-{process_index}.json")
    if not state_file.is_file():
        logger.warning(f"{resume_path} holds no stream position for process {process_index}: streaming from the start")
        return 0, 0
    state = json.loads(state_file.read_text())
    return state["epoch"], state["position"]


def out_of_time(accelerator, started: float, minutes: float) -> bool:
    """Whether ``minutes`` have passed since ``started`` on any process (all processes stop at the same step)."""
    late = torch.tensor([float(time.time() - started >= 60 * minutes)], device=accelerator.device)
    return bool(accelerator.reduce(late, reduction="max").item()) if accelerator.num_processes > 1 else bool(late.item())


def check_replicas_agree(accelerator, modules):
    """Data-parallel processes must end with the same weights: compare a fingerprint of each process's (sum and
    sum of squares in float64) and say so, or warn with the fingerprints that differ."""
    parameters = [parameter.detach().double() for module in modules for parameter in module.parameters()]
    fingerprint = torch.stack([sum(p.sum() for p in parameters), sum((p * p).sum() for p in parameters)])
    fingerprints = accelerator.gather(fingerprint.to(accelerator.device)[None]).cpu()
    if (fingerprints == fingerprints[0]).all():
        logger.info(f"Weights identical on all {accelerator.num_processes} processes")
    else:
        logger.warning(f"Weights differ between processes (sum, sum of squares per process): {fingerprints.tolist()}")


def resolve_resume_path(args) -> str | None:
    """The checkpoint to resume from (checked to exist by `check_resume`), or None for 'latest' with none yet."""
    if args.resume_from_checkpoint != "latest":
        path = args.resume_from_checkpoint
        return path if os.path.isdir(path) else os.path.join(args.output_dir, path)
    checkpoints = list_checkpoints(args.output_dir)
    return os.path.join(args.output_dir, checkpoints[-1]) if checkpoints else None


def write_split_listing(dataset, path: Path):
    """One line per image of ``dataset``: its file path (or row number for in-memory Hub data)."""
    lines = [value.get("path") or f"row {index}" for index, value in enumerate(dataset["image"])]
    path.write_text("\n".join(lines) + "\n")


VALIDATION_METRICS = ["psnr", "gray_psnr", "colorfulness_ratio", "auc", "gray_auc", "jsd", "gray_jsd"]


def logged_metrics(summary: dict | None) -> dict | None:
    """The validation scores as logged and recorded in the budget: ``val/<name>``."""
    if summary is None:
        return None
    return {f"val/{key}": summary[key] for key in VALIDATION_METRICS if summary.get(key) is not None}


def run_validation(pipeline, images, args, accelerator, global_step: int) -> dict:
    """Colorize the validation images; save and log the gray | colorized | truth grid and a denoising strip.
    Returns the summary of the scores (`colorize.metrics.summarize`, plus the ab-histogram JSD)."""
    generator = torch.Generator(device="cpu").manual_seed(args.seed or 0)
    output = pipeline(
        images, num_inference_steps=args.num_inference_steps, generator=generator, return_intermediates=True,
        num_intermediates=STRIP_FRAMES,
    )
    # The same per-photo scores, means and set scores as `colorize evaluate`.
    scores, set_scores = [], SetScores(kid=False)
    for index, (colorized, truth) in enumerate(zip(output.images, images)):
        colorized, truth = pil_to_tensor(colorized)[None], pil_to_tensor(truth)[None]
        scores.append(ImageScores(file=str(index), group=None, **score(colorized, truth)))
        set_scores.add(colorized, truth, group=None)
    summary = summarize(scores, with_best_of_n=False)
    summary.update(set_scores.summary(classifier=None), scheduler=type(pipeline.scheduler).__name__,
                   num_inference_steps=args.num_inference_steps, seed=args.seed or 0)
    metrics = logged_metrics(summary)
    shown = images[: args.num_validation_images]
    gray_images = [gray_picture(image) for image in shown]
    grid = make_grid([[g, c, t] for g, c, t in zip(gray_images, output.images, shown)])
    strip = denoising_strip([step[0] for step in output.intermediates])
    folder = Path(args.output_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    grid.save(folder / f"grid-{global_step:06d}.png")
    strip.save(folder / f"denoising-{global_step:06d}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for name, picture in (("validation/grid", grid), ("validation/denoising", strip)):
                tracker.log_images({name: np.asarray(picture)[None]}, step=global_step, dataformats="NHWC")
        elif tracker.name == "wandb":
            tracker.log_images({"validation/grid": [grid], "validation/denoising": [strip]}, step=global_step)
    accelerator.log(metrics, step=global_step)
    logger.info(f"Validation at step {global_step}: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    return summary


def encode_training_images(encoder: ImageEncoder, dataset, show_progress: bool, cache_file: str | None = None):
    """The frozen encoder's feature map of every training photo (the whole photo, float16), computed once:
    training crops and flips are applied to it later, aligned (`TrainingCrops`). With ``cache_file``, maps
    saved there for the same photos and encoder configuration are reused, and new ones saved."""
    key = {
        "encoder": {name: encoder.config[name] for name in ("image_size", "max_aspect_ratio")},
        "images": [value.get("path") or str(index) for index, value in enumerate(dataset[IMAGE_COLUMN])],
    }
    if encoder.config.fine_features:  # (only then: caches written before the option stay valid)
        key["encoder"]["fine_features"] = True
    if cache_file and os.path.isfile(cache_file):
        cached = torch.load(cache_file, weights_only=True)
        if cached["key"] == json.dumps(key, sort_keys=True, default=str):
            logger.info(f"Image-encoder features of {len(cached['features'])} photos read from {cache_file}")
            return cached["features"]
        logger.info(f"{cache_file} holds features of other photos or another encoder: computing them anew")
    features = []
    for value in tqdm(dataset[IMAGE_COLUMN], desc="Encoding images", disable=not show_progress):
        features.append(encoder.photo_features(open_image(value)).to("cpu", torch.float16))
    if cache_file:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": json.dumps(key, sort_keys=True, default=str), "features": features}, cache_file)
    return features


def load_training_data(args, accelerator):
    """Check every image once and split off a deterministic validation set: (train, validation or None). Data that
    cannot be used (no usable image, an unknown column, a split leaving nothing) is a one-line error."""
    try:
        with accelerator.main_process_first():
            dataset = load_image_dataset(
                args.train_data_dir, args.dataset_name, args.dataset_config_name, args.image_column, args.cache_dir
            )
        dataset, report = drop_unusable_images(dataset, show_progress=accelerator.is_local_main_process)
        logger.info(f"Training images: {report}")
        if args.validation_data_dir is not None:
            train_dataset = dataset
            validation_dataset, _ = drop_unusable_images(load_image_dataset(args.validation_data_dir), show_progress=False)
        else:
            train_dataset, validation_dataset = split_dataset(dataset, args.validation_split, args.split_seed)
    except (FileNotFoundError, ValueError) as error:
        fail(str(error).splitlines()[0])
    if args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(args.max_train_samples, len(train_dataset))))
    return train_dataset, validation_dataset


def image_key(value) -> str:
    """What identifies an undecoded image of a stream: its path, or a digest of its bytes."""
    return value.get("path") or hashlib.sha1(value["bytes"]).hexdigest()


def load_streaming_data(args):
    """The stream of training photos and the validation photos: --validation_data_dir's, or the first usable
    photos of the stream (left out of training). Returns (stream, validation PIL images, keys to leave out)."""
    try:
        stream = open_stream(args.train_data_dir, args.dataset_name, args.dataset_config_name, args.image_column,
                             args.cache_dir)
        if args.validation_data_dir is not None:
            validation, _ = drop_unusable_images(load_image_dataset(args.validation_data_dir), show_progress=False)
            return stream, [open_image(value) for value in validation[IMAGE_COLUMN]], set()
        count = max(args.num_validation_images, args.num_scored_validation_images)
        images, keys = [], set()
        for example in stream:
            if len(images) == count:
                break
            image, reason = usable_image(example[IMAGE_COLUMN])
            if reason is None:
                images.append(image)
                keys.add(image_key(example[IMAGE_COLUMN]))
        else:  # the stream ended before the validation photos were found: nothing is left to train on
            fail(f"the stream {args.dataset_name or args.train_data_dir} has {len(images)} usable photos, all needed "
                 f"for validation (--num_scored_validation_images {args.num_scored_validation_images}): give "
                 f"--validation_data_dir, or ask for fewer")
    except (FileNotFoundError, ValueError) as error:
        fail(str(error).splitlines()[0])
    logger.info(f"Validation: the first {len(images)} usable photos of the stream, left out of training")
    return stream, images, keys


def prepare_streaming_data(args, accelerator, encoder: ImageEncoder | None, stream, held_out: set, start):
    """A data loader of `StreamingCrops` batches (endless), this process's share of the stream from ``start``."""
    features = None
    if encoder is not None:
        encoder = encoder.to(accelerator.device)

        def features(image):
            return encoder.photo_features(image).to("cpu", torch.float32)

    if held_out:
        stream = stream.filter(lambda example: image_key(example[IMAGE_COLUMN]) not in held_out)
    crops = StreamingCrops(
        stream, args.resolution, args.seed, shuffle_buffer=args.shuffle_buffer_size, center_crop=args.center_crop,
        random_flip=args.random_flip, features=features, start=start, rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )
    return torch.utils.data.DataLoader(crops, batch_size=args.train_batch_size, collate_fn=collate_crops)


def prepare_data(args, accelerator, encoder: ImageEncoder | None, train_dataset, validation_dataset):
    """Write the validation listing, encode the training photos once (with an encoder), and crop / flip on the fly.

    Returns (train dataloader, number of training images, number of validation images, the PIL
    validation images shown at each validation)."""
    if accelerator.is_main_process and validation_dataset is not None:
        write_split_listing(validation_dataset, Path(args.output_dir) / "validation_split.txt")
    shown = validation_dataset if validation_dataset is not None else train_dataset
    count = max(args.num_validation_images, args.num_scored_validation_images)
    shown = shown.select(range(min(count, len(shown))))
    validation_images = [open_image(value) for value in shown["image"]]

    features = None
    if encoder is not None:
        with accelerator.main_process_first():  # the main process writes the cache file, the others read it
            features = encode_training_images(
                encoder.to(accelerator.device), train_dataset, show_progress=accelerator.is_local_main_process,
                cache_file=args.feature_cache,
            )
    crops = TrainingCrops(
        train_dataset, args.resolution, center_crop=args.center_crop, random_flip=args.random_flip,
        cache=args.cache_images, features=features, seed=args.seed,
    )
    train_dataloader = torch.utils.data.DataLoader(
        crops,
        batch_size=args.train_batch_size,
        sampler=EpochShuffle(len(crops), args.seed),
        num_workers=args.dataloader_num_workers,
        persistent_workers=args.dataloader_num_workers > 0,  # workers keep their image caches across epochs
        drop_last=len(crops) >= args.train_batch_size,
    )
    return train_dataloader, len(crops), len(validation_dataset or []), validation_images


def push_pipeline(args, global_step: int, validation_summary: dict | None):
    """Write the model card (the same writer as `colorize publish`) into output_dir and upload the pipeline."""
    repo_id = args.hub_model_id or Path(args.output_dir).name
    provenance = Provenance(
        title=repo_id,
        description=f"A colorization diffusion model trained with `train_colorization.py` for {global_step} steps "
        f"at {args.resolution} px.",
        dataset=args.dataset_name,
    )
    card = make_model_card(
        repo_id, provenance, metrics=validation_summary, runs=read_budget(args.output_dir),
        base_model=args.pretrained_model_name_or_path,
    )
    card.save(os.path.join(args.output_dir, "README.md"))
    push_folder_to_hub(
        args.output_dir, repo_id, token=args.hub_token, private=args.hub_private_repo,
        commit_message=f"Training step {global_step}",
    )


EMA_SETTINGS = ("decay", "min_decay", "optimization_step", "update_after_step", "use_ema_warmup", "inv_gamma", "power")


def load_ema(ema_model: EMAModel, folder: str, module: torch.nn.Module):
    """Restore ``ema_model`` (the EMA of ``module``) from the folder `EMAModel.save_pretrained` wrote: its shadow
    weights and its settings and step counter. Done by hand because `EMAModel.from_pretrained` warns twice (it
    passes the folder to ``from_config`` and the EMA settings to the model's constructor)."""
    config = type(module).load_config(folder)
    weights = load_file(os.path.join(folder, SAFETENSORS_WEIGHTS_NAME))
    shadow = [weights[name] for name, _ in module.named_parameters()]
    ema_model.load_state_dict({**{key: config[key] for key in EMA_SETTINGS if key in config}, "shadow_params": shadow})


def register_checkpoint_hooks(accelerator, ema_models: dict[str, EMAModel]):
    """Make `accelerate.save_state` / `load_state` keep the UNet and the image encoder (and their EMAs) in
    diffusers format, with safetensors, beside accelerate's optimizer, scheduler and RNG state."""
    classes = {"unet": UNet2DModel, "image_encoder": ImageEncoder}

    def name_of(model) -> str:
        return "image_encoder" if isinstance(accelerator.unwrap_model(model), ImageEncoder) else "unet"

    def save_model_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for name, ema_model in ema_models.items():
                ema_model.save_pretrained(os.path.join(output_dir, f"{name}_ema"))
            for model in models:
                accelerator.unwrap_model(model).save_pretrained(os.path.join(output_dir, name_of(model)))
                weights.pop()

    def load_model_hook(models, input_dir):
        while models:
            model = models.pop()
            name, unwrapped = name_of(model), accelerator.unwrap_model(model)
            loaded = classes[name].from_pretrained(input_dir, subfolder=name)
            unwrapped.register_to_config(**loaded.config)
            unwrapped.load_state_dict(loaded.state_dict())
            if name in ema_models:
                load_ema(ema_models[name], os.path.join(input_dir, f"{name}_ema"), unwrapped)
                ema_models[name].to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)


def project_features(encoder, batch: dict, dropout: float, generator: torch.Generator | None = None):
    """The learned projections of the batch's cached whole-photo features (the map, and the pooled
    time-embedding term or None), with each sample's features hidden (set to zero, as the pipeline's
    unconditional branch sees them) with probability ``dropout``, drawn from ``generator``. Returns (the
    projected map, the time-embedding term or None)."""
    features, pooled = batch["features"], batch["pooled_features"]
    if dropout > 0:
        keep = torch.rand(features.shape[0], device=features.device, generator=generator) >= dropout
        features = features * keep.view(-1, 1, 1, 1).to(features.dtype)
        pooled = pooled * keep.view(-1, 1).to(pooled.dtype)
    return encoder(features, pooled)


def main(args):
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=args.logger,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()

    # A failed start exits in one line and leaves --output_dir as it was (not even created).
    check_start(args)
    resume_path = resolve_resume_path(args) if args.resume_from_checkpoint else None
    args.seed = choose_seed(args, accelerator, resume_path)
    set_seed(args.seed)
    if args.streaming:
        stream, validation_images, held_out = load_streaming_data(args)
    else:
        train_dataset, validation_dataset = load_training_data(args, accelerator)
    try:
        unet, encoder, noise_scheduler, chroma_scale, saturation, chroma_prior, working_size = load_starting_point(args)
    except (OSError, ValueError) as error:
        fail(f"cannot load --pretrained_model_name_or_path {args.pretrained_model_name_or_path}: {str(error).splitlines()[0]}")
    try:
        bias = timestep_weights(
            noise_scheduler.config.num_train_timesteps, args.timestep_bias_strategy, args.timestep_bias_multiplier,
            args.timestep_bias_portion, args.timestep_bias_begin, args.timestep_bias_end,
        )
    except ValueError as error:
        fail(str(error))
    if bias is not None:
        bias = bias.to(accelerator.device)  # once, not a host-to-device copy every step
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        remove_partial_checkpoints(args.output_dir)
    trained = {"unet": unet} if encoder is None else {"unet": unet, "image_encoder": encoder}
    ema_models = {}
    if args.use_ema:
        for name, module in trained.items():
            ema_models[name] = EMAModel(
                module.parameters(),
                decay=args.ema_max_decay,
                use_ema_warmup=True,
                inv_gamma=args.ema_inv_gamma,
                power=args.ema_power,
                model_cls=type(module),
                model_config=module.config,
                foreach=True,
            )

    register_checkpoint_hooks(accelerator, ema_models)

    if args.streaming:
        train_dataloader = prepare_streaming_data(
            args, accelerator, encoder, stream, held_out, stream_start(resume_path, accelerator.process_index)
        )
        num_train_images, num_validation_images = "streamed", len(validation_images)
    else:
        train_dataloader, num_train_images, num_validation_images, validation_images = prepare_data(
            args, accelerator, encoder, train_dataset, validation_dataset
        )
        # Each process sees 1 / num_processes of the batches once the dataloader is prepared (on the device:
        # the same number each, the remainder dropped).
        batches_per_process = math.ceil(len(train_dataloader) / accelerator.num_processes)
        if args.data_on_device:
            device_batches = DeviceBatches(train_dataloader.dataset, accelerator.device)
            batches_per_process = max(1, len(train_dataloader) // accelerator.num_processes)
        if args.max_train_steps is None:
            args.max_train_steps = args.num_epochs * math.ceil(batches_per_process / args.gradient_accumulation_steps)
    args.lr_warmup_steps = warmup_steps(args)

    optimizer = torch.optim.AdamW(
        [parameter for module in trained.values() for parameter in module.parameters() if parameter.requires_grad],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    if args.streaming or args.data_on_device:  # each process cuts its own batches: not accelerate's to split
        *prepared, optimizer, lr_scheduler = accelerator.prepare(*trained.values(), optimizer, lr_scheduler)
    else:
        *prepared, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
            *trained.values(), optimizer, train_dataloader, lr_scheduler
        )
    trained = dict(zip(trained, prepared))
    model = trained["unet"]
    trainable_parameters = [p for module in trained.values() for p in module.parameters() if p.requires_grad]
    for ema_model in ema_models.values():
        ema_model.to(accelerator.device)
    if args.streaming:
        num_update_steps_per_epoch, num_epochs = None, "streamed"
    else:
        batches = batches_per_process if args.data_on_device else len(train_dataloader)
        num_update_steps_per_epoch = math.ceil(batches / args.gradient_accumulation_steps)
        num_epochs = math.ceil(args.max_train_steps / num_update_steps_per_epoch)

    if accelerator.is_main_process:
        tracker_config = {key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))}
        accelerator.init_trackers("train_colorization", config=tracker_config)

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Num training images = {num_train_images}, validation images = {num_validation_images}")
    logger.info(f"  Num epochs = {num_epochs}, total optimisation steps = {args.max_train_steps}")
    logger.info(f"  Batch size per device = {args.train_batch_size}, total (parallel x accumulation) = {total_batch_size}")
    logger.info(f"  UNet parameters = {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M, chroma_scale = {chroma_scale}")
    if encoder is not None:
        pooled = f", pooled features into a {encoder.config.pooled_embedding_dim}-wide time embedding" if encoder.pooled_projection is not None else ""
        pooled += ", stride-16 features added" if encoder.fine_projection is not None else ""
        logger.info(f"  Image encoder: {encoder.config.projection_channels} projected channels{pooled}, feature dropout = {args.feature_dropout}")
    logger.info(f"  Device = {accelerator.device}, torch threads per process = {torch.get_num_threads()}")
    if bias is not None:
        noisiest = bias[len(bias) // 2 :].sum().item()
        logger.info(f"  Timestep bias: {args.timestep_bias_strategy} x{args.timestep_bias_multiplier} ({noisiest:.0%} of samples in the noisier half)")
    logger.info(f"  Seed = {args.seed}")

    global_step, first_epoch, batches_to_skip = 0, 0, 0
    if args.resume_from_checkpoint:
        path = resume_path
        if path is None:
            accelerator.print(f"No checkpoint found in {args.output_dir}; starting a new training run.")
        else:
            accelerator.load_state(path)
            global_step = int(CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path))).group(1))
            accelerator.print(f"Resuming from checkpoint {path} at step {global_step}")
            if not args.streaming:  # a stream resumes at the position its checkpoint recorded (`stream_start`)
                first_epoch = global_step // num_update_steps_per_epoch
                batches_to_skip = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps

    def make_pipeline() -> ColorizationPipeline:
        """The pipeline as it will be saved: the current weights, sampling with --inference_scheduler (built from
        the training DDPM config, so a fine-tune rebuilds the same DDPMScheduler)."""
        pipeline = ColorizationPipeline(
            unet=accelerator.unwrap_model(model),
            scheduler=scheduler_from_name(args.inference_scheduler, noise_scheduler.config),
            image_encoder=accelerator.unwrap_model(trained["image_encoder"]) if encoder is not None else None,
            chroma_scale=chroma_scale,
            saturation=saturation,
            chroma_prior=chroma_prior if encoder is not None else None,
            working_size=working_size,
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def with_ema_weights(function):
        """Run ``function`` with the EMA weights swapped into the models (when there is an EMA)."""
        unwrapped = {name: accelerator.unwrap_model(module) for name, module in trained.items()}
        for name, ema_model in ema_models.items():
            ema_model.store(unwrapped[name].parameters())
            ema_model.copy_to(unwrapped[name].parameters())
        try:
            return function()
        finally:
            for name, ema_model in ema_models.items():
                ema_model.restore(unwrapped[name].parameters())

    validation_summary = None
    budget = BudgetLog(args, accelerator, global_step, total_batch_size)
    progress_bar = tqdm(
        total=args.max_train_steps, initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )

    def epochs_of_batches():
        """(epoch, batch) pairs from the resume point on: the endless stream, the batches cut on the device, or the
        cached data's loader, epoch by epoch."""
        if args.streaming:
            for batch in train_dataloader:
                yield int(batch["epoch"][0]), send_to_device(batch, accelerator.device)
            return
        if args.data_on_device:  # this process's share of each epoch's batches, cut on the device
            sampler, rank, processes = train_dataloader.sampler, accelerator.process_index, accelerator.num_processes
            for epoch in range(first_epoch, num_epochs):
                sampler.set_epoch(epoch)
                order = sampler.order().to(accelerator.device).split(args.train_batch_size)
                mine = order[: batches_per_process * processes][rank::processes]
                for index in range(batches_to_skip if epoch == first_epoch else 0, len(mine)):
                    crop_seed = derived_seed(args.seed, epoch, index, rank, 1)  # not the step's noise stream
                    generator = torch.Generator(device=accelerator.device).manual_seed(crop_seed)
                    yield epoch, device_batches.batch(mine[index], generator)
            return
        for epoch in range(first_epoch, num_epochs):
            train_dataloader.set_epoch(epoch)  # the epoch's order (`EpochShuffle`); a skipping loader inherits it
            skip = batches_to_skip if epoch == first_epoch else 0
            loader = accelerator.skip_first_batches(train_dataloader, skip) if skip else train_dataloader
            yield from ((epoch, batch) for batch in loader)

    model.train()
    stream_position, started = None, time.time()
    for batch_number, (epoch, batch) in enumerate(epochs_of_batches(), start=global_step * args.gradient_accumulation_steps):
        if global_step >= args.max_train_steps:
            break
        generator = step_generator(args.seed, batch_number, accelerator.process_index, accelerator.device)
        if args.streaming:
            stream_position = {"epoch": int(batch["epoch"][-1]), "position": int(batch["position"][-1]) + 1}
        with accelerator.accumulate(*trained.values()):
            features = image_embeds = None
            if encoder is not None:
                projected, image_embeds = project_features(
                    trained["image_encoder"], batch, args.feature_dropout, generator
                )
                features = crop_features(projected, batch["feature_grid"])
            loss = diffusion_loss(
                model, noise_scheduler, batch["pixel_values"], chroma_scale, features=features,
                snr_gamma=args.snr_gamma, image_embeds=image_embeds, generator=generator, timestep_weights=bias,
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainable_parameters, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()

        if not accelerator.sync_gradients:
            continue
        for name, ema_model in ema_models.items():
            ema_model.step(trained[name].parameters())
        global_step += 1
        progress_bar.update(1)
        logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "epoch": epoch}
        if ema_models:
            logs["ema_decay"] = ema_models["unet"].cur_decay_value
        progress_bar.set_postfix(loss=logs["loss"], lr=logs["lr"])
        accelerator.log(logs, step=global_step)
        if args.max_train_minutes is not None and out_of_time(accelerator, started, args.max_train_minutes):
            logger.info(f"--max_train_minutes {args.max_train_minutes} reached: stopping at step {global_step}")
            args.max_train_steps = global_step  # this step is the last: validate, checkpoint, save

        # Validation runs on the main process alone, on the unwrapped models (no collective operation the
        # other processes would wait for); checkpoints are saved by every process together.
        if accelerator.is_main_process and args.validation_steps and (
            global_step % args.validation_steps == 0 or global_step == args.max_train_steps
        ):
            validation_summary = with_ema_weights(
                lambda: run_validation(make_pipeline(), validation_images, args, accelerator, global_step)
            )
        if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
            save_checkpoint(
                accelerator, args.output_dir, global_step, args.checkpoints_total_limit, args.seed, stream_position
            )
            if accelerator.is_main_process:
                budget.write(global_step, logged_metrics(validation_summary))  # after validation: this step's
    progress_bar.close()

    if accelerator.num_processes > 1:
        check_replicas_agree(accelerator, trained.values())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with_ema_weights(lambda: make_pipeline().save_pretrained(args.output_dir))
        budget.write(global_step, logged_metrics(validation_summary))
        logger.info(f"Saved the pipeline to {args.output_dir}")
        if args.push_to_hub:
            push_pipeline(args, global_step, validation_summary)
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
