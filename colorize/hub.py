"""Model cards and pushing a saved pipeline folder to the Hugging Face Hub."""

import logging
from pathlib import Path

from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import HfApi, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

# Never uploaded: training state and logs that live next to the pipeline in an output_dir.
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "logs/**", "validation/**", "*.tmp", "**/*.tmp"]
TAGS = ["image-colorization", "diffusers", "colorize", "unconditional-image-generation"]


def make_model_card(
    repo_id: str,
    description: str,
    license: str = "apache-2.0",
    base_model: str | None = None,
    datasets: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    training_command: str | None = None,
    title: str | None = None,
    extra_sections: list[str] = (),
) -> ModelCard:
    """A Hub model card (YAML metadata + markdown) for a colorization pipeline; ``extra_sections`` are
    markdown sections appended after the usage, metrics and training ones."""
    card_data = ModelCardData(
        license=license,
        library_name="diffusers",
        pipeline_tag="image-to-image",
        base_model=base_model,
        datasets=datasets,
    )
    sections = [f"# {title or repo_id}", description.strip()]
    sections.append(
        "## How to use\n\n```python\nfrom PIL import Image\nfrom colorize import ColorizationPipeline\n\n"
        f'pipe = ColorizationPipeline.from_pretrained("{repo_id}")\n'
        'image = pipe(Image.open("gray.jpg")).images[0]\nimage.save("color.png")\n```\n\n'
        f"or from the shell: `colorize gray.jpg --model {repo_id} -o colorized/`"
    )
    if metrics:
        rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in metrics.items())
        sections.append(f"## Validation metrics\n\n| metric | value |\n|---|---|\n{rows}")
    if training_command:
        sections.append(f"## Training\n\n```bash\n{training_command}\n```")
    sections.extend(extra_sections)
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
