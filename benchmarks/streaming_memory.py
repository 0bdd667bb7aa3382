#!/usr/bin/env python
"""Peak memory of training, photos cached in memory vs `--streaming`, on synthetic datasets of two sizes.

    python benchmarks/streaming_memory.py [--sizes 2000 20000] [--epochs 1]

For each size, writes that many synthetic 96 x 128 JPEG photos, then runs `train_colorization.py` (tiny
preset, 32 px, batch 16, no image encoder: its cached maps would add 0.16 MB a photo to the cached mode)
for --epochs passes over the photos, cached and streamed, each in its own process, and reports the peak
resident memory (ru_maxrss) of each. Do not run it while anything else uses the CPU.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def write_photos(folder: Path, count: int):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (96, 128, 3)).astype(np.int16)
    for index in range(count):
        shifted = np.roll(base, index % 128, axis=1) + rng.integers(-20, 20, (1, 1, 3))
        Image.fromarray(shifted.clip(0, 255).astype(np.uint8)).save(folder / f"{index:06d}.jpg", quality=85)


MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_mib(photos: Path, output: Path, steps: int, streaming: bool) -> tuple[float, float]:
    """(peak resident MiB of the training process, seconds)."""
    command = [sys.executable, str(ROOT / "train_colorization.py"), "--train_data_dir", str(photos),
               "--output_dir", str(output), "--model_preset", "tiny", "--resolution", "32", "--train_batch_size", "16",
               "--no-image_encoder", "--max_train_steps", str(steps), "--validation_steps", "0",
               "--checkpointing_steps", str(steps), "--validation_split", "0.01",
               "--num_validation_images", "1", "--num_scored_validation_images", "1", "--seed", "0", "--mixed_precision", "no"]
    if streaming:
        command.append("--streaming")
    started = time.perf_counter()
    kib = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True).stdout
    return int(kib.split()[-1]) / 1024, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[2000, 20000])
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()
    print("| photos | steps | cached peak MiB | streaming peak MiB | cached s | streaming s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            photos = Path(tmp) / f"photos-{size}"
            write_photos(photos, size)
            steps = max(1, int(args.epochs * size / 16))
            cached, cached_s = peak_mib(photos, Path(tmp) / f"cached-{size}", steps, streaming=False)
            streamed, streamed_s = peak_mib(photos, Path(tmp) / f"streamed-{size}", steps, streaming=True)
            print(f"| {size} | {steps} | {cached:.0f} | {streamed:.0f} | {cached_s:.0f} | {streamed_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
