#!/usr/bin/env python
"""Seconds per photo of this checkout against an earlier release (its code and its model), timed alternately.

    python benchmarks/release_speed.py --baseline efa1465 --photos outputs/data/validation.txt --num-photos 24

Each side runs in its own process (the two releases' packages cannot share one): it loads its
models/flowers, colorizes one photo to warm up, then times every photo once at its own defaults (one
sample, the photo's own size, seed 0). The sides take turns, --rounds times, the first side swapping
each round, so a slower moment of the machine falls on both. The baseline's files come from `git
archive` of its commit into a temporary folder (the checkout is untouched). Prints the mean seconds
per photo of each side and their ratio; writes `release_speed.json` to --output-dir. Run it on an
otherwise idle machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from colorize.image_io import find_images

ROOT = Path(__file__).resolve().parents[1]

# The timing loop each side runs, with its own release's package first on sys.path.
WORKER = """
import json, sys, time
import torch
import colorize
assert colorize.__file__.startswith(sys.argv[1]), f"{colorize.__file__} is not from {sys.argv[1]}"
from PIL import Image
from colorize import ColorizationPipeline
tree, photos = sys.argv[1], sys.argv[2:]
pipeline = ColorizationPipeline.from_pretrained(tree + "/models/flowers")
pipeline.set_progress_bar_config(disable=True)
images = [Image.open(path).convert("L") for path in photos]
pipeline(images[0], generator=torch.Generator().manual_seed(0))
seconds = []
for image in images:
    started = time.perf_counter()
    pipeline(image, generator=torch.Generator().manual_seed(0))
    seconds.append(time.perf_counter() - started)
print(json.dumps(seconds))
"""


def release_tree(commit: str, folder: Path) -> Path:
    """The files of ``commit`` (code and shipped model) extracted into ``folder``."""
    archive = folder / "release.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return folder / "tree"


def time_side(tree: Path, photos: list[str]) -> list[float]:
    """Seconds per photo of the release in ``tree`` (its package in src/ or at its top)."""
    package_root = tree / "src" if (tree / "src" / "colorize").is_dir() else tree
    env = dict(os.environ, PYTHONPATH=str(package_root))
    # Run from the tree itself: `python -c` puts the working directory first on sys.path, where another checkout's
    # package would shadow this one's.
    result = subprocess.run([sys.executable, "-c", WORKER, str(tree), *photos], cwd=tree, env=env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_photos(source: str, count: int) -> list[str]:
    """``count`` photos of a folder or list, spread over it (its classes), as absolute paths."""
    files = find_images(source)
    return [str(file.path.resolve()) for file in files[:: max(1, len(files) // count)][:count]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--baseline", default="efa1465", help="The earlier release's commit.")
    parser.add_argument("--photos", default="outputs/data/validation.txt", help="A folder of photos or a list file.")
    parser.add_argument("--num-photos", type=int, default=24, help="Photos timed per side and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Turns each side takes.")
    parser.add_argument("--output-dir", default="outputs/bench-release-speed")
    args = parser.parse_args()

    photos = read_photos(args.photos, args.num_photos)
    seconds = {"baseline": [], "this checkout": []}
    with tempfile.TemporaryDirectory() as folder:
        trees = {"baseline": release_tree(args.baseline, Path(folder)), "this checkout": ROOT}
        for round_number in range(args.rounds):
            order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
            for side in order:
                seconds[side] += time_side(trees[side], photos)
                print(f"round {round_number + 1}, {side}: {sum(seconds[side]) / len(seconds[side]):.3f} s/photo so far")
    means = {side: sum(values) / len(values) for side, values in seconds.items()}
    ratio = means["this checkout"] / means["baseline"]
    print(f"{args.baseline}: {means['baseline']:.3f} s/photo, this checkout: {means['this checkout']:.3f} s/photo, "
          f"ratio {ratio:.2f} ({len(photos)} photos x {args.rounds} rounds)")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "release_speed.json").write_text(json.dumps(
        {"baseline": args.baseline, "photos": photos, "rounds": args.rounds, "seconds_per_photo": means,
         "ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
