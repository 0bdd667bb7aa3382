"""Where training photos come from, for every trainer and `colorize prepare`: a local folder or list file
(`colorize.image_io.find_images`; class sub-folders become a ``label`` column), a folder of parquet or webdataset
shards, or a Hub dataset id with an image column; held in memory (`load_image_dataset`) or streamed
(`open_stream`). Photos that cannot be decoded and photos without chroma (already grayscale) are dropped and
counted, so one bad file never stops a run.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, Image, IterableDataset, load_dataset
from PIL import Image as PILImage
from tqdm.auto import tqdm

from ..image_io import IMAGE_SUFFIXES, decode_image, find_images, is_grayscale

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


def load_training_photos(args):
    """The usable training photos of a trainer's data options (a 🤗 dataset, undecoded), as `train_colorization.py`
    reads them, at most ``--max_train_samples``; ValueError in one line when the source cannot be read."""
    try:
        dataset = load_image_dataset(args.train_data_dir, args.dataset_name, args.dataset_config_name,
                                     args.image_column, args.cache_dir)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    dataset, report = drop_unusable_images(dataset)
    print(f"Training photos: {report}")
    if args.max_train_samples is not None:
        dataset = dataset.select(range(min(args.max_train_samples, len(dataset))))
    return dataset
