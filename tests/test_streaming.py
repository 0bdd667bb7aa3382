"""Streamed training data (`colorize.training.crops`, `colorize.training.sources`, `train_colorization.py --streaming`) and webdataset shards."""

import itertools
import shutil

import pytest
import torch
from conftest import run_script, write_image_folder
from test_training import launch, max_difference, weights

from colorize.image_io import find_images
from colorize.shards import write_shards
from colorize.training.crops import StreamingCrops, collate_crops
from colorize.training.sources import open_stream


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("photos"), per_class=6, size=(40, 48))


@pytest.fixture(scope="module")
def tar_shards(photos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    shards, left_out = write_shards(find_images(photos), folder, images_per_shard=4, quality=95)
    assert len(shards) == 4 and [path.name for path in left_out] == ["broken.jpg"]  # 14 files, 4 a shard
    return folder


def keys(items) -> list[tuple[int, int]]:
    return [(item["epoch"], item["position"]) for item in items]


def test_webdataset_shards_stream_as_an_image_column(photos, tar_shards):
    examples = list(open_stream(str(tar_shards)))
    assert len(examples) == 13 and all(set(example["image"]) == {"bytes", "path"} for example in examples)


def test_parquet_shards_stream_too(photos, tmp_path):
    from datasets import Dataset, Image
    paths = [str(file.path) for file in find_images(photos) if file.path.name != "broken.jpg"]
    table = Dataset.from_dict({"picture": paths}).cast_column("picture", Image())
    for index in range(2):
        table.shard(2, index).to_parquet(str(tmp_path / f"part-{index}.parquet"))
    assert len(list(open_stream(str(tmp_path), image_column="picture"))) == len(paths)


def test_streaming_crops_skip_bad_images_and_resume_at_a_recorded_position(photos):
    def crops(start=(0, 0)):
        return StreamingCrops(open_stream(str(photos)), 16, seed=3, shuffle_buffer=5, start=start)

    stream = crops()
    first = list(itertools.islice(iter(stream), 30))  # 12 usable photos an epoch: into the third epoch
    assert stream.dropped["undecodable"] >= 2 and stream.dropped["grayscale"] >= 2  # once an epoch
    assert [item["epoch"] for item in first[:12]] == [0] * 12 and first[12]["epoch"] == 1
    assert sorted(item["position"] for item in first[:12]) != list(range(12))  # positions include the skipped
    # the shuffle differs between epochs but not between runs of the same seed
    epoch_order = [item["pixel_values"].sum().item() for item in first[:12]]
    assert epoch_order != [item["pixel_values"].sum().item() for item in first[12:24]]
    # resumed after item 17: the same items, crops and flips as the uninterrupted stream
    resumed = list(itertools.islice(iter(crops(start=(first[17]["epoch"], first[17]["position"] + 1))), 12))
    assert keys(resumed) == keys(first[18:30])
    assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(resumed, first[18:30]))


def test_each_process_reads_its_own_shards(tar_shards):
    def photos_of(rank):
        stream = StreamingCrops(open_stream(str(tar_shards)), 16, seed=3, shuffle_buffer=0, rank=rank, world_size=2)
        return {item["pixel_values"].sum().item() for item in itertools.islice(iter(stream), 6)}

    first, second = photos_of(0), photos_of(1)
    assert first and second and not first & second


def test_batches_of_maps_of_different_sizes_are_padded_and_aligned():
    def item(width):
        return {"pixel_values": torch.zeros(3, 8, 8), "epoch": 0, "position": width, "features": torch.rand(5, 2, width),
                "box": (0, 0, 8), "image_size": (8, 8 * width), "flip": False}

    batch = collate_crops([item(2), item(3)])
    assert batch["features"].shape == (2, 5, 2, 3) and batch["feature_grid"].shape == (2, 8, 8, 2)
    assert torch.equal(batch["features"][0, :, :, 2], batch["features"][0, :, :, 1])  # edge-replicated
    assert batch["pooled_features"].shape == (2, 5)


@pytest.mark.slow
def test_a_streamed_run_resumed_half_way_ends_with_the_weights_of_an_uninterrupted_run(tar_shards, tmp_path):
    run = ["--train_data_dir", tar_shards, "--streaming", "--shuffle_buffer_size", "5", "--model_preset", "tiny",
           "--resolution", "32", "--train_batch_size", "4", "--use_ema", "--checkpointing_steps", "4",
           "--lr_scheduler", "constant", "--seed", "3", "--validation_steps", "0", "--num_validation_images", "1",
           "--num_scored_validation_images", "1"]
    launch(*run, "--output_dir", tmp_path / "whole", "--max_train_steps", "8")
    # the run as if stopped at step 4 (the constant schedule does not depend on the run's length)
    shutil.copytree(tmp_path / "whole" / "checkpoint-4", tmp_path / "halves" / "checkpoint-4")
    log = launch(*run, "--output_dir", tmp_path / "halves", "--max_train_steps", "8", "--resume_from_checkpoint", "latest")
    assert "at step 4" in log and "Num training images = streamed" in log
    assert (tmp_path / "whole" / "checkpoint-4" / "stream-0.json").is_file()
    for folder in ("checkpoint-8", "."):
        assert max_difference(weights(tmp_path / "whole" / folder), weights(tmp_path / "halves" / folder)) <= 1e-6


def test_a_stream_without_validation_holds_nothing_out_and_demands_nothing(photos, tmp_path, capsys):
    """--validation_steps 0: a folder of 12 usable photos trains although --num_scored_validation_images asks for 32
    (in-process: the script run as __main__)."""
    from accelerate.state import AcceleratorState

    try:
        run_script("train_colorization.py", "--train_data_dir", photos, "--streaming", "--validation_steps", "0",
                   "--num_scored_validation_images", "32", "--output_dir", tmp_path / "out", "--model_preset", "tiny",
                   "--resolution", "16", "--no-image_encoder", "--train_batch_size", "4", "--max_train_steps", "2",
                   "--seed", "0", "--logger", "tensorboard")
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert (tmp_path / "out" / "model_index.json").is_file() and not (tmp_path / "out" / "validation").exists()
