#!/usr/bin/env python
"""Where a training step's time goes, side by side in one run: the bare UNet step, then each piece that
`train_colorization.py` adds (image-encoder features, EMA, data loading), in fp32 and bf16 autocast.

    python benchmarks/training_step.py [--preset small] [--resolution 32] [--batch-size 16] [--repeats 10]

Each row adds one piece to the row above; "ratio" is against the bare fp32 step. The data comes from
synthetic 192 x 256 photos through the real `TrainingCrops` + DataLoader, with cached encoder maps of
the flowers' size (1280 x 8 x 6). Do not run it while anything else uses the CPU.
"""

import argparse
import time

import numpy as np
import torch
from datasets import Dataset, Image
from diffusers.training_utils import EMAModel
from PIL import Image as PILImage

from colorize.color import DEFAULT_CHROMA_SCALE
from colorize.training.crops import TrainingCrops
from colorize.image_encoder import FEATURE_CHANNELS, ImageEncoder
from colorize.modeling import PRESETS, build_noise_scheduler, build_unet
from colorize.training.loss import crop_features, diffusion_loss


def synthetic_crops(count: int, resolution: int, tmp_dir) -> TrainingCrops:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = f"{tmp_dir}/{index}.png"
        PILImage.fromarray(rng.integers(0, 255, (256, 192, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    dataset = Dataset.from_dict({"image": paths}).cast_column("image", Image(decode=False))
    features = [torch.randn(FEATURE_CHANNELS, 8, 6).half() for _ in paths]
    return TrainingCrops(dataset, resolution, features=features)


def time_steps(pieces: set, args, crops, bf16: bool) -> float:
    """Seconds per optimiser step with ``pieces`` (subset of features, ema, data) switched on."""
    torch.manual_seed(0)
    encoder = ImageEncoder(projection_channels=16)
    unet = build_unet(args.preset, args.resolution, feature_channels=16 if "features" in pieces else 0).train()
    scheduler = build_noise_scheduler(DEFAULT_CHROMA_SCALE)
    parameters = list(unet.parameters()) + list(encoder.projection.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    emas = [EMAModel(unet.parameters(), foreach=True), EMAModel(encoder.parameters(), foreach=True)]
    loader = torch.utils.data.DataLoader(crops, batch_size=args.batch_size, shuffle=True, drop_last=True)
    fixed = next(iter(loader))
    batches = iter(loader)
    for step in range(args.repeats + 1):
        if step == 1:
            started = time.perf_counter()
        if "data" in pieces:
            batch = next(batches, None) or next(batches := iter(loader))
        else:
            batch = fixed
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = None
            if "features" in pieces:
                features = crop_features(encoder(batch["features"])[0], batch["feature_grid"])
            loss = diffusion_loss(unet, scheduler, batch["pixel_values"], DEFAULT_CHROMA_SCALE, features=features)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if "ema" in pieces:
            emas[0].step(unet.parameters())
            emas[1].step(encoder.parameters())
        loss.item()
    return (time.perf_counter() - started) / args.repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=list(PRESETS))
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="Skip the bf16 autocast rows.")
    args = parser.parse_args()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp_dir:
        crops = synthetic_crops(4 * args.batch_size, args.resolution, tmp_dir)
        rows = [("bare UNet step", set()), ("+ encoder features", {"features"}),
                ("+ EMA", {"features", "ema"}), ("+ data loading", {"features", "ema", "data"})]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {args.preset}, "
              f"{args.resolution} px, batch {args.batch_size}")
        print(f"{'step':24} {'precision':>9} {'s/step':>8} {'img/s':>7} {'ratio':>6}")
        baseline = None
        for precision in ["fp32", "bf16"] if args.bf16 else ["fp32"]:
            for name, pieces in rows if precision == "fp32" else rows[:1]:
                seconds = time_steps(pieces, args, crops, bf16=precision == "bf16")
                baseline = baseline or seconds
                print(f"{name:24} {precision:>9} {seconds:8.3f} {args.batch_size / seconds:7.1f} {seconds / baseline:6.2f}")


if __name__ == "__main__":
    main()
