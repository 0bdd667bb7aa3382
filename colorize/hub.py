"""Model cards and pushing a saved pipeline folder to the Hugging Face Hub."""

import logging
from dataclasses import dataclass
from pathlib import Path

from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import HfApi, ModelCard, ModelCardData

from .evaluation.report import card_results

logger = logging.getLogger(__name__)

# Never uploaded: training state and logs that live next to the pipeline in an output_dir.
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "logs/**", "validation/**", "*.tmp", "**/*.tmp"]
SAMPLE_GRID = "samples.png"  # the sample grid, beside the card
TAGS = ["image-colorization", "diffusers", "colorize", "unconditional-image-generation"]


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


def make_model_card(
    repo_id: str,
    provenance: Provenance,
    metrics: dict | None = None,
    runs: list[dict] = (),
    has_grid: bool = False,
    base_model: str | None = None,
) -> ModelCard:
    """The model card of a colorization pipeline, the one card writer (`colorize publish` and
    `train_colorization.py --push_to_hub`): Hub metadata, usage, results against the gray input (``metrics``:
    a `colorize evaluate` or validation summary), sample grid, training data, how it was trained, the training
    budget (``runs``: `colorize.training.budget.read_budget`) and limitations."""
    card_data = ModelCardData(
        license=provenance.license,
        library_name="diffusers",
        pipeline_tag="image-to-image",
        base_model=base_model,
        datasets=[provenance.dataset] if provenance.dataset else None,
    )
    sections = [f"# {provenance.title or repo_id}", provenance.description.strip()]
    sections.append(
        "## How to use\n\n```python\nfrom PIL import Image\nfrom colorize import ColorizationPipeline\n\n"
        f'pipe = ColorizationPipeline.from_pretrained("{repo_id}")\n'
        'image = pipe(Image.open("gray.jpg")).images[0]\nimage.save("color.png")\n```\n\n'
        f"or from the shell: `colorize gray.jpg --model {repo_id} -o colorized/`"
    )
    if metrics:
        sections.append(card_results(metrics))
    if has_grid:
        sections.append(f"Gray input | colorized | original:\n\n![samples]({SAMPLE_GRID})")
    if provenance.dataset_description:
        sections.append("## Training data\n\n" + provenance.dataset_description.strip())
    if provenance.training_notes:
        sections.append("## How it was trained\n\n" + provenance.training_notes.strip())
    sections.append(budget_section(list(runs)))
    sections.append("## Limitations\n\n" + LIMITATIONS)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    return populate_model_card(card, tags=TAGS)


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload colorization pipeline",
) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder`` without checkpoints or logs; returns the repo id."""
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, exist_ok=True, private=private).repo_id
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=IGNORE_PATTERNS,
    )
    logger.info("Pushed %s to https://huggingface.co/%s", folder, repo_id)
    return repo_id
