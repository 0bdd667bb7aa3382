"""Training crops: one way to cut a square crop of a photo and align its encoder map with it, three backends.

- `TrainingCrops`: a 🤗 dataset held in memory (photos decoded and resized once, then cached), crops drawn per
  photo in a `torch.utils.data.DataLoader` ordered by `EpochShuffle`.
- `DeviceBatches`: the same photos and maps held on the training device, whole batches cut there by tensor
  indexing (`--data_on_device`).
- `StreamingCrops`: an endless 🤗 `IterableDataset` stream, crops drawn as photos arrive (`--streaming`), batched
  by `collate_crops`.

Each crop's place on the whole photo's feature map is a `feature_grid` (crops and flips apply to the features
exactly as to the pixels). Every random draw comes from a generator seeded by `derived_seed` of the run's seed
and the item's place in the run, so a resumed run sees exactly the crops of an uninterrupted one.
"""

import logging
from collections import Counter
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
from PIL import Image as PILImage

from ..image_io import open_image
from .sources import IMAGE_COLUMN, usable_image

logger = logging.getLogger(__name__)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers (a run's seed, an epoch, an index, a step...): independent
    streams for each combination, the same on every machine and after every resume."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def resize_shorter_side(image: PILImage.Image, size: int) -> PILImage.Image:
    """Resize so the shorter side is ``size`` pixels, keeping the aspect ratio."""
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(new_size, PILImage.Resampling.BICUBIC, reducing_gap=3.0)


def image_tensor(image: PILImage.Image, resolution: int) -> torch.Tensor:
    """A PIL image resized to the training scale (shorter side = ``resolution``), as uint8 (3, h, w)."""
    resized = resize_shorter_side(image, resolution)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def feature_grids(top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, image_sizes: torch.Tensor,
                  feature_sizes: torch.Tensor, padded_size: tuple[int, int], side: int) -> torch.Tensor:
    """Where N square crops' pixels lie on feature maps of their whole images, as `grid_sample` grids (N, side, side, 2)
    in [-1, 1].

    Crop n starts at (``top[n]``, ``left[n]``) of a resized image of ``image_sizes[n]`` = (h, w), flipped when
    ``flip[n]``; its features (``feature_sizes[n]`` = (fh, fw)) cover the whole image and sit in the top-left
    corner of a map of ``padded_size`` (edge-replicated). Sampling the map bilinearly at the grid
    (align_corners=False, padding_mode="border") gives exactly what resizing the features to the image's size and
    then cropping (and flipping) would: the features stay aligned with the crop."""
    centres = torch.arange(side, device=top.device, dtype=torch.float32) + 0.5
    columns = torch.where(flip[:, None], centres.flip(0)[None, :], centres[None, :])
    height, width = image_sizes.unbind(1)
    feature_height, feature_width = feature_sizes.unbind(1)
    rows = (top[:, None] + centres[None, :]) / height[:, None] * feature_height[:, None]
    columns = (left[:, None] + columns) / width[:, None] * feature_width[:, None]
    grid_y = (2 * rows / padded_size[0] - 1)[:, :, None].expand(-1, side, side)
    grid_x = (2 * columns / padded_size[1] - 1)[:, None, :].expand(-1, side, side)
    return torch.stack([grid_x, grid_y], dim=-1)


def feature_grid(box: tuple[int, int, int], image_size: tuple[int, int], feature_size: tuple[int, int],
                 padded_size: tuple[int, int], flip: bool) -> torch.Tensor:
    """`feature_grids` of one crop, ``box`` = (top, left, side): (side, side, 2)."""
    top, left, side = box
    return feature_grids(torch.tensor([top]), torch.tensor([left]), torch.tensor([flip]), torch.tensor([image_size]),
                         torch.tensor([feature_size]), padded_size, side)[0]


def pad_features(features: torch.Tensor, padded_size: tuple[int, int]) -> torch.Tensor:
    """A map (C, fh, fw) as float32, edge-padded at the bottom and right to ``padded_size``."""
    features = features.float()
    pad_bottom, pad_right = (p - s for p, s in zip(padded_size, features.shape[-2:]))
    if pad_bottom or pad_right:
        features = F.pad(features[None], (0, pad_right, 0, pad_bottom), mode="replicate")[0]
    return features


def random_crop(image: torch.Tensor, size: int, center_crop: bool, random_flip: bool,
                generator: torch.Generator | None) -> tuple[torch.Tensor, tuple[int, int, int], bool]:
    """A square crop of side ``size`` of an image (C, h, w), random (or centred), flipped with probability 1/2
    when ``random_flip``: (crop, its box (top, left, size), flipped?). Draws from ``generator``."""
    height, width = image.shape[1:]
    if center_crop:
        top, left = (height - size) // 2, (width - size) // 2
    else:
        top = int(torch.randint(0, height - size + 1, (), generator=generator))
        left = int(torch.randint(0, width - size + 1, (), generator=generator))
    crop = image[:, top : top + size, left : left + size]
    flip = bool(random_flip and torch.rand((), generator=generator) < 0.5)
    return (crop.flip(-1) if flip else crop), (top, left, size), flip


class EpochShuffle(torch.utils.data.Sampler):
    """The indices of a dataset of ``size`` items in a new order each epoch, drawn from (``seed``, epoch) alone,
    yielded as ``(index, epoch)`` keys so that `TrainingCrops` draws each item's crop and flip from (seed,
    epoch, index) too. Data order and augmentation are then a function of the seed and the position in the
    run, not of a global random state: a run resumed at any step sees exactly the batches an uninterrupted
    run would. Call `set_epoch` before each epoch."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def order(self) -> torch.Tensor:
        """This epoch's indices, in order."""
        if not self.shuffle:
            return torch.arange(self.size)
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(derived_seed(self.seed, self.epoch)))

    def __iter__(self):
        return iter([(int(index), self.epoch) for index in self.order()])


