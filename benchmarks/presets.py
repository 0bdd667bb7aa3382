#!/usr/bin/env python
"""Speed of each UNet preset, side by side in one run: training images/s and sampling seconds/image.

    python benchmarks/presets.py [--presets tiny small base] [--resolution 64] [--steps 25]

Training: `diffusion_loss` + backward + AdamW step on random crops at --resolution (batch 16), the
data loader excluded. Sampling: `ColorizationPipeline` with its DDPM scheduler on one 192 x 256
photo (the flowers size), --steps denoising steps, end to end. Ratios are against the first preset.
Do not run it while anything else uses the CPU.
"""

import argparse
import time

import numpy as np
import torch
from PIL import Image

from colorize import ColorizationPipeline
from colorize.color import DEFAULT_CHROMA_SCALE
from colorize.modeling import PRESETS, build_noise_scheduler, build_unet
from colorize.training.loss import diffusion_loss


def time_training(unet, scheduler, resolution: int, batch_size: int, repeats: int) -> float:
    """Images per second of training at ``resolution`` (after one warm-up step)."""
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    batch = torch.rand(batch_size, 3, resolution, resolution)
    unet.train()
    for step in range(repeats + 1):
        if step == 1:
            started = time.perf_counter()
        diffusion_loss(unet, scheduler, batch, DEFAULT_CHROMA_SCALE).backward()
        optimizer.step()
        optimizer.zero_grad()
    return batch_size * repeats / (time.perf_counter() - started)


def time_sampling(pipeline, steps: int, repeats: int) -> float:
    """Seconds per 192 x 256 photo, end to end (after one warm-up run)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 192, 3), dtype=np.uint8))
    pipeline(photo, num_inference_steps=2)
    started = time.perf_counter()
    for _ in range(repeats):
        pipeline(photo, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
    return (time.perf_counter() - started) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, resolution {args.resolution}, "
          f"batch {args.batch_size}, {args.steps} sampling steps")
    print(f"{'preset':8} {'params':>9} {'train img/s':>12} {'ratio':>6} {'sample s/img':>13} {'ratio':>6}")
    baseline = None
    for name in args.presets:
        torch.manual_seed(0)
        unet = build_unet(name, args.resolution)
        scheduler = build_noise_scheduler(DEFAULT_CHROMA_SCALE)
        parameters = sum(p.numel() for p in unet.parameters())
        train_speed = time_training(unet, scheduler, args.resolution, args.batch_size, args.repeats)
        pipeline = ColorizationPipeline(unet=unet.eval(), scheduler=scheduler)
        pipeline.set_progress_bar_config(disable=True)
        sample_time = time_sampling(pipeline, args.steps, args.repeats)
        baseline = baseline or (train_speed, sample_time)
        print(f"{name:8} {parameters / 1e6:8.2f}M {train_speed:12.1f} {train_speed / baseline[0]:6.2f} "
              f"{sample_time:13.2f} {sample_time / baseline[1]:6.2f}")


if __name__ == "__main__":
    with torch.inference_mode(False):
        main()
