"""A run's data: the training photos and validation photos, their frozen encoder maps (computed once, optionally
cached in a file), and the batches of crops each process trains on, epoch after epoch from where the run
stands (`TrainingBatches`)."""

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import send_to_device
from datasets import Dataset, IterableDataset
from PIL import Image as PILImage
from tqdm.auto import tqdm

from ..image_encoder import ImageEncoder
from ..image_io import open_image
from .crops import DeviceBatches, EpochShuffle, StreamingCrops, TrainingCrops, collate_crops, derived_seed
from .sources import IMAGE_COLUMN, drop_unusable_images, load_image_dataset, open_stream, split_dataset, usable_image

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The photos of a run: ``train`` (a dataset in memory, or a stream), the ``validation_images`` shown and
    scored at each validation, the in-memory ``validation`` split they come from (None: a stream's or none), and
    the keys of stream photos held out for validation (``held_out``)."""

    train: Dataset | IterableDataset
    validation_images: list[PILImage.Image]
    validation: Dataset | None = None
    held_out: set = field(default_factory=set)


def load_training_data(args, accelerator, num_validation_images: int) -> TrainingData:
    """The run's photos, in memory (every photo checked once; a deterministic validation split) or streamed
    (``args.streaming``), with ``num_validation_images`` photos for validation (0: validation is off, none held
    out or decoded). Data that cannot be used (no usable image, an unknown column, a split leaving nothing) is a
    ValueError in one line."""
    try:
        if args.streaming:
            return load_stream(args, num_validation_images)
        return load_in_memory(args, accelerator, num_validation_images)
    except FileNotFoundError as error:
        raise ValueError(str(error).splitlines()[0]) from None


def load_in_memory(args, accelerator, num_validation_images: int) -> TrainingData:
    with accelerator.main_process_first():
        dataset = load_image_dataset(
            args.train_data_dir, args.dataset_name, args.dataset_config_name, args.image_column, args.cache_dir
        )
    dataset, report = drop_unusable_images(dataset, show_progress=accelerator.is_local_main_process)
    logger.info(f"Training images: {report}")
    if args.validation_data_dir is not None:
        train, validation = dataset, load_validation_photos(args.validation_data_dir)
    else:
        train, validation = split_dataset(dataset, args.validation_split, args.split_seed)
    if args.max_train_samples is not None:
        train = train.select(range(min(args.max_train_samples, len(train))))
    shown = validation if validation is not None else train
    shown = shown.select(range(min(num_validation_images, len(shown))))
    return TrainingData(train, [open_image(value) for value in shown[IMAGE_COLUMN]], validation)


def load_validation_photos(source: str) -> Dataset:
    """The usable photos of a validation folder or list file."""
    dataset, _ = drop_unusable_images(load_image_dataset(source), show_progress=False)
    return dataset


def image_key(value) -> str:
    """What identifies an undecoded image of a stream: its path, or a digest of its bytes."""
    return value.get("path") or hashlib.sha1(value["bytes"]).hexdigest()


def load_stream(args, num_validation_images: int) -> TrainingData:
    """The stream of training photos, and the validation photos: --validation_data_dir's, or the first
    ``num_validation_images`` usable photos of the stream (then left out of training)."""
    stream = open_stream(args.train_data_dir, args.dataset_name, args.dataset_config_name, args.image_column,
                         args.cache_dir)
    if args.validation_data_dir is not None:
        validation = load_validation_photos(args.validation_data_dir)
        shown = validation.select(range(min(num_validation_images, len(validation))))
        return TrainingData(stream, [open_image(value) for value in shown[IMAGE_COLUMN]])
    if not num_validation_images:
        return TrainingData(stream, [])
    images, keys = [], set()
    for example in stream:
        image, reason = usable_image(example[IMAGE_COLUMN])
        if reason is None:
            images.append(image)
            keys.add(image_key(example[IMAGE_COLUMN]))
        if len(images) == num_validation_images:
            break
    else:  # the stream ended before the validation photos were found: nothing is left to train on
        raise ValueError(
            f"the stream {args.dataset_name or args.train_data_dir} has {len(images)} usable photos, all needed for "
            f"validation (--num_scored_validation_images {args.num_scored_validation_images}): give "
            "--validation_data_dir, ask for fewer, or turn validation off (--validation_steps 0)"
        )
    logger.info(f"Validation: the first {len(images)} usable photos of the stream, left out of training")
    stream = stream.filter(lambda example: image_key(example[IMAGE_COLUMN]) not in keys)
    return TrainingData(stream, images, held_out=keys)


def write_split_listing(dataset: Dataset, path: Path):
    """One line per image of ``dataset``: its file path (or row number for in-memory Hub data)."""
    lines = [value.get("path") or f"row {index}" for index, value in enumerate(dataset[IMAGE_COLUMN])]
    path.write_text("\n".join(lines) + "\n")


def encode_training_images(encoder: ImageEncoder, dataset: Dataset, show_progress: bool,
                           cache_file: str | None = None) -> list[torch.Tensor]:
    """The frozen encoder's feature map of every training photo (the whole photo, float16), computed once:
    training crops and flips are applied to it later, aligned (`TrainingCrops`). With ``cache_file``, maps
    saved there for the same photos and encoder configuration are reused, and new ones saved."""
    key = {
        "encoder": {name: encoder.config[name] for name in ("image_size", "max_aspect_ratio")},
        "images": [value.get("path") or str(index) for index, value in enumerate(dataset[IMAGE_COLUMN])],
    }
    if encoder.config.fine_features:  # (only then: caches written before the option stay valid)
        key["encoder"]["fine_features"] = True
    key = json.dumps(key, sort_keys=True, default=str)
    if cache_file and os.path.isfile(cache_file):
        cached = torch.load(cache_file, weights_only=True)
        if cached["key"] == key:
            logger.info(f"Image-encoder features of {len(cached['features'])} photos read from {cache_file}")
            return cached["features"]
        logger.info(f"{cache_file} holds features of other photos or another encoder: computing them anew")
    features = [
        encoder.photo_features(open_image(value)).to("cpu", torch.float16)
        for value in tqdm(dataset[IMAGE_COLUMN], desc="Encoding images", disable=not show_progress)
    ]
    if cache_file:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "features": features}, cache_file)
    return features


class TrainingBatches:
    """This process's batches of training crops as (epoch, batch) pairs, from any point of the run on, cut by one
    crop backend (`colorize.training.crops`): the in-memory photos through a `DataLoader` (which
    ``accelerator.prepare`` splits between processes: `prepared_by_accelerate`), the photos held on the device
    (``--data_on_device``), or the stream (``--streaming``, endless; it resumes from the position its checkpoint
    recorded, ``stream_start``)."""

    def __init__(self, args, accelerator, data: TrainingData, encoder: ImageEncoder | None,
                 stream_start: tuple[int, int] = (0, 0)):
        self.accelerator, self.seed, self.batch_size = accelerator, args.seed, args.train_batch_size
        self.streaming, self.on_device = args.streaming, args.data_on_device
        if encoder is not None:
            encoder = encoder.to(accelerator.device)
        if self.streaming:
            self.loader = streaming_loader(args, accelerator, data.train, encoder, stream_start)
            self.num_images = "streamed"
            return
        features = None
        if encoder is not None:
            with accelerator.main_process_first():  # the main process writes the cache file, the others read it
                features = encode_training_images(encoder, data.train, accelerator.is_local_main_process,
                                                   args.feature_cache)
        crops = TrainingCrops(data.train, args.resolution, center_crop=args.center_crop, random_flip=args.random_flip,
                              cache=args.cache_images, features=features, seed=args.seed)
        self.num_images = len(crops)
        self.loader = torch.utils.data.DataLoader(
            crops,
            batch_size=args.train_batch_size,
            sampler=EpochShuffle(len(crops), args.seed),
            num_workers=args.dataloader_num_workers,
            persistent_workers=args.dataloader_num_workers > 0,  # workers keep their image caches across epochs
            drop_last=len(crops) >= args.train_batch_size,
        )
        if self.on_device:  # each process cuts the same number of batches; the remainder is dropped
            self.device_batches = DeviceBatches(crops, accelerator.device)
            self.batches_per_process = max(1, len(self.loader) // accelerator.num_processes)
        else:  # accelerate gives each process 1 / num_processes of the loader's batches
            self.batches_per_process = math.ceil(len(self.loader) / accelerator.num_processes)

    @property
    def prepared_by_accelerate(self) -> bool:
        """Whether ``accelerator.prepare`` should shard the loader (each process cuts its own batches otherwise)."""
        return not (self.streaming or self.on_device)

    def steps_per_epoch(self, gradient_accumulation_steps: int) -> int | None:
        """Optimiser steps in an epoch of this process's batches (None for a stream); after `accelerator.prepare`."""
        if self.streaming:
            return None
        batches = self.batches_per_process if self.on_device else len(self.loader)
        return math.ceil(batches / gradient_accumulation_steps)

    def epochs(self, first_epoch: int, num_epochs: int | None, skip: int = 0):
        """(epoch, batch) pairs from batch ``skip`` of ``first_epoch`` on (a stream: from where it was started)."""
        if self.streaming:
            for batch in self.loader:
                yield int(batch["epoch"][0]), send_to_device(batch, self.accelerator.device)
            return
        for epoch in range(first_epoch, num_epochs):
            start = skip if epoch == first_epoch else 0
            batches = self.device_epoch(epoch, start) if self.on_device else self.loader_epoch(epoch, start)
            yield from ((epoch, batch) for batch in batches)

    def loader_epoch(self, epoch: int, start: int):
        """The loader's batches of ``epoch`` from batch ``start`` on."""
        self.loader.set_epoch(epoch)  # the epoch's order (`EpochShuffle`); a skipping loader inherits it
        return self.accelerator.skip_first_batches(self.loader, start) if start else self.loader

    def device_epoch(self, epoch: int, start: int):
        """This process's share of ``epoch``'s batches from batch ``start`` on, cut on the device, each batch's crops
        drawn from (seed, epoch, batch, process): not the training step's noise stream."""
        rank, processes, device = self.accelerator.process_index, self.accelerator.num_processes, self.accelerator.device
        sampler = self.loader.sampler
        sampler.set_epoch(epoch)
        order = sampler.order().to(device).split(self.batch_size)
        mine = order[: self.batches_per_process * processes][rank::processes]
        for index in range(start, len(mine)):
            generator = torch.Generator(device=device).manual_seed(derived_seed(self.seed, epoch, index, rank, 1))
            yield self.device_batches.batch(mine[index], generator)


def streaming_loader(args, accelerator, stream: IterableDataset, encoder: ImageEncoder | None,
                     start: tuple[int, int]) -> torch.utils.data.DataLoader:
    """A data loader of `StreamingCrops` batches (endless), this process's share of the stream from ``start``."""

    def photo_features(image):
        return encoder.photo_features(image).to("cpu", torch.float32)

    crops = StreamingCrops(
        stream, args.resolution, args.seed, shuffle_buffer=args.shuffle_buffer_size, center_crop=args.center_crop,
        random_flip=args.random_flip, features=photo_features if encoder is not None else None, start=start, rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )
    return torch.utils.data.DataLoader(crops, batch_size=args.train_batch_size, collate_fn=collate_crops)