class TrainingCrops(torch.utils.data.Dataset):
    """Square training crops of the images of a 🤗 dataset, as ``{"pixel_values": (3, res, res)}`` in [0, 1].

    Each image is decoded and resized (shorter side = ``resolution``) on first use; with ``cache``
    (the default) that result is kept in memory as uint8, so later epochs only crop and flip, never
    decode again. The cache holds about ``len(dataset) * resolution**2 * 4`` bytes for 4:3 photos
    (14 MB for 3,455 photos at 32 px, 57 MB at 64 px); with data-loading workers each keeps its own.

    With ``features`` (one frozen image-encoder map (C, fh, fw) per image, computed once on the whole
    photo), each item also holds ``"features"``, the map padded to the largest map's size,
    ``"pooled_features"``, the unpadded map's mean over the photo (C,), and ``"feature_grid"``, where the crop's
    pixels lie on it (`feature_grid`): the crop and flip apply to the features too, after the learned
    projection, in the training step.

    Items are indexed by position, or by the ``(index, epoch)`` keys of `EpochShuffle`: with a ``seed``, the
    crop and flip of such a key are drawn from (seed, epoch, index) alone (reproducible, resumable).
    """

    def __init__(self, dataset: Dataset, resolution: int, center_crop: bool = False, random_flip: bool = True,
                 cache: bool = True, features: list[torch.Tensor] | None = None, seed: int | None = None):
        self.dataset, self.resolution, self.seed = dataset, resolution, seed
        self.center_crop, self.random_flip, self.cache = center_crop, random_flip, cache
        self._resized: dict[int, torch.Tensor] = {}
        if features is not None and len(features) != len(dataset):
            raise ValueError(f"Got {len(features)} feature maps for {len(dataset)} images.")
        self.features = features
        self.padded_size = None
        if features:
            self.padded_size = (max(f.shape[-2] for f in features), max(f.shape[-1] for f in features))

    def __len__(self) -> int:
        return len(self.dataset)

    def resized(self, index: int) -> torch.Tensor:
        """Image ``index`` resized to the training scale, uint8 (3, h, w) with min(h, w) = resolution."""
        if index in self._resized:
            return self._resized[index]
        tensor = image_tensor(open_image(self.dataset[index][IMAGE_COLUMN]), self.resolution)
        if self.cache:
            self._resized[index] = tensor
        return tensor

    def padded_features(self, index: int) -> torch.Tensor:
        """Photo ``index``'s map (stored as float16) as float32, edge-padded to the largest map's size."""
        return pad_features(self.features[index], self.padded_size)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        generator = None  # the global random state, unless the key and seed fix the draw
        if self.seed is not None and epoch is not None:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, index))
        image = self.resized(index)
        crop, box, flip = random_crop(image, self.resolution, self.center_crop, self.random_flip, generator)
        item = {"pixel_values": crop.float() / 255.0}
        if self.features is not None:
            item["pooled_features"] = self.features[index].float().mean(dim=(1, 2))
            item["features"] = self.padded_features(index)
            item["feature_grid"] = feature_grid(
                box, tuple(image.shape[1:]), tuple(self.features[index].shape[-2:]), self.padded_size, flip
            )
        return item


