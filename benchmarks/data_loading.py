#!/usr/bin/env python
"""Training data loading: decoding every image each time vs `TrainingCrops`' in-memory cache, side by side.

    python benchmarks/data_loading.py --train_data_dir ../shared/data/flowers/train --resolution 32

Times batches of 16 crops drawn in the training order (shuffled) from the DataLoader, for the
uncached path (JPEG decode + resize per crop) and the cached one after its first epoch, and prints
the ratio; compare with the model step time from presets.py. Run it on an idle machine.
"""

import argparse
import time

import torch

from colorize.training.crops import TrainingCrops
from colorize.training.sources import drop_unusable_images, load_image_dataset


def seconds_per_batch(crops: TrainingCrops, batch_size: int, batches: int) -> float:
    loader = torch.utils.data.DataLoader(crops, batch_size=batch_size, shuffle=True)
    started, count = time.perf_counter(), 0
    for _ in loader:
        count += 1
        if count == batches:
            break
    return (time.perf_counter() - started) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_data_dir", required=True)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=50)
    args = parser.parse_args()

    dataset, report = drop_unusable_images(load_image_dataset(train_data_dir=args.train_data_dir), show_progress=False)
    print(f"{report}; resolution {args.resolution}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    uncached = seconds_per_batch(TrainingCrops(dataset, args.resolution, cache=False), args.batch_size, args.batches)
    cached_crops = TrainingCrops(dataset, args.resolution)
    started = time.perf_counter()
    for index in range(len(cached_crops)):  # the first epoch fills the cache
        cached_crops.resized(index)
    fill_seconds = time.perf_counter() - started
    cached = seconds_per_batch(cached_crops, args.batch_size, args.batches)
    megabytes = sum(t.numel() for t in cached_crops._resized.values()) / 2**20
    print(f"{'path':10} {'s/batch':>9} {'ratio':>7}")
    print(f"{'decode':10} {uncached:9.4f} {1.0:7.2f}")
    print(f"{'cached':10} {cached:9.4f} {cached / uncached:7.3f}")
    print(f"cache: {len(cached_crops._resized)} images, {megabytes:.1f} MiB, filled in {fill_seconds:.1f} s")


if __name__ == "__main__":
    main()
