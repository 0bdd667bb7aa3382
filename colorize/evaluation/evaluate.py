"""The library part of `colorize evaluate`: turn a folder of colour photos gray, colorize them, score them against
the truth (`colorize.evaluation.scoring.colorize_and_score`) and write the report files.

Writes ``metrics.json`` (means over images, per class when the folder has class sub-folders),
``per_image.csv``, ``report.md``, a sample grid and a denoising strip. Metric definitions are in
`colorize.evaluation.metrics`; ``gray_*`` scores the gray input itself, the baseline every model must beat.
"""

import csv
import json
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..image_io import find_images, open_image, pil_to_tensor
from ..image_processing import pick_frames
from ..pipeline_colorization import DEFAULT_GUIDANCE_SCALE
from .metrics import ChromaClassifier, ImageNetFeatures, chroma_features, chroma_map, chroma_picture, shrink
from .report import evaluation_report
from .scoring import ImageScores, colorize_and_score

REPORT_IMAGES = 8  # photos in samples.png, spread evenly over the sorted list


def fit_chroma_classifier(reference, show_progress: bool = True) -> ChromaClassifier:
    """A `ChromaClassifier` (with its CNN judge and its ImageNet probe) fitted on the real photos of ``reference`` (a
    folder with class sub-folders or a list file whose paths sit in class folders), each shrunk to `SET_SCORE_SIZE`
    (the probe: resized to its own input size). Unreadable files are skipped."""
    files = [(file.path, file.group) for file in find_images(reference) if file.group is not None]
    classes = sorted({group for _, group in files})
    if len(classes) < 2:
        raise ValueError(f"--reference-data {reference} needs photos of at least two classes (class sub-folders).")
    features, maps, probe_features, labels = [], [], [], []
    network = ImageNetFeatures()
    for path, group in tqdm(files, desc="Chroma classifier", unit="image", disable=not show_progress):
        try:
            rgb = pil_to_tensor(open_image(path))[None]
        except Exception:  # noqa: BLE001 - a bad reference photo is left out, never fatal
            continue
        small = shrink(rgb)
        features.append(chroma_features(small))
        maps.append(chroma_map(small))
        probe_features.append(network(chroma_picture(rgb)))
        labels.append(classes.index(group))
    return ChromaClassifier(classes).fit(torch.cat(features), torch.tensor(labels), maps=torch.cat(maps),
                                         probe_features=torch.cat(probe_features), show_progress=show_progress)


def evaluate(
    pipeline,
    data: str | Path,
    output_dir: str | Path,
    model_name: str,
    num_inference_steps: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    num_samples: int = 1,
    batch_size: int = 1,
    show_progress: bool = True,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    reference_data: str | Path | None = None,
    kid: bool = True,
    classifier: ChromaClassifier | None = None,
    saturation: float | None = None,
    strength: float | None = None,
    working_size: int | None = None,
    sample_spread: list | None = None,
    chroma_sharpening: float | None = None,
    detail_transfer: float | None = None,
) -> dict:
    """Colorize every photo of ``data`` (a folder, class sub-folders allowed, or a list file) at full resolution,
    score it, write the report files into ``output_dir`` and return the metrics (what ``metrics.json`` holds).

    ``reference_data``: real photos with classes (e.g. the training split) to fit the chroma classifier on;
    or ``classifier``, one already fitted (`fit_chroma_classifier`), to score several runs alike."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = find_images(data)[:limit]
    if classifier is None and reference_data is not None:
        classifier = fit_chroma_classifier(reference_data, show_progress)
    scored = colorize_and_score(
        pipeline, [file.path for file in files], [file.group for file in files],
        num_inference_steps=num_inference_steps, seed=seed, num_samples=num_samples, batch_size=batch_size,
        guidance_scale=guidance_scale, saturation=saturation, strength=strength, working_size=working_size,
        sample_spread=sample_spread, chroma_sharpening=chroma_sharpening, detail_transfer=detail_transfer, kid=kid,
        classifier=classifier, shown=pick_frames(range(len(files)), REPORT_IMAGES), return_strip=True,
        show_progress=show_progress,
    )
    metrics = {**scored.summary, "model": model_name, "num_skipped": len(scored.skipped), "skipped": scored.skipped}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_per_image(scored.scores, output_dir / "per_image.csv")
    if scored.rows:
        scored.grid.save(output_dir / "samples.png")
        scored.strip.save(output_dir / "denoising.png")
    (output_dir / "report.md").write_text(evaluation_report(metrics, has_pictures=bool(scored.rows)))
    return metrics


def write_per_image(scores: list[ImageScores], path: Path):
    """One CSV row of scores per photo."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(scores[0]) if scores else ["file"]))
        writer.writeheader()
        writer.writerows(asdict(s) for s in scores)