class DeviceBatches:
    """The training crops of `TrainingCrops`, cut on the training device from photos and feature maps held there.

    The photos are decoded and resized once (``crops.resized``), padded into one uint8 tensor with their sizes,
    and moved to ``device`` with the padded encoder maps; `batch` then cuts a whole batch's crops, flips and
    aligned feature grids with tensor indexing, random draws from a generator on the device: no decoding, no
    per-item Python, no host-to-device copy per step. Memory: 3 bytes a pixel of the resized photos plus
    the maps (fp16), e.g. 3,056 flowers photos at 64 px: 50 MB + 550 MB. Same crops as `TrainingCrops` for a
    given box (tested with centred crops); the draws themselves differ (a batch-wide generator).
    """

    def __init__(self, crops: TrainingCrops, device):
        images = [crops.resized(index) for index in range(len(crops))]
        sizes = torch.tensor([tuple(image.shape[1:]) for image in images])
        padded = torch.zeros(len(images), 3, *sizes.max(dim=0).values.tolist(), dtype=torch.uint8)
        for index, image in enumerate(images):
            padded[index, :, : image.shape[1], : image.shape[2]] = image
        self.images, self.sizes = padded.to(device), sizes.to(device)
        self.resolution, self.center_crop, self.random_flip = crops.resolution, crops.center_crop, crops.random_flip
        self.features = None
        if crops.features is not None:
            self.features = torch.stack([crops.padded_features(i).half() for i in range(len(crops))]).to(device)
            self.pooled = torch.stack([f.float().mean(dim=(1, 2)) for f in crops.features]).to(device)
            self.feature_sizes = torch.tensor([tuple(f.shape[-2:]) for f in crops.features]).to(device)
            self.padded_size = crops.padded_size

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The crops of photos ``indices`` (a 1-d tensor on the device), as `TrainingCrops` items batched."""
        device, size = self.images.device, self.resolution
        indices = indices.to(device)
        height, width = self.sizes[indices].unbind(1)
        if self.center_crop:
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top = (torch.rand(len(indices), device=device, generator=generator) * (height - size + 1)).long()
            left = (torch.rand(len(indices), device=device, generator=generator) * (width - size + 1)).long()
        flip = torch.zeros(len(indices), dtype=torch.bool, device=device)
        if self.random_flip:
            flip = torch.rand(len(indices), device=device, generator=generator) < 0.5
        offsets = torch.arange(size, device=device)
        columns = torch.where(flip[:, None], offsets.flip(0)[None, :], offsets[None, :])
        rows, columns = top[:, None] + offsets[None, :], left[:, None] + columns
        # advanced indices around a slice: (N, size, size) first, then the channel dimension
        pixels = self.images[indices[:, None, None], :, rows[:, :, None], columns[:, None, :]]
        batch = {"pixel_values": pixels.permute(0, 3, 1, 2).float() / 255.0}
        if self.features is not None:
            grids = feature_grids(top, left, flip, self.sizes[indices], self.feature_sizes[indices], self.padded_size, size)
            batch.update(features=self.features[indices].float(), pooled_features=self.pooled[indices], feature_grid=grids)
        return batch


class StreamingCrops(torch.utils.data.IterableDataset):
    """Square training crops of a streamed dataset, endlessly: epoch after epoch of ``stream``, shuffled through
    a buffer of ``shuffle_buffer`` items with a seed of (``seed``, epoch), this process's share of it.

    Items are those of `TrainingCrops` (``pixel_values``; with ``features``, a function from the whole photo to
    its frozen encoder map (C, fh, fw), the map and crop box to build the aligned feature grid in
    `collate_crops`), plus ``epoch`` and ``position``, the item's place in this process's stream. Crops and
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
    largest, with each crop's `feature_grid` on the padded map and the maps' means."""
    batch = {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "epoch": torch.tensor([item["epoch"] for item in items]),
        "position": torch.tensor([item["position"] for item in items]),
    }
    if "features" not in items[0]:
        return batch
    padded = tuple(max(item["features"].shape[dim] for item in items) for dim in (-2, -1))
    batch.update(
        features=torch.stack([pad_features(item["features"], padded) for item in items]),
        pooled_features=torch.stack([item["features"].mean(dim=(1, 2)) for item in items]),
        feature_grid=torch.stack([
            feature_grid(item["box"], item["image_size"], tuple(item["features"].shape[-2:]), padded, item["flip"])
            for item in items
        ]),
    )
    return batch
