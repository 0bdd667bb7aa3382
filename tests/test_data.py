import pytest
import torch
from conftest import colour_image, gray_image, write_image_folder

import colorize.training.crops as crops_module
from colorize.training.crops import TrainingCrops, resize_shorter_side
from colorize.training.sources import drop_unusable_images, load_image_dataset, split_dataset
from colorize.image_io import is_grayscale, open_image, pil_to_tensor


def test_image_folder_loads_with_class_labels(image_folder):
    dataset = load_image_dataset(train_data_dir=str(image_folder))
    assert len(dataset) == 14  # 12 colour + 1 corrupt + 1 gray
    assert dataset.features["label"].names == ["green", "red"]


def test_unusable_images_are_skipped_and_counted(image_folder):
    dataset, report = drop_unusable_images(load_image_dataset(train_data_dir=str(image_folder)), show_progress=False)
    assert len(dataset) == 12 and report.kept == 12
    assert report.dropped == {"undecodable": 1, "grayscale": 1}
    assert report.examples["undecodable"].endswith("broken.jpg")
    assert "skipped 2" in str(report)


def test_no_usable_image_is_a_clear_error(tmp_path):
    (tmp_path / "only.jpg").write_bytes(b"nope")
    gray_image(20, 20).save(tmp_path / "gray.png")
    with pytest.raises(ValueError, match="No usable training images"):
        drop_unusable_images(load_image_dataset(train_data_dir=str(tmp_path)), show_progress=False)


def test_hub_style_dataset_with_another_image_column(tmp_path, monkeypatch):
    # A Hub dataset is loaded by id; here `load_dataset` is replaced by a local in-memory one.
    from datasets import Dataset, Features, Image, Value

    colour_image(20, 20).save(tmp_path / "a.png")
    local = Dataset.from_dict(
        {"picture": [str(tmp_path / "a.png")], "caption": ["x"]},
        features=Features({"picture": Image(), "caption": Value("string")}),
    )
    calls = []
    monkeypatch.setattr("colorize.training.sources.load_dataset", lambda *a, **k: calls.append((a, k)) or local)
    dataset = load_image_dataset(dataset_name="someone/flowers", image_column="picture")
    assert calls[0][0][0] == "someone/flowers"
    assert dataset.column_names == ["image", "caption"]
    assert open_image(dataset[0]["image"]).size == (20, 20)
    with pytest.raises(ValueError, match="Image column 'img' not found"):
        load_image_dataset(dataset_name="someone/flowers", image_column="img")


def test_exactly_one_source_is_required():
    with pytest.raises(ValueError, match="exactly one"):
        load_image_dataset()


def test_gray_detection():
    assert is_grayscale(gray_image(30, 30))
    assert is_grayscale(gray_image(30, 30).convert("L"))
    assert not is_grayscale(colour_image(30, 30))


def test_validation_split_is_deterministic_and_stratified(image_folder):
    dataset, _ = drop_unusable_images(load_image_dataset(train_data_dir=str(image_folder)), show_progress=False)
    train_a, val_a = split_dataset(dataset, 0.34, seed=3)
    train_b, val_b = split_dataset(dataset, 0.34, seed=3)
    _, val_c = split_dataset(dataset, 0.34, seed=4)
    paths = lambda d: [value["path"] for value in d["image"]]  # noqa: E731
    assert paths(val_a) == paths(val_b) and paths(train_a) == paths(train_b)
    assert len(val_a) == 4 and len(train_a) == 8
    assert sorted(val_a["label"]) == [0, 0, 1, 1]  # stratified: two of each class
    assert not set(paths(val_a)) & set(paths(train_a))
    assert set(paths(val_a)) != set(paths(val_c))
    assert split_dataset(dataset, 0.0, seed=3) == (dataset, None)


def test_resize_keeps_aspect_ratio():
    assert resize_shorter_side(colour_image(40, 100), 16).size == (16, 40)
    assert resize_shorter_side(colour_image(100, 40), 16).size == (40, 16)


