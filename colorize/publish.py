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
from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
from huggingface_hub.utils import filter_repo_objects
from packaging import version

from .hub import IGNORE_PATTERNS, make_model_card, push_folder_to_hub
from .pipeline_colorization import ColorizationPipeline

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}
SAMPLE_GRID = "samples.png"

LIMITATIONS = """\
- Colours are *sampled*: another seed gives another plausible colouring, and a colour that the
  photo does not determine (a rose can be red, pink, white or yellow) is a guess.
- The model learned from the training photos only: subjects unlike them get the palette of the
  training set (greens, the usual petal colours), often muted.
- Chroma is predicted at low resolution and upsampled onto the full-resolution gray input, so
  colour can bleed across thin structures and small objects may take their surroundings' colour.
- It colorizes; it does not restore. Scratches, noise and blur of old photos stay as they are.
- Not for historical or forensic claims about what colours really were."""


@dataclass
class Provenance:
    """What the model card says about where the model comes from."""

    title: str
    description: str
    dataset: str | None = None  # a Hub dataset id or name, for the card metadata
    dataset_description: str = ""
    license: str = "apache-2.0"
    training_notes: str = ""  # how the recipe was chosen


def export_pipeline(model: str | Path, destination: str | Path, dtype: str = "fp16") -> ColorizationPipeline:
    """Save ``model``'s pipeline into ``destination`` as safetensors, with its UNet in ``dtype``."""
    # diffusers 0.40 renamed torch_dtype to dtype.
    keyword = "dtype" if version.parse(diffusers.__version__) >= version.parse("0.40") else "torch_dtype"
    pipeline = ColorizationPipeline.from_pretrained(model, **{keyword: DTYPES[dtype]})
    pipeline.save_pretrained(destination, safe_serialization=True)
    return pipeline


def read_budget(model_dir: str | Path) -> list[dict]:
    """The training runs recorded in ``model_dir/budget/*.json``, oldest first."""
    records = [json.loads(path.read_text()) for path in sorted(Path(model_dir).glob("budget/*.json"))]
    return sorted(records, key=lambda record: record["started"])


def budget_section(runs: list[dict]) -> str:
    """A table of the training runs (steps, images seen, hours, hardware), their notes and commands."""
    if not runs:
        return "## Training budget\n\nNo budget records were found next to the trained model."
    rows = [
        f"| {i} | {run['started']} | {run['start_step']} → {run['end_step']} | {run['images_seen']:,} "
        f"| {run['hours']:.2f} | {run['hardware']} | {run['mixed_precision']} |"
        for i, run in enumerate(runs, start=1)
    ]
    total_steps = sum(run["end_step"] - run["start_step"] for run in runs)
    total_images = sum(run["images_seen"] for run in runs)
    total_hours = sum(run["hours"] for run in runs)
    notes = [f"{i}. {run['note']}" for i, run in enumerate(runs, start=1) if run.get("note")]
    commands = "\n\n".join(f"Run {i}:\n\n```bash\n{run['command']}\n```" for i, run in enumerate(runs, start=1))
    return (
        "## Training budget\n\n| run | started (UTC) | steps | images seen | hours | hardware | precision |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + f"\n| **total** | | {total_steps:,} steps | {total_images:,} | {total_hours:.2f} | | |\n"
        + ("\nNotes on the runs:\n\n" + "\n".join(notes) + "\n" if notes else "")
        + "\n## Training commands\n\n" + commands
    )


