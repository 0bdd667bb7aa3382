#!/usr/bin/env python
"""Photos per second of `colorize FOLDER -o OUT` for one and several processes and batch sizes, side by side.

    python benchmarks/folder_throughput.py [--model models/flowers] [--num-photos 16] [--sizes 256 1024]
        [--processes 1 2] [--batch-sizes 1 4]

For each photo size (the longer side, px; the bundled sample photos resized) and each setting, runs the command
as a user does (`python -m colorize`, or `accelerate launch --multi_gpu --num_processes N -m colorize` with
ACCELERATE_USE_CPU on a machine without a GPU, each process one thread per core it gets) into a fresh folder,
and reports wall-clock photos per second, start-up (interpreter, model loading) included, and the ratio to the
first setting. Run it on an idle machine.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def make_photos(folder: Path, count: int, long_side: int) -> Path:
    """``count`` photos in ``folder``: the bundled samples, in turn, resized so their longer side is ``long_side``."""
    samples = sorted((ROOT / "samples").glob("*.jpg"))
    folder.mkdir(parents=True)
    for index in range(count):
        with Image.open(samples[index % len(samples)]) as image:
            scale = long_side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(folder / f"{index:05d}.jpg", quality=95)
    return folder


def command(processes: int, photos: Path, output: Path, model: str, batch_size: int) -> tuple[list[str], dict]:
    """The command line and environment of one run."""
    arguments = ["-m", "colorize", str(photos), "-o", str(output), "--model", model, "--batch-size", str(batch_size)]
    environment = dict(os.environ)
    if processes == 1:
        return [sys.executable, *arguments], environment
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml"),
              "--multi_gpu", "--num_processes", str(processes), "--main_process_port", "29561"]
    if not torch.cuda.is_available():
        environment.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // processes)))
    return launch + arguments, environment


def run(processes: int, photos: Path, output: Path, model: str, batch_size: int) -> float:
    """Seconds of wall-clock time for one run."""
    line, environment = command(processes, photos, output, model, batch_size)
    started = time.perf_counter()
    result = subprocess.run(line, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(line)}\n{result.stderr[-2000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "flowers"), help="The pipeline to colorize with.")
    parser.add_argument("--num-photos", type=int, default=16, help="Photos per run.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="Longer sides of the photos (px).")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="Process counts to compare.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4], help="--batch-size values to compare.")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} cores, model {args.model}, {args.num_photos} photos a run")
    print(f"{'longer side':>11} {'processes':>9} {'batch':>5} {'seconds':>8} {'photos/s':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            photos = make_photos(Path(scratch) / f"photos-{size}", args.num_photos, size)
            first = None
            for processes in args.processes:
                for batch_size in args.batch_sizes:
                    output = Path(scratch) / f"out-{size}-{processes}-{batch_size}"
                    seconds = run(processes, photos, output, args.model, batch_size)
                    rate = args.num_photos / seconds
                    first = first or rate
                    print(f"{size:>11} {processes:>9} {batch_size:>5} {seconds:>8.1f} {rate:>8.2f} {rate / first:>6.2f}",
                          flush=True)


if __name__ == "__main__":
    main()
