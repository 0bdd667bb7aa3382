"""`colorize train [--accelerate-config F] [--params FILE] ARGS...`: `accelerate launch train_colorization.py ARGS...`;
`colorize train-prior [--params FILE] ARGS...`: `python train_chroma_prior.py ARGS...`. Both run with every CPU
core and take the script's flags in either spelling."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import CommandError
from .stage_params import expand_params

# The repository this package was installed from (editable install): training scripts and accelerate config.
ROOT = Path(__file__).resolve().parents[2]


def build_parser(command: str, script: str, launched: bool) -> argparse.ArgumentParser:
    """The command's own few options; every other argument goes to ``script``. ``launched``: run under accelerate."""
    parser = argparse.ArgumentParser(
        prog=f"colorize {command}", add_help=False,
        description=f"Run {script}{' under `accelerate launch`' if launched else ''}; every other argument goes to "
        f"the script (see `colorize {command} --help-script`), its flags spelled with hyphens or underscores "
        f"(--train-batch-size = --train_batch_size). --params FILE adds the `{command}` section of a pipeline "
        "params.yaml as flags.",
    )
    if launched:
        parser.add_argument("--accelerate-config", default=str(ROOT / "accelerate_config.yaml"),
                            help="accelerate config file (default: the repository's).")
    parser.add_argument("--help-script", action="store_true", help=f"Show {script}'s options.")
    parser.add_argument("-h", "--help", action="store_true", help="Show this help.")
    return parser


def training_environment() -> dict:
    """This process's environment, with OMP_NUM_THREADS set to the usable cores when unset: accelerate launches a
    CPU process with one thread otherwise (1.8x slower on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"OMP_NUM_THREADS": str(cores or 1), **os.environ}


def run_script(command: str, script: str, argv: list[str], launched: bool) -> int:
    """The training script's exit status (its own one-line error when it stops on a mistake)."""
    parser = build_parser(command, script, launched)
    args, script_args = parser.parse_known_args(argv)
    try:
        script_args = expand_params(script_args, command)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CommandError(f"--params: {error}") from error
    if args.help:
        parser.print_help()
        return 0
    path = ROOT / script
    if not path.is_file():
        raise CommandError(f"{path} not found (it ships with a clone of the repository)")
    script_args = ["--help"] if args.help_script else script_args
    if launched:  # --quiet: a failed run ends with the script's own one-line error, not accelerate's traceback
        launcher = ["-m", "accelerate.commands.launch", "--quiet", "--config_file", args.accelerate_config]
    else:
        launcher = []
    return subprocess.run([sys.executable, *launcher, str(path), *script_args], env=training_environment()).returncode


def main(argv) -> int:
    """`colorize train`: the UNet (and image-encoder projection) training script, under accelerate."""
    return run_script("train", "train_colorization.py", argv, launched=True)


def main_prior(argv) -> int:
    """`colorize train-prior`: fit a chroma prior for a trained pipeline."""
    return run_script("train-prior", "train_chroma_prior.py", argv, launched=False)
