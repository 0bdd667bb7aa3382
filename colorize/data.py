"""Training data: load images through 🤗 datasets, drop unusable ones, split, crop and flip.

Images come from a local folder (the ``imagefolder`` builder; class sub-folders become a ``label``
column) or from a Hub dataset id with an image column. Every image is opened once up front:
files that cannot be decoded and images without chroma (already grayscale) are dropped and
counted, so one bad file never stops a training run.
"""

import io
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Image, load_dataset
from PIL import Image as PILImage
from PIL import ImageOps
from tqdm.auto import tqdm

from .color import AB_SCALE, rgb_to_lab

logger = logging.getLogger(__name__)

# An image whose 99th-percentile chroma (sqrt(a^2 + b^2), Lab units) stays below this is gray:
# JPEG noise on a gray photo stays around 1-2 units, a faint sepia tint is already above 5.
GRAY_CHROMA_THRESHOLD = 3.0
IMAGE_COLUMN = "image"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


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
    undecoded in column ``"image"`` (and classes, when there are some, in column ``"label"``)."""
    if (train_data_dir is None) == (dataset_name is None):
        raise ValueError("Give exactly one of `train_data_dir` (a local folder) or `dataset_name` (a Hub dataset id).")
    if dataset_name is not None:
        dataset = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir, split=split)
    elif Path(train_data_dir).is_file():
        return load_image_list(train_data_dir)
    else:
        dataset = load_dataset("imagefolder", data_dir=train_data_dir, cache_dir=cache_dir, split="train")
    if image_column not in dataset.column_names:
        raise ValueError(f"Image column '{image_column}' not found; the dataset has columns {dataset.column_names}.")
    if image_column != IMAGE_COLUMN:
        dataset = dataset.rename_column(image_column, IMAGE_COLUMN)
    return dataset.cast_column(IMAGE_COLUMN, Image(decode=False))


def read_image_list(list_file) -> list[Path]:
    """The paths of a text file with one image path per line (relative paths: to the file's folder)."""
    base = Path(list_file).parent
    lines = [line.strip() for line in Path(list_file).read_text().splitlines()]
    return [base / line if not Path(line).is_absolute() else Path(line) for line in lines if line and not line.startswith("#")]


def load_image_list(list_file) -> Dataset:
    """A dataset of the images a list file names; ``label`` is each file's folder name (its class)."""
    paths = read_image_list(list_file)
    if not paths:
        raise ValueError(f"{list_file} lists no images")
    classes = [path.parent.name for path in paths]
    dataset = Dataset.from_dict({IMAGE_COLUMN: [str(path) for path in paths], "label": classes})
    return dataset.cast_column("label", ClassLabel(names=sorted(set(classes)))).cast_column(IMAGE_COLUMN, Image(decode=False))


def decode_image(value) -> PILImage.Image:
    """Decode a file path or an undecoded ``datasets.Image`` value ({"path", "bytes"}); PIL images pass through."""
    if isinstance(value, PILImage.Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        source = value
    else:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
    image = PILImage.open(source)
    image.load()
    return image


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Any PIL image as 8-bit RGB: 16- and 32-bit gray rescaled to 0-255 (PIL's own conversion clips it),
    transparency flattened onto white, CMYK, palette and the rest converted by PIL."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        else:
            top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        image = PILImage.fromarray((array * (255.0 / top)).clip(0, 255).round().astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def open_image(value) -> PILImage.Image:
    """`decode_image` (first frame of an animation), turned upright by its EXIF orientation, as 8-bit RGB."""
    return to_rgb(ImageOps.exif_transpose(decode_image(value)))


def list_image_files(folder) -> list:
    """Image files under ``folder`` (recursively, by suffix), in a stable sorted order."""
    return sorted(path for path in Path(folder).rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def pil_to_tensor(image: PILImage.Image) -> torch.Tensor:
    """An RGB PIL image as a float tensor (3, H, W) in [0, 1]."""
    array = np.array(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def is_grayscale(image: PILImage.Image) -> bool:
    """True when the image carries no usable colour (see `GRAY_CHROMA_THRESHOLD`)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((64, 64))
    _, chroma = rgb_to_lab(pil_to_tensor(thumbnail))
    magnitude = chroma.mul(AB_SCALE).pow(2).sum(0).sqrt()
    return torch.quantile(magnitude.flatten(), 0.99).item() < GRAY_CHROMA_THRESHOLD


def _describe(value, index: int) -> str:
    path = value.get("path") if isinstance(value, dict) else None
    return path or f"row {index}"


def drop_unusable_images(dataset: Dataset, show_progress: bool = True) -> tuple[Dataset, ScanReport]:
    """Open every image once; keep those that decode and have colour. Returns the kept rows and a report."""
    report = ScanReport()
    keep = []
    for index, value in enumerate(tqdm(dataset[IMAGE_COLUMN], desc="Checking images", disable=not show_progress)):
        try:
            reason = "grayscale" if is_grayscale(decode_image(value)) else None
        except Exception as error:  # PIL raises many types for broken files; all mean "cannot use it"
            reason = "undecodable"
            logger.warning("Skipping %s: cannot decode it (%s)", _describe(value, index), error)
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


class TrainingCrops(torch.utils.data.Dataset):
    """Square training crops of the images of a 🤗 dataset, as ``{"pixel_values": (3, res, res)}`` in [0, 1].

    Each image is decoded and resized (shorter side = ``resolution``) on first use; with ``cache``
    (the default) that result is kept in memory as uint8, so later epochs only crop and flip, never
    decode again. The cache holds about ``len(dataset) * resolution**2 * 4`` bytes for 4:3 photos
    (14 MB for 3,455 photos at 32 px, 57 MB at 64 px); with data-loading workers each keeps its own.
    """

    def __init__(self, dataset: Dataset, resolution: int, center_crop: bool = False, random_flip: bool = True,
                 cache: bool = True):
        self.dataset, self.resolution = dataset, resolution
        self.center_crop, self.random_flip, self.cache = center_crop, random_flip, cache
        self._resized: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def resized(self, index: int) -> torch.Tensor:
        """Image ``index`` resized to the training scale, uint8 (3, h, w) with min(h, w) = resolution."""
        if index in self._resized:
            return self._resized[index]
        image = resize_shorter_side(open_image(self.dataset[index][IMAGE_COLUMN]), self.resolution)
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        if self.cache:
            self._resized[index] = tensor
        return tensor

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.resized(index)
        size = self.resolution
        height, width = image.shape[1:]
        if self.center_crop:
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top = int(torch.randint(0, height - size + 1, ()))
            left = int(torch.randint(0, width - size + 1, ()))
        crop = image[:, top : top + size, left : left + size]
        if self.random_flip and torch.rand(()) < 0.5:
            crop = crop.flip(-1)
        return {"pixel_values": crop.float() / 255.0}
