"""`colorize prepare SOURCE --output-dir DIR`: check and split a dataset (`colorize.prepare`)."""

import argparse
from pathlib import Path

from ..prepare import prepare
from .errors import command_errors
from .stage_params import add_params_argument, parse_stage_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize prepare",
        description="Check every image of SOURCE (decodable, colour, not tiny, no exact duplicate), write a "
        "deterministic train / validation / test split stratified by class (manifest.csv with sha256 hashes, "
        "train.txt, validation.txt, test.txt) and a data report (data_report.md / .json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", help="A folder of colour photos (class sub-folders allowed), a text file of "
                        "image paths, or a Hugging Face dataset id.")
    parser.add_argument("--output-dir", required=True, help="Where the manifest, split lists and report go.")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="Share of images for validation.")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="Share of images for the test split.")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the split.")
    parser.add_argument("--min-size", type=int, default=32, help="Drop images whose shorter side is smaller.")
    parser.add_argument("--image-column", default="image", help="Image column of a Hub dataset.")
    parser.add_argument("--dataset-config", default=None, help="Config name of a Hub dataset.")
    add_params_argument(parser, "prepare")
    return parser


def main(argv) -> int:
    args = parse_stage_args(build_parser(), argv, "prepare")
    with command_errors(OSError, ValueError):
        report = prepare(args.source, args.output_dir, args.validation_fraction, args.test_fraction, args.seed,
                         args.min_size, args.image_column, args.dataset_config)
    splits = ", ".join(f"{count} {split}" for split, count in report["splits"].items())
    dropped = ", ".join(f"{count} {reason}" for reason, count in report["dropped"].items()) or "none"
    print(f"{report['num_kept']} of {report['num_source_images']} images kept ({splits}); dropped: {dropped} "
          f"-> {Path(args.output_dir) / 'data_report.md'}")
    return 0