def results_section(metrics: dict) -> str:
    """The `colorize evaluate` table: model against the gray input, which every model must beat."""
    lines = [
        "## Results",
        "",
        f"`colorize evaluate` on {metrics['num_images']} held-out photos, {metrics['scheduler']} with "
        f"{metrics['num_inference_steps']} steps, seed {metrics['seed']}, full resolution; "
        f"{metrics['seconds_per_image']:.2f} s per photo.",
        "",
        "| metric | colorized | gray input |",
        "|---|---|---|",
        f"| PSNR (dB) | {metrics['psnr']:.2f} | {metrics['gray_psnr']:.2f} |",
        f"| SSIM | {metrics['ssim']:.3f} | {metrics['gray_ssim']:.3f} |",
        f"| AuC (ab error ≤ 150) | {metrics['auc']:.3f} | {metrics['gray_auc']:.3f} |",
        f"| colourfulness ratio | {metrics['colorfulness_ratio']:.2f} | 0.00 |",
    ]
    if metrics.get("per_class"):
        lines += ["", "| class | photos | PSNR | gray PSNR | AuC | gray AuC | colourfulness ratio |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in metrics["per_class"].items():
            lines.append(f"| {name} | {m['num_images']} | {m['psnr']:.2f} | {m['gray_psnr']:.2f} | {m['auc']:.3f} "
                         f"| {m['gray_auc']:.3f} | {m['colorfulness_ratio']:.2f} |")
    return "\n".join(lines)


def build_model_card(repo_id: str, provenance: Provenance, metrics: dict | None, runs: list[dict], has_grid: bool):
    sections = []
    if metrics:
        sections.append(results_section(metrics))
    if has_grid:
        sections.append(f"Gray input | colorized | original:\n\n![samples]({SAMPLE_GRID})")
    if provenance.dataset_description:
        sections.append("## Training data\n\n" + provenance.dataset_description.strip())
    if provenance.training_notes:
        sections.append("## How it was trained\n\n" + provenance.training_notes.strip())
    sections.append(budget_section(runs))
    sections.append("## Limitations\n\n" + LIMITATIONS)
    return make_model_card(
        repo_id,
        description=f"{provenance.description.strip()}",
        license=provenance.license,
        datasets=[provenance.dataset] if provenance.dataset else None,
        title=provenance.title,
        extra_sections=sections,
    )


def publish(
    model: str | Path,
    output_dir: str | Path,
    provenance: Provenance,
    evaluation_dir: str | Path | None = None,
    dtype: str = "fp16",
    repo_id: str | None = None,
    token: str | None = None,
    private: bool | None = None,
) -> list[str]:
    """Export ``model`` into ``output_dir`` with its card; push when ``repo_id`` is given.

    Returns the files that were (or, in a dry run, would be) uploaded."""
    output_dir = Path(output_dir)
    if output_dir.resolve() == Path(model).resolve():
        raise ValueError("publish into a new folder, not the trained model's own folder")
    metrics = None
    if evaluation_dir is not None:
        metrics = json.loads((Path(evaluation_dir) / "metrics.json").read_text())
    export_pipeline(model, output_dir, dtype)
    grid = Path(evaluation_dir) / SAMPLE_GRID if evaluation_dir is not None else None
    if grid is not None and grid.is_file():
        shutil.copyfile(grid, output_dir / SAMPLE_GRID)
    runs = read_budget(model)
    if runs:
        shutil.copytree(Path(model) / "budget", output_dir / "budget", dirs_exist_ok=True)
    card = build_model_card(repo_id or output_dir.as_posix(), provenance, metrics, runs, has_grid=(output_dir / SAMPLE_GRID).is_file())
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
    parser.add_argument("--params", default=None, help="A pipeline params.yaml: its `publish` section sets the "
                        "defaults of these options (e.g. title, dataset_description, repo_id).")
    return parser


def parse_with_params(parser: argparse.ArgumentParser, argv, section: str) -> argparse.Namespace:
    """Parse ``argv``; the ``section`` of the file given by ``--params`` supplies the defaults."""
    import yaml

    args, _ = parser.parse_known_args(argv)
    if args.params:
        values = yaml.safe_load(Path(args.params).read_text()).get(section) or {}
        unknown = sorted(set(values) - {action.dest for action in parser._actions})
        if unknown:
            parser.error(f"{args.params}: unknown keys in section '{section}': {', '.join(unknown)}")
        parser.set_defaults(**values)
    return parser.parse_args(argv)


def main(argv) -> int:
    args = parse_with_params(build_parser(), argv, "publish")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        print(f"colorize publish: {output_dir} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    provenance = Provenance(args.title, args.description, args.dataset, args.dataset_description, args.license,
                            args.training_notes)
    try:
        files = publish(args.model, output_dir, provenance, evaluation_dir=args.evaluation, dtype=args.dtype,
                        repo_id=args.repo_id, token=args.token, private=args.private or None)
    except (OSError, ValueError) as error:
        print(f"colorize publish: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    size = sum((output_dir / name).stat().st_size for name in files) / 2**20
    where = f"pushed to https://huggingface.co/{args.repo_id}" if args.repo_id else "dry run, nothing pushed"
    print(f"{len(files)} files, {size:.1f} MiB in {output_dir} ({where}):")
    for name in files:
        print(f"  {name}")
    return 0
