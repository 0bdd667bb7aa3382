"""The library part of `colorize publish`: turn a trained pipeline folder into a shippable one, with a model card,
and push it.

The published folder holds the pipeline in diffusers format (UNet weights as fp16 safetensors by
default: half the size, and loaded back as float32 on CPU), a Hub model card (``README.md``) built
from the `colorize evaluate` results and the training budget records that `train_colorization.py`
writes, and the evaluation's sample grid. Without ``repo_id`` nothing leaves the machine: the
folder is prepared and the files that would be pushed are listed (a dry run).
"""

import json
import shutil
from pathlib import Path

import diffusers
import torch
from huggingface_hub.utils import filter_repo_objects
from packaging import version

from .hub import IGNORE_PATTERNS, SAMPLE_GRID, Provenance, make_model_card, push_folder_to_hub
from .pipeline_colorization import ColorizationPipeline
from .settings import check_chroma_sharpening, check_detail_transfer, check_sample_spread, check_saturation, check_working_size
from .training.budget import read_budget

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def export_pipeline(model: str | Path, destination: str | Path, dtype: str = "fp16",
                    saturation: float | None = None, working_size: int | None = None,
                    sample_spread: list | None = None, chroma_sharpening: float | None = None,
                    detail_transfer: float | None = None) -> ColorizationPipeline:
    """Save ``model``'s pipeline into ``destination`` as safetensors, with its UNet in ``dtype`` and, when given,
    ``saturation`` as its calibrated chroma gain, ``working_size`` as its calibrated working size,
    ``sample_spread`` as how its images of one photo differ, ``chroma_sharpening`` as its unsharp mask on the
    sampled chroma and ``detail_transfer`` as its colour detail from the lightness (the defaults of its calls'
    arguments of the same names)."""
    # diffusers 0.40 renamed torch_dtype to dtype.
    keyword = "dtype" if version.parse(diffusers.__version__) >= version.parse("0.40") else "torch_dtype"
    pipeline = ColorizationPipeline.from_pretrained(model, **{keyword: DTYPES[dtype]})
    if saturation is not None:
        pipeline.register_to_config(saturation=check_saturation(saturation))
    if working_size is not None:
        pipeline.register_to_config(working_size=check_working_size(working_size))
    if sample_spread is not None:
        pipeline.register_to_config(sample_spread=check_sample_spread(sample_spread))
    if chroma_sharpening is not None:
        pipeline.register_to_config(chroma_sharpening=check_chroma_sharpening(chroma_sharpening))
    if detail_transfer is not None:
        pipeline.register_to_config(detail_transfer=check_detail_transfer(detail_transfer))
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
    sample_spread: list | None = None,
    chroma_sharpening: float | None = None,
    detail_transfer: float | None = None,
) -> list[str]:
    """Export ``model`` into ``output_dir`` with its card; push when ``repo_id`` is given.

    Returns the files that were (or, in a dry run, would be) uploaded."""
    output_dir = Path(output_dir)
    if output_dir.resolve() == Path(model).resolve():
        raise ValueError("publish into a new folder, not the trained model's own folder")
    metrics = None
    if evaluation_dir is not None:
        metrics = json.loads((Path(evaluation_dir) / "metrics.json").read_text())
    export_pipeline(model, output_dir, dtype, saturation, working_size, sample_spread, chroma_sharpening,
                    detail_transfer)
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