def test_training_crops_are_square_in_unit_range_and_random(image_folder):
    dataset, _ = drop_unusable_images(load_image_dataset(train_data_dir=str(image_folder / "red")), show_progress=False)
    torch.manual_seed(0)
    crops = TrainingCrops(dataset, 16)
    batch = torch.utils.data.default_collate([crops[i] for i in range(3)])["pixel_values"]
    assert batch.shape == (3, 3, 16, 16) and batch.min() >= 0 and batch.max() <= 1
    draws = {tuple(crops[0]["pixel_values"].flatten()[:8].tolist()) for _ in range(6)}
    assert len(draws) > 1  # random crops and flips differ between draws
    assert crops.resized(0).shape == (3, 19, 16)  # 40 x 48 photo, shorter side -> 16


def test_center_crops_match_pil_resize_and_crop(image_folder):
    dataset, _ = drop_unusable_images(load_image_dataset(train_data_dir=str(image_folder / "red")), show_progress=False)
    crops = TrainingCrops(dataset, 16, center_crop=True, random_flip=False)
    resized = resize_shorter_side(open_image(dataset[1]["image"]), 16)  # 16 x 19 (w x h)
    expected = pil_to_tensor(resized.crop((0, 1, 16, 17)))
    assert torch.equal(crops[1]["pixel_values"], expected)
    assert torch.equal(crops[1]["pixel_values"], crops[1]["pixel_values"])  # no randomness left


def test_cache_decodes_each_image_once(image_folder, monkeypatch):
    dataset, _ = drop_unusable_images(load_image_dataset(train_data_dir=str(image_folder / "red")), show_progress=False)
    opened = []
    original = crops_module.open_image
    monkeypatch.setattr(crops_module, "open_image", lambda value: opened.append(1) or original(value))
    cached, uncached = TrainingCrops(dataset, 16), TrainingCrops(dataset, 16, cache=False)
    for _ in range(3):
        cached[2], uncached[2]
    assert len(opened) == 1 + 3


def test_single_folder_without_classes(tmp_path):
    write_image_folder(tmp_path, per_class=3, corrupt=False, gray=False)
    flat = tmp_path / "red"
    dataset = load_image_dataset(train_data_dir=str(flat))
    assert "label" not in dataset.column_names
    train, validation = split_dataset(dataset, 0.34, seed=0)
    assert len(train) == 2 and len(validation) == 1


def test_device_batches_cut_the_crops_and_feature_grids_training_crops_cut(tmp_path):
    from colorize.training.crops import DeviceBatches
    write_image_folder(tmp_path, per_class=2, size=(40, 30), corrupt=False, gray=False)
    dataset = load_image_dataset(str(tmp_path))
    maps = [torch.rand(6, 2, 3).half() for _ in range(len(dataset))]
    maps[1] = torch.rand(6, 3, 2).half()  # a map of another shape: padded
    centred = TrainingCrops(dataset, 16, center_crop=True, random_flip=False, features=maps)
    batch = DeviceBatches(centred, "cpu").batch(torch.tensor([1, 0, 3]))
    for row, index in enumerate([1, 0, 3]):
        item = centred[index]
        for key in ("pixel_values", "features", "pooled_features", "feature_grid"):
            assert torch.allclose(batch[key][row], item[key], atol=1e-6), key
    # random crops and flips: each crop is a window of its photo, flipped or not, with the grid to match
    crops = TrainingCrops(dataset, 16, features=maps)
    device_batches = DeviceBatches(crops, "cpu")
    generator = torch.Generator().manual_seed(0)
    batch = device_batches.batch(torch.arange(4).repeat(4), generator)
    flips = 0
    for row, index in enumerate(torch.arange(4).repeat(4).tolist()):
        photo, crop = crops.resized(index).float() / 255, batch["pixel_values"][row]
        windows = photo.unfold(1, 16, 1).unfold(2, 16, 1)  # (3, rows, columns, 16, 16)
        plain = (windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4)).min() < 1e-6
        flipped = (windows - crop.flip(-1)[:, None, None]).abs().amax(dim=(0, 3, 4)).min() < 1e-6
        assert plain or flipped
        flips += int(flipped and not plain)
    assert 0 < flips < 16
