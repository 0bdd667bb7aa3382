"""Training data: load images through 🤗 datasets, drop unusable ones, split, crop and flip.

Images come from a local folder or list file (`colorize.image_io.find_images`; class sub-folders become a
``label`` column) or from a Hub dataset id with an image column. Every image is opened once up front:
files that cannot be decoded and images without chroma (already grayscale) are dropped and
counted, so one bad file never stops a training run.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Image, load_dataset
from PIL import Image as PILImage
from tqdm.auto import tqdm

from .image_io import IMAGE_SUFFIXES, decode_image, find_images, is_grayscale, open_image

logger = logging.getLogger(__name__)

IMAGE_COLUMN = "image"

SHARD_FORMATS = {".parquet": "parquet", ".tar": "webdataset"}


def local_shards(source) -> tuple[str, list[str]] | None:
    """(datasets builder, shard files) when ``source`` is a folder of parquet or webdataset shards, else None."""
    folder = Path(source)
    if not folder.is_dir():
        return None
    for suffix, builder in SHARD_FORMATS.items():
        shards = sorted(str(path) for path in folder.rglob(f"*{suffix}"))
        if shards:
            return builder, shards
    return None


def image_column_of(dataset, image_column: str) -> str:
    """``image_column``, or for webdataset shards (columns named by file extension) their image column."""
    columns = list(dataset.features) if dataset.features is not None else []
    if image_column in columns or not columns:
        return image_column
    for column in columns:
        if f".{column.lower()}" in IMAGE_SUFFIXES:
            return column
    raise ValueError(f"Image column '{image_column}' not found; the dataset has columns {columns}.")


@dataclass
class ScanReport:
    """What `drop_unusable_images` kept and why it dropped the rest."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # reason -> first file (or row) dropped for it

    def __str__(self):
        if not self.dropped:
            return f"kept all {self.kept} images"
        reasons = ", ".join(f"{count} {reason} (e.g. {self.examples[reason]})" for reason, count in self.dropped.items())
        return f"kept {self.kept} images, skipped {sum(self.dropped.values())}: {reasons}"


def load_image_dataset(
    train_data_dir: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    image_column: str = IMAGE_COLUMN,
    cache_dir: str | None = None,
    split: str = "train",
) -> Dataset:
    """Load a local image folder, a text file listing image paths, or a Hub dataset, with images left
    undecoded in column ``"image"`` (and classes, when there are some, in column ``"label"``: a folder's
    sub-folder names, or a listed file's folder name)."""
    if (train_data_dir is None) == (dataset_name is None):
        raise ValueError("Give exactly one of `train_data_dir` (a local folder) or `dataset_name` (a Hub dataset id).")
    if dataset_name is None:
        return load_local_images(train_data_dir)
    dataset = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir, split=split)
    if image_column not in dataset.column_names:
        raise ValueError(f"Image column '{image_column}' not found; the dataset has columns {dataset.column_names}.")
    if image_column != IMAGE_COLUMN:
        dataset = dataset.rename_column(image_column, IMAGE_COLUMN)
    return dataset.cast_column(IMAGE_COLUMN, Image(decode=False))


