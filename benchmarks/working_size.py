#!/usr/bin/env python
"""Time per photo at each working size, side by side in one run, against a baseline model.

    python benchmarks/working_size.py --data outputs/data/validation.txt --sizes 32 48 \
        --baseline-model old-model --baseline-steps 25

Colorizes the first --num-images photos of --data (full resolution, --num-samples each, default settings
otherwise) with --model at each of --sizes (`working_size`, the shorter side of the grid the UNet denoises
on) and, when given, with --baseline-model at --baseline-steps; the settings take turns photo by photo, so
that drift in the machine's speed hits them alike. Prints seconds per photo and the ratio to the first row.
Run it on an idle machine. Quality per working size: `colorize evaluate --working-size N`.
"""

import argparse
import time

import torch

from colorize import ColorizationPipeline
from colorize.image_io import find_images, open_image


def load(model: str) -> ColorizationPipeline:
    pipeline = ColorizationPipeline.from_pretrained(model)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="The pipeline timed at each size (default: the shipped one).")
    parser.add_argument("--data", required=True, help="Folder of photos, or a text file of their paths.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48], help="Working sizes to time.")
    parser.add_argument("--baseline-model", default=None, help="A pipeline timed at its own working size.")
    parser.add_argument("--baseline-steps", type=int, default=25, help="The baseline's denoising steps.")
    parser.add_argument("--num-images", type=int, default=12)
    parser.add_argument("--num-samples", type=int, default=4, help="Colorizations per photo, in one call.")
    args = parser.parse_args()

    images = [open_image(file.path) for file in find_images(args.data)[: args.num_images]]
    pipeline = load(args.model)
    settings = [(f"{args.model or 'shipped model'}, working size {size}", pipeline, {"working_size": size})
                for size in args.sizes]
    if args.baseline_model:
        settings.insert(0, (f"{args.baseline_model}, {args.baseline_steps} steps", load(args.baseline_model),
                            {"num_inference_steps": args.baseline_steps}))
    seconds = [0.0] * len(settings)
    for _, model, options in settings:  # warm-up
        model(images[0], num_images_per_prompt=args.num_samples, **options)
    for image in images:
        for index, (_, model, options) in enumerate(settings):
            started = time.perf_counter()
            model(image, num_images_per_prompt=args.num_samples, generator=torch.Generator().manual_seed(0), **options)
            seconds[index] += time.perf_counter() - started
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(images)} photos, "
          f"{args.num_samples} samples each")
    print(f"{'setting':<60} {'s / photo':>9} {'ratio':>6}")
    for (name, _, _), total in zip(settings, seconds):
        print(f"{name:<60} {total / len(images):9.2f} {total / seconds[0]:6.2f}")


if __name__ == "__main__":
    main()
