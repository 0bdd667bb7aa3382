"""Training data that streams: photos read, cropped and dropped again, never all held in memory.

`train_colorization.py --streaming` trains on archives larger than RAM from a 🤗 datasets `IterableDataset`:
a Hub dataset id, local shards (parquet files or webdataset ``.tar`` files), or a local folder or list file
(its paths become an iterable dataset of ``num_shards`` shards; the images are opened only when used).
A shuffle buffer mixes the stream, each process of a multi-process run reads its own shards
(`datasets.distributed.split_dataset_by_node`), and each item carries its place in the stream (epoch,
position), so a checkpoint can record where a process stopped and a resumed run skips exactly what it
had used: the same items, crops and flips as an uninterrupted run.
"""

import logging
from collections import Counter
from typing import Callable

import torch
import torch.nn.functional as F
from datasets import Image, IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from PIL import Image as PILImage

from .data import (
    IMAGE_COLUMN,
    derived_seed,
    feature_grid,
    image_column_of,
    image_tensor,
    load_local_images,
    local_shards,
    random_crop,
    usable_image,
)

logger = logging.getLogger(__name__)

def open_stream(train_data_dir: str | None = None, dataset_name: str | None = None, dataset_config_name: str | None = None,
                image_column: str = IMAGE_COLUMN, cache_dir: str | None = None, num_shards: int = 64) -> IterableDataset:
    """An `IterableDataset` of undecoded images in column ``"image"``: a Hub dataset streamed, local parquet or
    webdataset shards, or a folder / list file of images split into ``num_shards`` shards of paths."""
    if dataset_name is not None:
        stream = load_dataset(dataset_name, dataset_config_name, split="train", streaming=True, cache_dir=cache_dir)
    elif (shards := local_shards(train_data_dir)) is not None:
        builder, files = shards
        stream = load_dataset(builder, data_files={"train": files}, split="train", streaming=True)
    else:  # a folder or list of image files: their paths, in shards
        images = load_local_images(train_data_dir)
        return images.to_iterable_dataset(num_shards=max(1, min(num_shards, len(images))))
    column = image_column_of(stream, image_column)
    if column != IMAGE_COLUMN:
        stream = stream.rename_column(column, IMAGE_COLUMN)
    return stream.cast_column(IMAGE_COLUMN, Image(decode=False))


class StreamingCrops(torch.utils.data.IterableDataset):
    """Square training crops of a streamed dataset, endlessly: epoch after epoch of ``stream``, shuffled through
    a buffer of ``shuffle_buffer`` items with a seed of (``seed``, epoch), this process's share of it.

    Items are those of `colorize.data.TrainingCrops` (``pixel_values``; with ``features``, a function from the
    whole photo to its frozen encoder map (C, fh, fw), the map and crop box to build the aligned feature grid
    in `collate_crops`), plus ``epoch`` and ``position``, the item's place in this process's stream. Crops and
    flips are drawn from (seed, epoch, position, rank). ``start`` = (epoch, position) resumes a stream where a
    checkpoint says it stopped: earlier items of that epoch are skipped without being decoded. Undecodable and
    gray images are skipped and counted in ``dropped``.
    """

    def __init__(self, stream: IterableDataset, resolution: int, seed: int, *, shuffle_buffer: int = 1000,
                 center_crop: bool = False, random_flip: bool = True,
                 features: Callable[[PILImage.Image], torch.Tensor] | None = None,
                 start: tuple[int, int] = (0, 0), rank: int = 0, world_size: int = 1):
        if shuffle_buffer:
            stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
        self.stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
        self.resolution, self.seed, self.rank = resolution, seed, rank
        self.center_crop, self.random_flip, self.features = center_crop, random_flip, features
        self.start = start
        self.dropped = Counter()

    def item(self, image: PILImage.Image, epoch: int, position: int) -> dict:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, position, self.rank))
        pixels = image_tensor(image, self.resolution)
        crop, box, flip = random_crop(pixels, self.resolution, self.center_crop, self.random_flip, generator)
        item = {"pixel_values": crop.float() / 255.0, "epoch": epoch, "position": position}
        if self.features is not None:
            item.update(features=self.features(image), box=box, image_size=tuple(pixels.shape[1:]), flip=flip)
        return item

    def __iter__(self):
        epoch, start = self.start
        while True:
            self.stream.set_epoch(epoch)
            used = 0
            for position, example in enumerate(self.stream):
                if position < start:
                    continue
                image, reason = usable_image(example[IMAGE_COLUMN])
                if reason is not None:
                    if not self.dropped[reason]:
                        logger.warning(f"Skipping {reason} images of the stream (the first at position {position})")
                    self.dropped[reason] += 1
                    continue
                used += 1
                yield self.item(image, epoch, position)
            if not used and not start:
                raise ValueError(f"The stream has no usable training images ({dict(self.dropped)} skipped)")
            epoch, start = epoch + 1, 0


def collate_crops(items: list[dict]) -> dict:
    """A batch of `StreamingCrops` items: crops stacked; encoder maps padded (edge-replicated) to the batch's
    largest, with each crop's `colorize.data.feature_grid` on the padded map and the maps' means."""
    batch = {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "epoch": torch.tensor([item["epoch"] for item in items]),
        "position": torch.tensor([item["position"] for item in items]),
    }
    if "features" not in items[0]:
        return batch
    padded = tuple(max(item["features"].shape[dim] for item in items) for dim in (-2, -1))
    maps, grids = [], []
    for item in items:
        features = item["features"]
        pad_bottom, pad_right = padded[0] - features.shape[-2], padded[1] - features.shape[-1]
        maps.append(F.pad(features[None], (0, pad_right, 0, pad_bottom), mode="replicate")[0])
        grids.append(feature_grid(item["box"], item["image_size"], tuple(features.shape[-2:]), padded, item["flip"]))
    batch.update(
        features=torch.stack(maps),
        pooled_features=torch.stack([item["features"].mean(dim=(1, 2)) for item in items]),
        feature_grid=torch.stack(grids),
    )
    return batch
