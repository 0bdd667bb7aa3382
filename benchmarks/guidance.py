#!/usr/bin/env python
"""Classifier-free guidance on the image encoder's features and the saturation gain: vividness against
correctness, per setting.

    python benchmarks/guidance.py --model outputs/flowers --data data/validation.txt \
        --reference-data data/train.txt --settings 1:25 2:13 2:13:1.06 2.5:13:1 --num-samples 4 \
        --output-dir outputs/bench-guidance

Each setting is ``guidance_scale:steps[:saturation]`` (DPM-Solver++ steps; a guided step runs the UNet twice, so
2:13 costs about what 1:25 does; without a saturation, the model's own). Every setting colorizes the same photos with the same seed and is scored
by `colorize evaluate`, with one chroma-only classifier fitted once on --reference-data. Prints a table and
writes guidance.md / guidance.json to --output-dir. Run it on an otherwise idle machine.
"""

import argparse
import json
from pathlib import Path

from colorize import ColorizationPipeline
from colorize.evaluation.evaluate import evaluate, fit_chroma_classifier

COLUMNS = ["seconds_per_image", "psnr", "psnr_best_of_n", "auc", "colorfulness_ratio", "jsd", "mean_class_jsd",
           "chroma_accuracy", "saturation"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A pipeline with an image encoder.")
    parser.add_argument("--data", required=True, help="Photos to colorize (folder with classes or list file).")
    parser.add_argument("--reference-data", required=True, help="Real photos with classes for the chroma classifier.")
    parser.add_argument("--settings", nargs="+", default=["1:25", "2:25", "2:13", "3:13"], help="scale:steps or scale:steps:saturation.")
    parser.add_argument("--num-samples", type=int, default=1, help="Colorizations per photo (all enter the JSD).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args()

    pipeline = ColorizationPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    if pipeline.image_encoder is None:
        parser.error(f"{args.model} has no image encoder: guidance_scale does nothing there")
    classifier = fit_chroma_classifier(args.reference_data, show_progress=False)
    rows = []
    for setting in args.settings:
        scale, steps, *saturation = setting.split(":")
        saturation = float(saturation[0]) if saturation else None
        metrics = evaluate(
            pipeline, args.data, Path(args.output_dir) / setting.replace(":", "-"), model_name=args.model,
            num_inference_steps=int(steps), seed=args.seed, guidance_scale=float(scale), kid=False,
            classifier=classifier, show_progress=False, num_samples=args.num_samples, saturation=saturation,
        )
        rows.append({"guidance_scale": float(scale), "steps": int(steps), "images": metrics["num_images"],
                     "chroma_accuracy_real": metrics["chroma_accuracy_real"], "gray_psnr": metrics["gray_psnr"],
                     **{key: metrics.get(key) for key in COLUMNS}})
        print(json.dumps(rows[-1]), flush=True)
    header = ("| guidance | steps | saturation | s / photo | PSNR | best of N | AuC | colourfulness ratio | ab JSD "
              "| per-class JSD | chroma accuracy |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"] + [
        f"| {r['guidance_scale']:g} | {r['steps']} | {r['saturation']:g} | {r['seconds_per_image']:.2f} | {r['psnr']:.2f} "
        f"| {r.get('psnr_best_of_n') or float('nan'):.2f} | {r['auc']:.3f} | {r['colorfulness_ratio']:.2f} | {r['jsd']:.3f} "
        f"| {r['mean_class_jsd']:.3f} | {r['chroma_accuracy']:.2f} |"
        for r in rows
    ]
    footer = (f"{rows[0]['images']} photos, {args.num_samples} sample(s) each, seed {args.seed}; gray input PSNR {rows[0]['gray_psnr']:.2f}; the chroma "
              f"classifier names {rows[0]['chroma_accuracy_real']:.2f} of the real photos right.")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "guidance.md").write_text("\n".join(lines) + "\n\n" + footer + "\n")
    (output_dir / "guidance.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines) + "\n\n" + footer)


if __name__ == "__main__":
    main()
