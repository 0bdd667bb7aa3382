"""`colorize evaluate`: turn a folder of colour photos gray, colorize them, and score against the truth.

Writes ``metrics.json`` (means over images, per class when the folder has class sub-folders),
``per_image.csv``, ``report.md``, a sample grid and a denoising strip. Metric definitions are in
`colorize.metrics`; ``gray_*`` scores the gray input itself, the baseline every model must beat.
"""

import argparse
import csv
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .color import rgb_to_gray
from .image_io import find_images, open_image, pil_to_tensor
from .metrics import ChromaClassifier, ImageScores, SetScores, chroma_features, chroma_map, score, shrink, summarize
from .model_options import add_model_arguments, load_pipeline_or_exit
from .image_processing import pick_frames
from .pipeline_colorization import DEFAULT_GUIDANCE_SCALE, DEFAULT_NUM_INFERENCE_STEPS
from .schedulers import scheduler_name
from .report import describe_run, metrics_tables
from .stage_params import add_params_argument, parse_stage_args
from .visualize import STRIP_FRAMES, denoising_strip, make_grid, tensor_to_pil

logger = logging.getLogger(__name__)

REPORT_IMAGES = 8


def fit_chroma_classifier(reference, show_progress: bool = True) -> ChromaClassifier:
    """A `ChromaClassifier` (with its CNN judge) fitted on the real photos of ``reference`` (a folder with class
    sub-folders or a list file whose paths sit in class folders), each shrunk to `SET_SCORE_SIZE`. Unreadable
    files are skipped."""
    files = [(file.path, file.group) for file in find_images(reference) if file.group is not None]
    classes = sorted({group for _, group in files})
    if len(classes) < 2:
        raise ValueError(f"--reference-data {reference} needs photos of at least two classes (class sub-folders).")
    features, maps, labels = [], [], []
    for path, group in tqdm(files, desc="Chroma classifier", unit="image", disable=not show_progress):
        try:
            rgb = pil_to_tensor(open_image(path))[None]
        except Exception:  # noqa: BLE001 - a bad reference photo is left out, never fatal
            continue
        small = shrink(rgb)
        features.append(chroma_features(small))
        maps.append(chroma_map(small))
        labels.append(classes.index(group))
    return ChromaClassifier(classes).fit(torch.cat(features), torch.tensor(labels), maps=torch.cat(maps),
                                         show_progress=show_progress)


