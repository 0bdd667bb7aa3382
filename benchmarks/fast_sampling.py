#!/usr/bin/env python
"""UNet passes per photo x seconds per photo x quality, per model and sampler setting, side by side in one run.

    python benchmarks/fast_sampling.py --models models/flowers outputs/distill \
        --data outputs/data/validation.txt --reference outputs/data/train.txt \
        --settings dpm/13/0.8 dpm/4/0.8 unipc/4/0.8 dpm/4/0.8/karras --num-samples 4 --output-dir outputs/bench-fast

A setting is ``SCHEDULER/STEPS/STRENGTH[/SIGMAS]``: a sampler of `colorize.schedulers` (``dpm3``: DPM-Solver++ of
order 3), its number of steps, the chroma prior's strength (the pipeline runs the last ``strength`` of the steps),
and optionally ``karras``, ``exponential`` or ``lu`` sigmas. Every setting runs at the pipeline's default guidance
scale (one UNet pass a step on a guidance-distilled model, two otherwise), saturation and working size.

Quality: `colorize evaluate`'s scores on --data with --num-samples samples per photo (the chroma judges fitted once
on --reference). Time: one sample per photo, each photo's own size, on the first --timing-photos photos after a
warm-up, settings taken in turn photo by photo (so a slower moment of the machine falls on all of them). UNet
passes: the images the UNet processed for one sample of one photo. Writes ``fast_sampling.md`` and
``fast_sampling.json`` to --output-dir. Run it on an otherwise idle machine.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from colorize import ColorizationPipeline
from colorize.evaluation.evaluate import evaluate, fit_chroma_classifier
from colorize.image_io import find_images, open_image
from colorize.schedulers import scheduler_from_name

SIGMAS = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas", "lu": "use_lu_lambdas"}
COLUMNS = [
    ("chroma_accuracy_ratio", "chroma classifier / real", 2),
    ("chroma_map_accuracy_ratio", "CNN judge / real", 2),
    ("mean_class_jsd", "per-class JSD", 3),
    ("colorfulness_ratio", "colourfulness ratio", 2),
    ("psnr", "PSNR, mean of samples", 2),
    ("psnr_best_of_n", "best of samples", 2),
]


def parse_setting(text: str) -> dict:
    parts = text.split("/")
    if not 3 <= len(parts) <= 4 or (len(parts) == 4 and parts[3] not in SIGMAS):
        raise argparse.ArgumentTypeError(f"a setting is SCHEDULER/STEPS/STRENGTH[/{'|'.join(SIGMAS)}], got '{text}'")
    return {"name": text, "scheduler": parts[0], "steps": int(parts[1]), "strength": float(parts[2]),
            "sigmas": parts[3] if len(parts) == 4 else None}


def apply_setting(pipeline: ColorizationPipeline, base_config, setting: dict):
    """The pipeline's scheduler for ``setting``, built from the model's own scheduler config."""
    name, overrides = setting["scheduler"], {}
    if name == "dpm3":
        name, overrides = "dpm", {"solver_order": 3}
    if setting["sigmas"]:
        overrides[SIGMAS[setting["sigmas"]]] = True
    scheduler = scheduler_from_name(name, base_config)
    pipeline.scheduler = scheduler.from_config(scheduler.config, **overrides) if overrides else scheduler


def unet_passes(pipeline, image, setting: dict) -> int:
    """The images the UNet processes to colorize ``image`` once (a guided step counts two)."""
    counted = []
    hook = pipeline.unet.register_forward_hook(lambda module, args, output: counted.append(args[0].shape[0]))
    try:
        pipeline(image, num_inference_steps=setting["steps"], strength=setting["strength"], output_type="np")
    finally:
        hook.remove()
    return sum(counted)


def time_settings(runs: list, photos: list, seed: int) -> list[float]:
    """Seconds per photo (one sample) of each (pipeline, setting) in ``runs``, taken in turn on every photo."""
    totals = [0.0] * len(runs)
    for pipeline, setting in runs:  # warm-up: first-call allocations and caches
        pipeline(photos[0], num_inference_steps=setting["steps"], strength=setting["strength"], output_type="np")
    for photo in photos:
        for index, (pipeline, setting) in enumerate(runs):
            generator = torch.Generator().manual_seed(seed)
            started = time.perf_counter()
            pipeline(photo, num_inference_steps=setting["steps"], strength=setting["strength"], generator=generator)
            totals[index] += time.perf_counter() - started
    return [total / len(photos) for total in totals]


def markdown_table(rows: list[dict], baseline_seconds: float) -> str:
    header = ["model", "setting", "UNet passes / photo", "s / photo", "ratio"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"], row["setting"], str(row["unet_passes"]), f"{row['seconds_per_photo']:.3f}",
                 f"{row['seconds_per_photo'] / baseline_seconds:.2f}"]
        cells += ["" if row.get(key) is None else f"{row[key]:.{digits}f}" for key, _, digits in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["models/flowers"], help="Pipeline folders to compare.")
    parser.add_argument("--data", required=True, help="Validation photos with classes (folder or list file).")
    parser.add_argument("--reference", required=True, help="Real photos with classes to fit the chroma judges on.")
    parser.add_argument("--settings", nargs="+", type=parse_setting, default=[parse_setting("dpm/13/0.8")],
                        help="SCHEDULER/STEPS/STRENGTH[/SIGMAS] settings; the first row is the time ratios' baseline.")
    parser.add_argument("--num-samples", type=int, default=4, help="Samples per photo for the quality scores.")
    parser.add_argument("--limit", type=int, default=None, help="Score only the first N photos of --data.")
    parser.add_argument("--timing-photos", type=int, default=12, help="Photos timed per setting (one sample each).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="outputs/bench-fast")
    args = parser.parse_args()

    output_dir = Path(args.output_dir)
    classifier = fit_chroma_classifier(args.reference)
    files = find_images(args.data)
    photos = [open_image(file.path).convert("L") for file in files[: args.timing_photos]]
    runs, rows = [], []
    for model in args.models:
        pipeline = ColorizationPipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        base_config = pipeline.scheduler.config
        for setting in args.settings:
            run = ColorizationPipeline.from_pipe(pipeline)  # shares the weights, its own scheduler
            run.set_progress_bar_config(disable=True)
            apply_setting(run, base_config, setting)
            metrics = evaluate(
                run, args.data, output_dir / Path(model).name / setting["name"].replace("/", "-"), model_name=model,
                num_inference_steps=setting["steps"], strength=setting["strength"], seed=args.seed,
                limit=args.limit, num_samples=args.num_samples, classifier=classifier, kid=False, show_progress=False,
            )
            row = {"model": model, "setting": setting["name"], "unet_passes": unet_passes(run, photos[0], setting)}
            row.update({key: metrics.get(key) for key, _, _ in COLUMNS})
            row["gray_psnr"] = metrics["gray_psnr"]
            print(json.dumps(row))
            rows.append(row)
            runs.append((run, setting))
    for row, seconds in zip(rows, time_settings(runs, photos, args.seed)):
        row["seconds_per_photo"] = seconds
    table = markdown_table(rows, rows[0]["seconds_per_photo"])
    print(table)
    (output_dir / "fast_sampling.md").write_text(table)
    (output_dir / "fast_sampling.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
