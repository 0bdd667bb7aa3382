"""`colorize publish MODEL --output-dir DIR`: export a trained pipeline with its model card, and push it to the Hub
when a repository is named (`colorize.publish`)."""

import argparse
from pathlib import Path

from ..hub import Provenance
from ..publish import publish
from ..settings import argument_type, check_chroma_sharpening, check_detail_transfer, check_saturation, check_working_size
from .errors import CommandError, command_errors
from .options import add_sample_spread_argument
from .stage_params import add_params_argument, parse_stage_args

# The model card's prose, read from markdown files of --card-text DIR: file name -> the flag whose text it replaces.
CARD_TEXT_FILES = {"description.md": "description", "dataset-description.md": "dataset_description",
                   "training-notes.md": "training_notes"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize publish",
        description="Export a trained pipeline folder (fp16 safetensors by default) with a Hub model card built from "
        "`colorize evaluate` results and the training budget records, then push it to the Hub when --repo-id is "
        "given; without it, only prepare the folder and list what would be pushed (dry run).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="The trained pipeline folder (train_colorization.py's --output_dir).")
    parser.add_argument("--output-dir", required=True, help="Where the published folder is written.")
    parser.add_argument("--evaluation", default=None, help="A `colorize evaluate` output folder, for metrics and grid.")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"], help="Precision of the saved weights.")
    parser.add_argument(
        "--saturation", type=argument_type(check_saturation), default=None,
        help="Store this chroma gain in the pipeline's config: the default `saturation` of its calls, chosen by "
        "measurement (`colorize evaluate --saturation`). Default: keep the model's own.",
    )
    parser.add_argument(
        "--working-size", type=argument_type(check_working_size), default=None,
        help="Store this working size (shorter side, px, of the grid the UNet denoises on) in the pipeline's "
        "config: the default `working_size` of its calls, chosen by measurement (`colorize evaluate "
        "--working-size`). Default: keep the model's own.",
    )
    add_sample_spread_argument(parser, stored=True)
    parser.add_argument(
        "--chroma-sharpening", type=argument_type(check_chroma_sharpening), default=None,
        help="Store this unsharp-mask amount on the sampled chroma in the pipeline's config: the default "
        "`chroma_sharpening` of its calls, chosen by measurement (`colorize evaluate --chroma-sharpening`). Default: "
        "keep the model's own.",
    )
    parser.add_argument(
        "--detail-transfer", type=argument_type(check_detail_transfer), default=None,
        help="Store this amount of colour detail from the lightness in the pipeline's config: the default "
        "`detail_transfer` of its calls, chosen by measurement (`colorize evaluate --detail-transfer`). Default: "
        "keep the model's own.",
    )
    parser.add_argument("--title", default="Colorization diffusion model", help="The model card's title.")
    parser.add_argument("--description", default="A diffusion model that colorizes grayscale photos.",
                        help="The model card's first paragraph.")
    parser.add_argument("--dataset", default=None, help="Training dataset name or Hub id, for the card metadata.")
    parser.add_argument("--dataset-description", default="", help="Markdown: the training data, its split, licence.")
    parser.add_argument("--license", default="apache-2.0", help="Licence of the weights (Hub licence id).")
    parser.add_argument("--training-notes", default="", help="Markdown: how the training recipe was chosen.")
    parser.add_argument(
        "--card-text", type=Path, default=None, metavar="DIR",
        help="A folder of markdown for the model card: description.md, dataset-description.md and "
        "training-notes.md, each used instead of the text of its flag when present.",
    )
    parser.add_argument("--repo-id", default=None, help="Hub repository to push to; omit for a dry run.")
    parser.add_argument("--token", default=None, help="Hub token; default: the one `hf auth login` stored.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output-dir, replacing files of the same name.")
    add_params_argument(parser, "publish")
    return parser


def provenance(args) -> Provenance:
    """What the card says of the model: the text flags, each replaced by its file of --card-text when there is one."""
    text = {name: getattr(args, name) for name in CARD_TEXT_FILES.values()}
    if args.card_text is not None:
        if not args.card_text.is_dir():
            raise CommandError(f"--card-text {args.card_text} is not a folder")
        for file_name, name in CARD_TEXT_FILES.items():
            if (args.card_text / file_name).is_file():
                text[name] = (args.card_text / file_name).read_text().strip()
    return Provenance(args.title, text["description"], args.dataset, text["dataset_description"], args.license,
                      text["training_notes"])


def main(argv) -> int:
    args = parse_stage_args(build_parser(), argv, "publish")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise CommandError(f"{output_dir} is not empty (use --overwrite)")
    card = provenance(args)
    with command_errors(OSError, ValueError):
        files = publish(args.model, output_dir, card, evaluation_dir=args.evaluation, dtype=args.dtype,
                        repo_id=args.repo_id, token=args.token, private=args.private or None,
                        saturation=args.saturation, working_size=args.working_size, sample_spread=args.sample_spread,
                        chroma_sharpening=args.chroma_sharpening, detail_transfer=args.detail_transfer)
    size = sum((output_dir / name).stat().st_size for name in files) / 2**20
    where = f"pushed to https://huggingface.co/{args.repo_id}" if args.repo_id else "dry run, nothing pushed"
    print(f"{len(files)} files, {size:.1f} MiB in {output_dir} ({where}):")
    for name in files:
        print(f"  {name}")
    return 0
