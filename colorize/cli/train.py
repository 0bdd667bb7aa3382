"""`colorize train [--accelerate-config F] [--params FILE] ARGS...`: `accelerate launch train_colorization.py ARGS...`,
with every CPU core and the script's flags in either spelling."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import CommandError
from .stage_params import expand_params

# The repository this package was installed from (editable install): training script and accelerate config.
ROOT = Path(__file__).resolve().parents[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize train", add_help=False,
        description="Run train_colorization.py under `accelerate launch`; every other argument goes to the script "
        "(see `colorize train --help-script`), its flags spelled with hyphens or underscores "
        "(--max-train-steps = --max_train_steps). --params FILE adds the `train` section of a pipeline params.yaml "
        "as flags.",
    )
    parser.add_argument("--accelerate-config", default=str(ROOT / "accelerate_config.yaml"),
                        help="accelerate config file (default: the repository's).")
    parser.add_argument("--help-script", action="store_true", help="Show train_colorization.py's options.")
    parser.add_argument("-h", "--help", action="store_true", help="Show this help.")
    return parser


def training_environment() -> dict:
    """This process's environment, with OMP_NUM_THREADS set to the usable cores when unset: accelerate launches a
    CPU process with one thread otherwise (1.8x slower on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"OMP_NUM_THREADS": str(cores or 1), **os.environ}


def main(argv) -> int:
    """The training script's exit status (its own one-line error when it stops on a mistake)."""
    parser = build_parser()
    args, script_args = parser.parse_known_args(argv)
    try:
        script_args = expand_params(script_args, "train")
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CommandError(f"--params: {error}") from error
    if args.help:
        parser.print_help()
        return 0
    script = ROOT / "train_colorization.py"
    if not script.is_file():
        raise CommandError(f"{script} not found (it ships with a clone of the repository)")
    # --quiet: a failed run ends with the script's own one-line error, not accelerate's CalledProcessError traceback
    command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", args.accelerate_config,
               str(script), *(["--help"] if args.help_script else script_args)]
    return subprocess.run(command, env=training_environment()).returncode