def load_local_images(source) -> Dataset:
    """A dataset of the images of a folder or list file (`find_images`), with a ``label`` column of their classes
    when every image has one; or of the photos packed in a folder of parquet or webdataset shards."""
    if not Path(source).exists():
        raise FileNotFoundError(f"No such folder or list file: {source}")
    if (shards := local_shards(source)) is not None:
        builder, files = shards
        dataset = load_dataset(builder, data_files={"train": files}, split="train")
        column = image_column_of(dataset, IMAGE_COLUMN)
        dataset = dataset.rename_column(column, IMAGE_COLUMN) if column != IMAGE_COLUMN else dataset
        return dataset.cast_column(IMAGE_COLUMN, Image(decode=False))
    files = find_images(source)
    if not files:
        raise ValueError(f"{source} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    # Absolute paths, in find_images' sorted order: the split of a seed stays the one it always was.
    columns = {IMAGE_COLUMN: [str(file.path.resolve()) for file in files]}
    classes = [file.group for file in files]
    if None not in classes:
        columns["label"] = classes
    dataset = Dataset.from_dict(columns).cast_column(IMAGE_COLUMN, Image(decode=False))
    return dataset.cast_column("label", ClassLabel(names=sorted(set(classes)))) if "label" in columns else dataset


def _describe(value, index: int) -> str:
    path = value.get("path") if isinstance(value, dict) else None
    return path or f"row {index}"


def usable_image(value, name: str | None = None) -> tuple[PILImage.Image | None, str | None]:
    """(the decoded RGB image, None), or (None, why it cannot be trained on: "undecodable" or "grayscale").
    With ``name`` (the file or row), an undecodable image is logged with its error."""
    try:
        image = decode_image(value)
    except Exception as error:  # PIL raises many types for broken files; all mean "cannot use it"
        if name is not None:
            logger.warning("Skipping %s: cannot decode it (%s)", name, error)
        return None, "undecodable"
    return (None, "grayscale") if is_grayscale(image) else (image, None)


def drop_unusable_images(dataset: Dataset, show_progress: bool = True) -> tuple[Dataset, ScanReport]:
    """Open every image once; keep those that decode and have colour. Returns the kept rows and a report."""
    report = ScanReport()
    keep = []
    for index, value in enumerate(tqdm(dataset[IMAGE_COLUMN], desc="Checking images", disable=not show_progress)):
        _, reason = usable_image(value, name=_describe(value, index))
        if reason is None:
            keep.append(index)
        else:
            report.dropped[reason] += 1
            report.examples.setdefault(reason, _describe(value, index))
    report.kept = len(keep)
    if not keep:
        raise ValueError(f"No usable training images: {report}")
    return dataset.select(keep), report


def split_dataset(dataset: Dataset, validation_split: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Deterministic train / validation split for a given seed, stratified by ``label`` when there is one."""
    if validation_split <= 0:
        return dataset, None
    num_validation = max(1, round(validation_split * len(dataset)))
    if num_validation >= len(dataset):
        raise ValueError(f"validation_split={validation_split} leaves no training images out of {len(dataset)}.")
    stratify = None
    if "label" in dataset.column_names:
        counts = Counter(dataset["label"])
        if num_validation >= len(counts) and min(counts.values()) >= 2:
            stratify = "label"
    splits = dataset.train_test_split(test_size=num_validation, seed=seed, stratify_by_column=stratify)
    return splits["train"], splits["test"]


def resize_shorter_side(image: PILImage.Image, size: int) -> PILImage.Image:
    """Resize so the shorter side is ``size`` pixels, keeping the aspect ratio."""
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(new_size, PILImage.Resampling.BICUBIC, reducing_gap=3.0)


def feature_grid(box: tuple[int, int, int], image_size: tuple[int, int], feature_size: tuple[int, int],
                 padded_size: tuple[int, int], flip: bool) -> torch.Tensor:
    """Where a crop's pixels lie on a feature map of the whole image, as a `torch.nn.functional.grid_sample` grid.

    ``box`` = (top, left, side) of the square crop in the resized image of ``image_size`` = (h, w); the
    features (``feature_size`` = (fh, fw)) cover the whole image and sit in the top-left corner of a map
    of ``padded_size`` (edge-replicated). Sampling the map bilinearly at this grid (align_corners=False,
    padding_mode="border") gives exactly what resizing the features to the image's size and then cropping
    (and flipping) would: the features stay aligned with the crop. Shape (side, side, 2), in [-1, 1]."""
    top, left, side = box
    offsets = torch.arange(side, dtype=torch.float32) + 0.5
    rows = (top + offsets) / image_size[0] * feature_size[0]
    columns = (left + (offsets.flip(0) if flip else offsets)) / image_size[1] * feature_size[1]
    grid_y = (2 * rows / padded_size[0] - 1)[:, None].expand(side, side)
    grid_x = (2 * columns / padded_size[1] - 1)[None, :].expand(side, side)
    return torch.stack([grid_x, grid_y], dim=-1)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers (a run's seed, an epoch, an index, a step...): independent
    streams for each combination, the same on every machine and after every resume."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


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


def image_tensor(image: PILImage.Image, resolution: int) -> torch.Tensor:
    """A PIL image resized to the training scale (shorter side = ``resolution``), as uint8 (3, h, w)."""
    resized = resize_shorter_side(image, resolution)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class TrainingCrops(torch.utils.data.Dataset):
    """Square training crops of the images of a 🤗 dataset, as ``{"pixel_values": (3, res, res)}`` in [0, 1].

    Each image is decoded and resized (shorter side = ``resolution``) on first use; with ``cache``
    (the default) that result is kept in memory as uint8, so later epochs only crop and flip, never
    decode again. The cache holds about ``len(dataset) * resolution**2 * 4`` bytes for 4:3 photos
    (14 MB for 3,455 photos at 32 px, 57 MB at 64 px); with data-loading workers each keeps its own.

    With ``features`` (one frozen image-encoder map (C, fh, fw) per image, computed once on the whole
    photo), each item also holds ``"features"``, the map padded to the largest map's size,
    ``"pooled_features"``, the unpadded map's mean over the photo (C,), and ``"feature_grid"``, where the crop's pixels lie on it (`feature_grid`): the crop and flip apply to
    the features too, after the learned projection, in the training step.

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
        features = self.features[index].float()
        pad_bottom, pad_right = (p - s for p, s in zip(self.padded_size, features.shape[-2:]))
        if pad_bottom or pad_right:
            features = F.pad(features[None], (0, pad_right, 0, pad_bottom), mode="replicate")[0]
        return features

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
            feature_height, feature_width = self.feature_sizes[indices].unbind(1)
            centres = torch.arange(size, device=device, dtype=torch.float32) + 0.5
            flipped = torch.where(flip[:, None], centres.flip(0)[None, :], centres[None, :])
            feature_rows = (top[:, None] + centres[None, :]) / height[:, None] * feature_height[:, None]
            feature_columns = (left[:, None] + flipped) / width[:, None] * feature_width[:, None]
            grid_y = (2 * feature_rows / self.padded_size[0] - 1)[:, :, None].expand(-1, size, size)
            grid_x = (2 * feature_columns / self.padded_size[1] - 1)[:, None, :].expand(-1, size, size)
            batch.update(
                features=self.features[indices].float(), pooled_features=self.pooled[indices],
                feature_grid=torch.stack([grid_x, grid_y], dim=-1),
            )
        return batch
