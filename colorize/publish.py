"""`colorize publish`: turn a trained pipeline folder into a shippable one, with a model card, and push it.

The published folder holds the pipeline in diffusers format (UNet weights as fp16 safetensors by
default: half the size, and loaded back as float32 on CPU), a Hub model card (``README.md``) built
from the `colorize evaluate` results and the training budget records that `train_colorization.py`
writes, and the evaluation's sample grid. Without ``repo_id`` nothing leaves the machine: the
folder is prepared and the files that would be pushed are listed (a dry run).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import diffusers
import torch
from huggingface_hub.utils import filter_repo_objects
from packaging import version

from .hub import IGNORE_PATTERNS, SAMPLE_GRID, Provenance, make_model_card, push_folder_to_hub, read_budget
from .pipeline_colorization import ColorizationPipeline
from .settings import argument_type, check_saturation, check_working_size
from .stage_params import add_params_argument, parse_stage_args

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def export_pipeline(model: str | Path, destination: str | Path, dtype: str = "fp16",
                    saturation: float | None = None, working_size: int | None = None) -> ColorizationPipeline:
    """Save ``model``'s pipeline into ``destination`` as safetensors, with its UNet in ``dtype`` and, when given,
    ``saturation`` as its calibrated chroma gain and ``working_size`` as its calibrated working size (the
    defaults of its calls' ``saturation`` and ``working_size``)."""
    # diffusers 0.40 renamed torch_dtype to dtype.
    keyword = "dtype" if version.parse(diffusers.__version__) >= version.parse("0.40") else "torch_dtype"
    pipeline = ColorizationPipeline.from_pretrained(model, **{keyword: DTYPES[dtype]})
    if saturation is not None:
        pipeline.register_to_config(saturation=check_saturation(saturation))
    if working_size is not None:
        pipeline.register_to_config(working_size=check_working_size(working_size))
    pipeline.save_pretrained(destination, safe_serialization=True)
    return pipeline


def publish(
    model: str | Path,
    output_dir: str | Path,
    provenance: Provenance,
    evaluation_dir: str | Path | None = None,
    dtype: str = "fp16",
    repo_id: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    saturation: float | None = None,
    working_size: int | None = None,
) -> list[str]:
    """Export ``model`` into ``output_dir`` with its card; push when ``repo_id`` is given.

    Returns the files that were (or, in a dry run, would be) uploaded."""
    output_dir = Path(output_dir)
    if output_dir.resolve() == Path(model).resolve():
        raise ValueError("publish into a new folder, not the trained model's own folder")
    metrics = None
    if evaluation_dir is not None:
        metrics = json.loads((Path(evaluation_dir) / "metrics.json").read_text())
    export_pipeline(model, output_dir, dtype, saturation, working_size)
    grid = Path(evaluation_dir) / SAMPLE_GRID if evaluation_dir is not None else None
    if grid is not None and grid.is_file():
        shutil.copyfile(grid, output_dir / SAMPLE_GRID)
    runs = read_budget(model)
    if runs:
        shutil.copytree(Path(model) / "budget", output_dir / "budget", dirs_exist_ok=True)
    card = make_model_card(repo_id or output_dir.as_posix(), provenance, metrics, runs, has_grid=(output_dir / SAMPLE_GRID).is_file())
    card.save(output_dir / "README.md")
    files = sorted(str(path.relative_to(output_dir)) for path in output_dir.rglob("*") if path.is_file())
    files = list(filter_repo_objects(files, ignore_patterns=IGNORE_PATTERNS))
    if repo_id is not None:
        push_folder_to_hub(output_dir, repo_id, token=token, private=private,
                           commit_message=f"Publish {provenance.title}")
    return files


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
    parser.add_argument("--title", default="Colorization diffusion model", help="The model card's title.")
    parser.add_argument("--description", default="A diffusion model that colorizes grayscale photos.",
                        help="The model card's first paragraph.")
    parser.add_argument("--dataset", default=None, help="Training dataset name or Hub id, for the card metadata.")
    parser.add_argument("--dataset-description", default="", help="Markdown: the training data, its split, licence.")
    parser.add_argument("--license", default="apache-2.0", help="Licence of the weights (Hub licence id).")
    parser.add_argument("--training-notes", default="", help="Markdown: how the training recipe was chosen.")
    parser.add_argument("--repo-id", default=None, help="Hub repository to push to; omit for a dry run.")
    parser.add_argument("--token", default=None, help="Hub token; default: the one `hf auth login` stored.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output-dir, replacing files of the same name.")
    add_params_argument(parser, "publish")
    return parser


def main(argv) -> int:
    args = parse_stage_args(build_parser(), argv, "publish")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        print(f"colorize publish: {output_dir} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    provenance = Provenance(args.title, args.description, args.dataset, args.dataset_description, args.license,
                            args.training_notes)
    try:
        files = publish(args.model, output_dir, provenance, evaluation_dir=args.evaluation, dtype=args.dtype,
                        repo_id=args.repo_id, token=args.token, private=args.private or None,
                        saturation=args.saturation, working_size=args.working_size)
    except (OSError, ValueError) as error:
        print(f"colorize publish: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    size = sum((output_dir / name).stat().st_size for name in files) / 2**20
    where = f"pushed to https://huggingface.co/{args.repo_id}" if args.repo_id else "dry run, nothing pushed"
    print(f"{len(files)} files, {size:.1f} MiB in {output_dir} ({where}):")
    for name in files:
        print(f"  {name}")
    return 0
