#!/usr/bin/env python
"""End-to-end time and peak memory to colorize one large photo at the default settings.

    python benchmarks/full_resolution.py --model outputs/flowers32 [--size 1024x768]

Times `pipeline(photo)` (gray conversion, sampling at the working resolution, upsampling and
recombination with the full-resolution L) for a --size photo and, side by side, for a 256 x 192
one; reports the peak resident memory each adds over the loaded model. Run it on an idle machine.
"""

import argparse
import resource
import time

import numpy as np
import torch
from PIL import Image

from colorize import ColorizationPipeline


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def measure(pipeline, image, steps: int, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        pipeline(image, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
    return (time.perf_counter() - started) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the large photo.")
    parser.add_argument("--num-inference-steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))

    pipeline = ColorizationPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model} "
          f"({type(pipeline.scheduler).__name__}, {args.num_inference_steps} steps, "
          f"working side {pipeline.default_working_size()})")
    small, large = photo(256, 192), photo(width, height)
    pipeline(small, num_inference_steps=2)  # warm-up
    baseline = peak_rss_mib()
    small_seconds = measure(pipeline, small, args.num_inference_steps, args.repeats)
    small_peak = peak_rss_mib() - baseline
    large_seconds = measure(pipeline, large, args.num_inference_steps, args.repeats)
    large_peak = peak_rss_mib() - baseline
    print(f"{'photo':>10} {'seconds':>8} {'ratio':>6} {'peak MiB over model':>20}")
    print(f"{'256x192':>10} {small_seconds:8.2f} {1.0:6.2f} {small_peak:20.0f}")
    print(f"{args.size:>10} {large_seconds:8.2f} {large_seconds / small_seconds:6.2f} {large_peak:20.0f}")
    print(f"model loaded + warm-up: {baseline:.0f} MiB resident")


if __name__ == "__main__":
    main()
