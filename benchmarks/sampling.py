#!/usr/bin/env python
"""Sampling speed and quality per scheduler and step count, on one model, side by side in one run.

    python benchmarks/sampling.py --model outputs/flowers32 \
        --data outputs/flowers32/validation_split.txt --num-images 16 --output-dir outputs/bench-sampling

The original project sampled with 1000 DDPM steps; this times DDPM-1000 against DDIM-50 and
DPM-Solver++ at 10 / 20 / 25 steps (and DDPM / DDIM at 25), scoring each with `colorize evaluate`
on the same fixed photos and seed. Prints a table (time ratios against DDPM-1000) and writes
`sampling.md`, `sampling.json` and a quality-vs-steps plot `sampling.png` to --output-dir.
Run it on an otherwise idle machine.
"""

import argparse
import json
from pathlib import Path

import torch

from colorize import ColorizationPipeline
from colorize.evaluation.evaluate import evaluate
from colorize.schedulers import scheduler_from_name

SETTINGS = [("ddpm", 1000), ("ddim", 50), ("dpm", 10), ("dpm", 20), ("dpm", 25), ("ddim", 25), ("ddpm", 25)]
COLUMNS = ["psnr", "ssim", "auc", "colorfulness_ratio"]


def run_setting(pipeline, base_config, name, steps, args) -> dict:
    pipeline.scheduler = scheduler_from_name(name, base_config)
    if args.timestep_spacing:
        pipeline.scheduler = pipeline.scheduler.from_config(pipeline.scheduler.config, timestep_spacing=args.timestep_spacing)
    # DDPM-1000 takes 40x the time of the rest: --slow-images can score it on fewer photos.
    limit = args.slow_images if steps > 100 and args.slow_images else args.num_images
    metrics = evaluate(
        pipeline, args.data, Path(args.output_dir) / f"{name}-{steps}", model_name=args.model,
        num_inference_steps=steps, seed=args.seed, limit=limit, show_progress=False,
    )
    row = {"scheduler": name, "steps": steps, "images": metrics["num_images"],
           "seconds_per_image": metrics["seconds_per_image"]}
    row.update({key: metrics[key] for key in COLUMNS})
    row.update(gray_psnr=metrics["gray_psnr"], gray_auc=metrics["gray_auc"])
    print(f"{name:5} {steps:5d} {row['images']:4d} {row['seconds_per_image']:9.2f} "
          + " ".join(f"{row[key]:9.3f}" for key in COLUMNS), flush=True)
    return row


def write_outputs(rows, output_dir: Path):
    baseline = max(rows, key=lambda row: row["seconds_per_image"])  # DDPM-1000 when it was run
    for row in rows:
        row["speedup_vs_slowest"] = baseline["seconds_per_image"] / row["seconds_per_image"]
    (output_dir / "sampling.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| scheduler | steps | photos | s / photo | speed-up vs slowest | PSNR | SSIM | AuC | colourfulness ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['scheduler']} | {row['steps']} | {row['images']} | {row['seconds_per_image']:.2f} | "
                     f"{row['speedup_vs_slowest']:.1f}x | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['auc']:.3f} | "
                     f"{row['colorfulness_ratio']:.2f} |")
    lines.append(f"\nGray input baseline: PSNR {rows[-1]['gray_psnr']:.2f}, AuC {rows[-1]['gray_auc']:.3f}.")
    (output_dir / "sampling.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name in sorted({row["scheduler"] for row in rows}):
        points = sorted((row["steps"], row) for row in rows if row["scheduler"] == name)
        for axis, key in zip(axes, ("psnr", "auc", "colorfulness_ratio")):
            axis.plot([p[0] for p in points], [p[1][key] for p in points], "o-", label=name)
    for axis, key in zip(axes, ("PSNR (dB)", "AuC", "colourfulness ratio")):
        axis.set_xscale("log")
        axis.set_xlabel("denoising steps")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[0].axhline(rows[-1]["gray_psnr"], color="gray", linestyle="--", label="gray input")
    axes[1].axhline(rows[-1]["gray_auc"], color="gray", linestyle="--")
    axes[2].axhline(1.0, color="gray", linestyle=":")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(output_dir / "sampling.png", dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A saved ColorizationPipeline.")
    parser.add_argument("--data", required=True, help="Folder of colour photos, or a text file of their paths.")
    parser.add_argument("--num-images", type=int, default=16, help="Photos scored per setting.")
    parser.add_argument("--slow-images", type=int, default=None, help="Photos scored with DDPM-1000 (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", default=[f"{name}:{steps}" for name, steps in SETTINGS],
                        help="scheduler:steps pairs to compare.")
    parser.add_argument("--timestep-spacing", default=None, choices=["leading", "trailing", "linspace"],
                        help="Override the model's timestep spacing for every setting.")
    parser.add_argument("--output-dir", default="outputs/bench-sampling")
    args = parser.parse_args()

    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    pipeline = ColorizationPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    base_config = pipeline.scheduler.config
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model}")
    print(f"{'sched':5} {'steps':>5} {'imgs':>4} {'s/image':>9} " + " ".join(f"{key[:9]:>9}" for key in COLUMNS))
    settings = [(item.split(":")[0], int(item.split(":")[1])) for item in args.settings]
    rows = [run_setting(pipeline, base_config, name, steps, args) for name, steps in settings]
    write_outputs(rows, Path(args.output_dir))
    print(f"-> {args.output_dir}/sampling.md, sampling.png")


if __name__ == "__main__":
    main()
