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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .cli import add_model_arguments, load_pipeline_or_exit
from .color import rgb_to_gray
from .data import list_image_files, open_image, pil_to_tensor, read_image_list
from .metrics import auc, colorfulness, psnr, ssim
from .pipeline_colorization import SCHEDULERS
from .visualize import STRIP_FRAMES, denoising_strip, make_grid, pick_frames, tensor_to_pil

logger = logging.getLogger(__name__)

MEAN_KEYS = ["psnr", "ssim", "auc", "colorfulness", "colorfulness_reference", "gray_psnr", "gray_ssim", "gray_auc"]
REPORT_IMAGES = 8


@dataclass
class ImageScores:
    """Scores of one photo; with several samples, the mean over them (and the best PSNR)."""

    file: str
    group: str | None
    psnr: float
    ssim: float
    auc: float
    colorfulness: float
    colorfulness_reference: float
    gray_psnr: float
    gray_ssim: float
    gray_auc: float
    psnr_best_of_n: float


def list_images(source: str | Path) -> list[tuple[Path, str | None]]:
    """(file, class) for a folder (class = first sub-folder, None at the top) or a text file of paths."""
    source = Path(source)
    if source.is_file():
        paths = read_image_list(source)
        return [(path, path.parent.name) for path in paths]
    if not source.is_dir():
        raise FileNotFoundError(f"No such folder or file list: {source}")
    files = []
    for path in list_image_files(source):
        parts = path.relative_to(source).parts
        files.append((path, parts[0] if len(parts) > 1 else None))
    return files