def evaluate(
    pipeline,
    data: str | Path,
    output_dir: str | Path,
    model_name: str,
    num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
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
) -> dict:
    """Colorize every photo of ``data`` at full resolution, score it, and write the report files.

    ``reference_data``: real photos with classes (e.g. the training split) to fit the chroma classifier on;
    or ``classifier``, one already fitted (`fit_chroma_classifier`), to score several runs alike."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = [(file.path, file.group) for file in find_images(data)][:limit]
    shown = {str(path) for path, _ in pick_frames(files, REPORT_IMAGES)}
    scores, skipped, shown_rows, seconds = [], [], [], 0.0  # shown_rows: gray | samples | truth
    if classifier is None and reference_data is not None:
        classifier = fit_chroma_classifier(reference_data, show_progress)
    set_scores = SetScores(kid=kid)

    progress = tqdm(total=len(files), desc="Evaluating", unit="image", disable=not show_progress)
    for start in range(0, len(files), batch_size):
        batch, images = [], []
        for index, (path, group) in enumerate(files[start : start + batch_size], start=start):
            try:
                images.append(open_image(path))
                batch.append((index, path, group))
            except Exception as error:  # a bad file is reported and skipped, never fatal
                skipped.append({"file": str(path), "error": f"{type(error).__name__}: {error}"})
                tqdm.write(f"skipped {path}: {type(error).__name__}: {error}")
        if images:
            generators = [torch.Generator().manual_seed(seed + index * num_samples + k)
                          for index, _, _ in batch for k in range(num_samples)]
            started = time.perf_counter()
            outputs = pipeline(images, num_inference_steps=num_inference_steps, generator=generators,
                               num_images_per_prompt=num_samples, output_type="pt", guidance_scale=guidance_scale,
                               saturation=saturation, strength=strength, working_size=working_size).images
            seconds += time.perf_counter() - started
            outputs = list(outputs)
            for position, ((index, path, group), image) in enumerate(zip(batch, images)):
                samples = torch.stack(outputs[position * num_samples : (position + 1) * num_samples])
                truth = pil_to_tensor(image)[None]
                scores.append(ImageScores(file=str(path), group=group, **score(samples, truth)))
                set_scores.add(samples, truth, group)
                if str(path) in shown:
                    shown_rows.append([tensor_to_pil(rgb_to_gray(truth)[0]), *map(tensor_to_pil, samples), image])
        progress.update(len(files[start : start + batch_size]))
    progress.close()

    if not scores:
        raise ValueError(f"No photo of {data} could be colorized ({len(skipped)} skipped).")
    metrics = summarize(scores, with_best_of_n=num_samples > 1)
    metrics.update(set_scores.summary(classifier))
    metrics.update(
        guidance_scale=guidance_scale,
        saturation=pipeline.config.saturation if saturation is None else saturation,
        strength=pipeline.default_strength(strength),
        working_size=pipeline.default_working_size(working_size),
        seconds_per_image=seconds / len(scores),
        num_inference_steps=num_inference_steps,
        scheduler=scheduler_name(pipeline.scheduler),
        model=model_name,
        num_samples=num_samples,
        seed=seed,
        num_skipped=len(skipped),
        skipped=skipped,
    )
    groups = sorted({s.group for s in scores if s.group is not None})
    if groups:
        metrics["per_class"] = {
            group: summarize([s for s in scores if s.group == group], with_best_of_n=num_samples > 1) for group in groups
        }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_per_image(scores, output_dir / "per_image.csv")
    strip = None
    if shown_rows:
        make_grid(shown_rows).save(output_dir / "samples.png")
        strip = first_denoising_strip(pipeline, shown_rows[0][-1], num_inference_steps, seed, guidance_scale, saturation, strength,
                                     working_size)
        strip.save(output_dir / "denoising.png")
    write_report(metrics, output_dir / "report.md", has_pictures=strip is not None)
    return metrics


def first_denoising_strip(pipeline, image: Image.Image, num_inference_steps: int, seed: int,
                          guidance_scale: float = DEFAULT_GUIDANCE_SCALE, saturation: float | None = None,
                          strength: float | None = None, working_size: int | None = None) -> Image.Image:
    output = pipeline(image, num_inference_steps=num_inference_steps, return_intermediates=True,
                      num_intermediates=STRIP_FRAMES, generator=torch.Generator().manual_seed(seed),
                      guidance_scale=guidance_scale, saturation=saturation, strength=strength,
                      working_size=working_size)
    return denoising_strip([step[0] for step in output.intermediates])


def write_per_image(scores: list[ImageScores], path: Path):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(scores[0]) if scores else ["file"]))
        writer.writeheader()
        writer.writerows(asdict(s) for s in scores)


def write_report(metrics: dict, path: Path, has_pictures: bool):
    """A markdown report: model vs gray baseline, per class, skipped files, pictures."""
    lines = [
        "# Colorization evaluation",
        "",
        f"Model `{metrics['model']}`: {describe_run(metrics)} {metrics['num_skipped']} photos skipped.",
        "",
        metrics_tables(metrics),
    ]
    if metrics["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- `{s['file']}`: {s['error']}" for s in metrics["skipped"]]
    if has_pictures:
        lines += ["", "## Samples", "", "Gray input | colorized sample(s) | truth:", "", "![samples](samples.png)",
                  "", "Denoising, noisiest first:", "", "![denoising](denoising.png)"]
    path.write_text("\n".join(lines) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize evaluate",
        description="Turn each colour photo of DATA_DIR gray, colorize it at full resolution and score it against "
        "the original: PSNR, SSIM, AuC (ab error), colourfulness, and the same for the gray input. Writes "
        "OUT/metrics.json, OUT/per_image.csv and OUT/report.md with sample pictures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("data_dir", help="A folder of colour photos (class sub-folders allowed) or a text file of paths.")
    parser.add_argument("--output-dir", required=True, help="Where metrics.json and report.md are written.")
    add_model_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="Score only the first K photos (sorted by path).")
    parser.add_argument("--num-samples", type=int, default=1, help="Colorizations per photo (adds psnr_best_of_n).")
    parser.add_argument("--batch-size", type=int, default=1, help="Photos per pipeline call.")
    parser.add_argument(
        "--reference-data", default=None,
        help="Real photos in class sub-folders (or a list file), e.g. the training split: a chroma-only classifier "
        "is fitted on them and scores whether the colorizations' colours name the right class (chroma_accuracy: "
        "a logistic regression on ab histograms; chroma_map_accuracy: a small CNN on the ab map).",
    )
    parser.add_argument("--no-kid", dest="kid", action="store_false", help="Skip KID (it runs an extra network).")
    add_params_argument(parser, "evaluate")
    return parser


def main(argv) -> int:
    args = parse_stage_args(build_parser(), argv, "evaluate")
    pipeline = load_pipeline_or_exit(args, prog="colorize evaluate")
    if pipeline is None:
        return 2
    try:
        metrics = evaluate(
            pipeline, args.data_dir, args.output_dir, model_name=args.model,
            num_inference_steps=args.num_inference_steps, seed=args.seed, limit=args.limit,
            num_samples=args.num_samples, batch_size=args.batch_size, guidance_scale=args.guidance_scale,
            reference_data=args.reference_data, kid=args.kid, saturation=args.saturation, strength=args.strength,
            working_size=args.working_size,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"colorize evaluate: {error}", file=sys.stderr)
        return 2
    print(
        f"{metrics['num_images']} photos ({metrics['num_skipped']} skipped): PSNR {metrics['psnr']:.2f} dB "
        f"(gray {metrics['gray_psnr']:.2f}), SSIM {metrics['ssim']:.3f}, AuC {metrics['auc']:.3f} "
        f"(gray {metrics['gray_auc']:.3f}), colourfulness ratio {metrics['colorfulness_ratio']:.2f}, "
        f"ab JSD {metrics['jsd']:.3f} (gray {metrics['gray_jsd']:.3f})"
        + (f", chroma accuracy {metrics['chroma_accuracy']:.2f} (real {metrics['chroma_accuracy_real']:.2f})"
           if "chroma_accuracy" in metrics else "")
        + (f", CNN {metrics['chroma_map_accuracy']:.2f} (real {metrics['chroma_map_accuracy_real']:.2f})"
           if "chroma_map_accuracy" in metrics else "")
        + "; "
        f"{metrics['seconds_per_image']:.2f} s per photo -> {Path(args.output_dir) / 'report.md'}"
    )
    return 0
