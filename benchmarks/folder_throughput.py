#!/usr/bin/env python
"""Photos per second of `colorize FOLDER -o OUT` for one and several processes and batch sizes, side by side.

    python benchmarks/folder_throughput.py [--model models/flowers] [--num-photos 16] [--sizes 256 1024]
        [--processes 1 2] [--batch-sizes 1 4] [--trees . ../old-checkout]

For each photo size (the longer side, px; the bundled sample photos resized) and each setting, runs the command
as a user does (`python -m colorize`, or `accelerate launch --multi_gpu --num_processes N -m colorize` with
ACCELERATE_USE_CPU on a machine without a GPU, each process one thread per core it gets) into a fresh folder,
and reports wall-clock photos per second, start-up (interpreter, model loading) included, the photos per second
of the colorizing loop alone (from the command's own "s per image" line; the slowest process), and the ratio of
each to the first setting. With several ``--trees`` (checkouts, e.g. a `git worktree` of an earlier commit) each
setting runs the command of every tree in turn, with the same model and photos: code against code. Run it on an
idle machine.
"""

import argparse
import os
import re
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


def command(processes: int, photos: Path, output: Path, model: str, batch_size: int,
            tree: Path) -> tuple[list[str], dict]:
    """The command line and environment of one run of ``tree``'s `colorize` package."""
    arguments = ["-m", "colorize", str(photos), "-o", str(output), "--model", model, "--batch-size", str(batch_size)]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    if processes == 1:
        return [sys.executable, *arguments], environment
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml"),
              "--multi_gpu", "--num_processes", str(processes), "--main_process_port", "29561"]
    if not torch.cuda.is_available():
        environment.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // processes)))
    return launch + arguments, environment


def run(processes: int, photos: Path, output: Path, model: str, batch_size: int, tree: Path) -> tuple[float, float]:
    """Seconds of wall-clock time for one run, and of its colorizing loop (the slowest process's)."""
    line, environment = command(processes, photos, output, model, batch_size, tree)
    started = time.perf_counter()
    result = subprocess.run(line, env=environment, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(line)}\n{result.stderr[-2000:]}")
    loops = [int(done) * float(each) for done, each in re.findall(r"(\d+) done.*; ([\d.]+) s per image", result.stdout)]
    return seconds, max(loops)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "flowers"), help="The pipeline to colorize with.")
    parser.add_argument("--num-photos", type=int, default=16, help="Photos per run.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="Longer sides of the photos (px).")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="Process counts to compare.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4], help="--batch-size values to compare.")
    parser.add_argument("--trees", type=Path, nargs="+", default=[ROOT],
                        help="Checkouts whose `colorize` command to time, in turn, with the same model and photos.")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} cores, model {args.model}, {args.num_photos} photos a run")
    print(f"{'tree':>20} {'longer side':>11} {'processes':>9} {'batch':>5} {'seconds':>8} {'photos/s':>8} {'ratio':>6} "
          f"{'loop photos/s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            photos = make_photos(Path(scratch) / f"photos-{size}", args.num_photos, size)
            first = None
            for processes in args.processes:
                for batch_size in args.batch_sizes:
                    for number, tree in enumerate(args.trees):
                        output = Path(scratch) / f"out-{size}-{processes}-{batch_size}-{number}"
                        seconds, loop = run(processes, photos, output, args.model, batch_size, tree.resolve())
                        rate, loop_rate = args.num_photos / seconds, args.num_photos / loop
                        first = first or (rate, loop_rate)
                        print(f"{str(tree)[-20:]:>20} {size:>11} {processes:>9} {batch_size:>5} {seconds:>8.1f} "
                              f"{rate:>8.2f} {rate / first[0]:>6.2f} {loop_rate:>13.2f} {loop_rate / first[1]:>6.2f}",
                              flush=True)


if __name__ == "__main__":
    main()