def score(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Metrics of N colorizations (N, 3, H, W) of one photo against its truth (1, 3, H, W)."""
    truths = truth.expand_as(samples)
    gray = rgb_to_gray(truth)
    sample_psnr = psnr(samples, truths)
    return {
        "psnr": sample_psnr.mean().item(),
        "ssim": ssim(samples, truths).mean().item(),
        "auc": auc(samples, truths).mean().item(),
        "colorfulness": colorfulness(samples).mean().item(),
        "colorfulness_reference": colorfulness(truth).item(),
        "gray_psnr": psnr(gray, truth).item(),
        "gray_ssim": ssim(gray, truth).item(),
        "gray_auc": auc(gray, truth).item(),
        "psnr_best_of_n": sample_psnr.max().item(),
    }


def summarize(scores: list[ImageScores], with_best_of_n: bool) -> dict:
    """Means over images; ``colorfulness_ratio`` = mean colourfulness / mean reference colourfulness."""
    summary = {"num_images": len(scores)}
    for key in MEAN_KEYS + (["psnr_best_of_n"] if with_best_of_n else []):
        summary[key] = sum(getattr(s, key) for s in scores) / len(scores)
    reference = summary["colorfulness_reference"]
    summary["colorfulness_ratio"] = summary["colorfulness"] / reference if reference else None
    return summary


def scheduler_name(scheduler) -> str:
    names = {cls.__name__: name for name, cls in SCHEDULERS.items()}
    return names.get(type(scheduler).__name__, type(scheduler).__name__)


def evaluate(
    pipeline,
    data: str | Path,
    output_dir: str | Path,
    model_name: str,
    num_inference_steps: int = 25,
    seed: int = 0,
    limit: int | None = None,
    num_samples: int = 1,
    batch_size: int = 1,
    show_progress: bool = True,
) -> dict:
    """Colorize every photo of ``data`` at full resolution, score it, and write the report files."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = list_images(data)[:limit]
    shown = {str(path) for path, _ in pick_frames(files, REPORT_IMAGES)}
    scores, skipped, shown_rows, seconds = [], [], [], 0.0  # shown_rows: gray | samples | truth

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
                               num_images_per_prompt=num_samples, output_type="pt").images
            seconds += time.perf_counter() - started
            outputs = list(outputs)
            for position, ((index, path, group), image) in enumerate(zip(batch, images)):
                samples = torch.stack(outputs[position * num_samples : (position + 1) * num_samples])
                truth = pil_to_tensor(image)[None]
                scores.append(ImageScores(file=str(path), group=group, **score(samples, truth)))
                if str(path) in shown:
                    shown_rows.append([tensor_to_pil(rgb_to_gray(truth)[0]), *map(tensor_to_pil, samples), image])
        progress.update(len(files[start : start + batch_size]))
    progress.close()

    if not scores:
        raise ValueError(f"No photo of {data} could be colorized ({len(skipped)} skipped).")
    metrics = summarize(scores, with_best_of_n=num_samples > 1)
    metrics.update(
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
        strip = first_denoising_strip(pipeline, shown_rows[0][-1], num_inference_steps, seed)
        strip.save(output_dir / "denoising.png")
    write_report(metrics, output_dir / "report.md", has_pictures=strip is not None)
    return metrics


def first_denoising_strip(pipeline, image: Image.Image, num_inference_steps: int, seed: int) -> Image.Image:
    output = pipeline(image, num_inference_steps=num_inference_steps, return_intermediates=True,
                      num_intermediates=STRIP_FRAMES, generator=torch.Generator().manual_seed(seed))
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
        f"Model `{metrics['model']}`, scheduler `{metrics['scheduler']}`, {metrics['num_inference_steps']} steps, "
        f"seed {metrics['seed']}, {metrics['num_samples']} sample(s) per photo; {metrics['num_images']} photos "
        f"scored, {metrics['num_skipped']} skipped; {metrics['seconds_per_image']:.2f} s per photo.",
        "",
        "| metric | colorized | gray input |",
        "|---|---|---|",
    ]
    for key in ("psnr", "ssim", "auc"):
        lines.append(f"| {key.upper()} | {metrics[key]:.4f} | {metrics['gray_' + key]:.4f} |")
    lines.append(f"| colourfulness (truth {metrics['colorfulness_reference']:.1f}) | {metrics['colorfulness']:.1f} | 0.0 |")
    lines.append(f"| colourfulness ratio | {metrics['colorfulness_ratio']:.3f} | 0.000 |")
    if "psnr_best_of_n" in metrics:
        lines.append(f"| PSNR, best of {metrics['num_samples']} | {metrics['psnr_best_of_n']:.4f} | |")
    if "per_class" in metrics:
        lines += ["", "## Per class", "", "| class | photos | PSNR | gray PSNR | SSIM | AuC | colourfulness ratio |",
                  "|---|---|---|---|---|---|---|"]
        for group, m in metrics["per_class"].items():
            lines.append(f"| {group} | {m['num_images']} | {m['psnr']:.2f} | {m['gray_psnr']:.2f} | {m['ssim']:.3f} "
                         f"| {m['auc']:.3f} | {m['colorfulness_ratio']:.3f} |")
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
    return parser


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    pipeline = load_pipeline_or_exit(args)
    if pipeline is None:
        return 2
    try:
        metrics = evaluate(
            pipeline, args.data_dir, args.output_dir, model_name=args.model,
            num_inference_steps=args.num_inference_steps, seed=args.seed, limit=args.limit,
            num_samples=args.num_samples, batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"colorize evaluate: {error}", file=sys.stderr)
        return 2
    print(
        f"{metrics['num_images']} photos ({metrics['num_skipped']} skipped): PSNR {metrics['psnr']:.2f} dB "
        f"(gray {metrics['gray_psnr']:.2f}), SSIM {metrics['ssim']:.3f}, AuC {metrics['auc']:.3f} "
        f"(gray {metrics['gray_auc']:.3f}), colourfulness ratio {metrics['colorfulness_ratio']:.2f}; "
        f"{metrics['seconds_per_image']:.2f} s per photo -> {Path(args.output_dir) / 'report.md'}"
    )
    return 0
