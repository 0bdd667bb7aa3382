#!/usr/bin/env python
"""Training throughput (images/s) per UNet preset, resolution and precision, side by side in one run.

    python benchmarks/throughput.py [--presets tiny small base] [--resolutions 32 64] [--repeats 4]

Each cell is `train_colorization.py`'s full step as `training_step.py` builds it (encoder features from
cached maps, EMA, `TrainingCrops` + DataLoader, diffusion loss, backward, AdamW), batch 16, timed after a
warm-up step, on the CPU. bf16 is autocast (emulated unless the CPU has AMX / AVX512-BF16). A GPU's figure
comes from the lent-GPU run's `summary.json` (docs/gpu.md). Do not run it while anything else uses the CPU.
"""

import argparse
import platform
import tempfile
from datetime import date
from types import SimpleNamespace

import torch
from training_step import synthetic_crops, time_steps

FULL_STEP = {"features", "ema", "data"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--resolutions", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=4, help="Timed fp32 steps per cell.")
    parser.add_argument("--bf16-repeats", type=int, default=1, help="Timed bf16 steps per cell (slow on AVX2 CPUs).")
    args = parser.parse_args()

    print(f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, full training step")
    print("| preset | px | " + " | ".join(f"{p} img/s" for p in args.precisions) + " |")
    print("|---|---|" + "---|" * len(args.precisions))
    with tempfile.TemporaryDirectory() as tmp_dir:
        for resolution in args.resolutions:
            crops = synthetic_crops(4 * args.batch_size, resolution, tmp_dir)
            for preset in args.presets:
                cells = []
                for precision in args.precisions:
                    repeats = args.repeats if precision == "fp32" else args.bf16_repeats
                    settings = SimpleNamespace(preset=preset, resolution=resolution, batch_size=args.batch_size,
                                               repeats=repeats)
                    seconds = time_steps(FULL_STEP, settings, crops, bf16=precision == "bf16")
                    cells.append(f"{args.batch_size / seconds:.1f}")
                print(f"| {preset} | {resolution} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
