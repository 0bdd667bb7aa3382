"""Metrics against values computed by hand on tiny images."""

import math

import pytest
import torch

from colorize.color import AB_SCALE, rgb_to_gray, rgb_to_lab
from colorize.evaluation.metrics import MAX_PSNR, ab_error, auc, colorfulness, psnr, ssim


def test_identical_images_score_perfectly_and_finitely():
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(psnr(image, image), torch.full((2,), MAX_PSNR))
    assert torch.allclose(ssim(image, image), torch.ones(2))
    assert torch.allclose(auc(image, image), torch.ones(2))


def test_psnr_of_a_uniform_offset():
    target = torch.full((1, 3, 4, 4), 0.5)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)


def test_ssim_handles_images_smaller_than_its_window():
    small = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    assert ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(small, 1 - small).item() < 0.5


def test_auc_of_one_pixel_with_a_known_ab_error():
    target = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1)
    gray = rgb_to_gray(target)
    error = (rgb_to_lab(target)[1].mul(AB_SCALE).pow(2).sum().sqrt()).item()
    assert ab_error(gray, target).item() == pytest.approx(error, abs=0.05)
    # within the threshold t for t = ceil(error) ... 150: that many of the 151 thresholds
    expected = (150 - math.ceil(error) + 1) / 151
    assert auc(gray, target).item() == pytest.approx(expected, abs=1 / 151)


def test_auc_is_the_fraction_of_pixels_right_when_the_rest_is_far_off():
    green, magenta = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])  # ab about 230 apart
    target = torch.stack([green, green, green, green], dim=1).view(1, 3, 2, 2)
    prediction = torch.stack([green, green, magenta, magenta], dim=1).view(1, 3, 2, 2)
    assert auc(prediction, target).item() == pytest.approx(0.5)


def test_colorfulness_by_hand():
    gray = rgb_to_gray(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2)))
    assert colorfulness(gray).item() == pytest.approx(0.0, abs=0.05)
    # two pixels, pure red and black: rg = (255, 0), yb = (127.5, 0)
    red_black = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    spread = math.hypot(127.5, 63.75)  # std of rg, std of yb
    assert colorfulness(red_black).item() == pytest.approx(spread + 0.3 * spread, rel=1e-5)


def test_ab_histogram_sums_to_one_and_gray_sits_in_the_centre_bins():
    from colorize.evaluation.metrics import AB_HISTOGRAM_BINS, ab_histogram

    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    histogram = ab_histogram(rgb)
    assert histogram.shape == (2, AB_HISTOGRAM_BINS**2)
    assert torch.allclose(histogram.sum(dim=1), torch.ones(2))
    gray = ab_histogram(rgb_to_gray(rgb))  # a = b = 0 (up to rounding): the bins either side of the centre
    centre = AB_HISTOGRAM_BINS // 2
    near_centre = [a * AB_HISTOGRAM_BINS + b for a in (centre - 1, centre) for b in (centre - 1, centre)]
    assert gray[:, near_centre].sum(dim=1).allclose(torch.ones(2))


def test_jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms():
    from colorize.evaluation.metrics import jensen_shannon

    p = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(p, torch.tensor([0.0, 0.0, 0.5, 0.5])) == pytest.approx(1.0)
    assert 0 < jensen_shannon(p, torch.tensor([0.25, 0.25, 0.25, 0.25])) < 1


def test_chroma_classifier_names_red_and_green_photos_and_gray_is_chance():
    from colorize.evaluation.metrics import ChromaClassifier, chroma_features

    generator = torch.Generator().manual_seed(0)
    red = torch.rand(20, 3, 16, 16, generator=generator) * 0.3 + torch.tensor([0.6, 0.1, 0.1])[:, None, None]
    green = torch.rand(20, 3, 16, 16, generator=generator) * 0.3 + torch.tensor([0.1, 0.6, 0.1])[:, None, None]
    features = torch.cat([chroma_features(red), chroma_features(green)])
    labels = torch.tensor([0] * 20 + [1] * 20)
    classifier = ChromaClassifier(["red", "green"]).fit(features, labels)
    assert (classifier.predict(features) == labels).all()
    gray_predictions = classifier.predict(chroma_features(rgb_to_gray(torch.cat([red, green]))))
    assert len(set(gray_predictions.tolist())) == 1  # the same answer for every gray photo: chance


def test_set_scores_jsd_per_class_and_classifier_accuracy():
    from colorize.evaluation.metrics import ChromaClassifier, chroma_features, chroma_map
    from colorize.evaluation.scoring import SetScores

    generator = torch.Generator().manual_seed(1)
    photos = {"red": torch.tensor([0.7, 0.1, 0.1]), "green": torch.tensor([0.1, 0.7, 0.1])}
    classifier_inputs, maps, labels, scores = [], [], [], SetScores(kid=False)
    for index, (name, colour) in enumerate(photos.items()):
        for _ in range(4):
            truth = torch.rand(1, 3, 16, 16, generator=generator) * 0.2 + colour[:, None, None]
            scores.add(truth.clone(), truth, name)  # a perfect colorizer
            classifier_inputs.append(chroma_features(truth))
            maps.append(chroma_map(truth))
            labels.append(index)
    classifier = ChromaClassifier(list(photos)).fit(torch.cat(classifier_inputs), torch.tensor(labels),
                                                    maps=torch.cat(maps))
    summary = scores.summary(classifier)
    assert summary["jsd"] == pytest.approx(0.0, abs=1e-9) and summary["gray_jsd"] > 0.5
    assert set(summary["per_class_jsd"]) == {"red", "green"}
    assert summary["chroma_accuracy"] == summary["chroma_accuracy_real"] == 1.0
    assert summary["chroma_accuracy_gray"] == 0.5 and summary["chroma_accuracy_ratio"] == 1.0
    assert summary["chroma_map_accuracy"] == summary["chroma_map_accuracy_real"] == 1.0
    assert summary["chroma_map_accuracy_gray"] == 0.5 and summary["chroma_map_accuracy_ratio"] == 1.0
    assert "chroma_map_accuracy" not in scores.summary(ChromaClassifier(list(photos)).fit(
        torch.cat(classifier_inputs), torch.tensor(labels)))  # fitted without maps: one judge
    assert "chroma_probe_accuracy" not in summary  # no probe fitted, and SetScores(probe=False) computes no inputs
    assert summary["chroma_confusion"] == summary["chroma_confusion_real"] == {"red": {"red": 4, "green": 0},
                                                                             "green": {"red": 0, "green": 4}}


def test_chroma_map_classifier_sees_where_the_colours_are_and_fits_the_same_every_time():
    """Two classes with about the same amounts of the same colours in different places (a yellow centre in white,
    or white in yellow): the map tells them apart. Fitting twice gives the same classifier and leaves the global
    random state as it was."""
    from colorize.evaluation.metrics import ChromaMapClassifier, chroma_map

    generator = torch.Generator().manual_seed(2)
    white, yellow = torch.tensor([0.95, 0.95, 0.95]), torch.tensor([0.95, 0.85, 0.1])
    centred, outside = [], []
    for _ in range(12):
        noise = torch.rand(3, 32, 32, generator=generator) * 0.05
        inner = torch.zeros(32, 32, dtype=torch.bool)
        inner[5:27, 5:27] = True  # 484 of 1,024 pixels
        centred.append(torch.where(inner, yellow[:, None, None], white[:, None, None]) - noise)
        outside.append(torch.where(inner, white[:, None, None], yellow[:, None, None]) - noise)
    maps = chroma_map(torch.stack(centred + outside))
    labels = torch.tensor([0] * 12 + [1] * 12)
    state = torch.random.get_rng_state()
    first = ChromaMapClassifier(2).fit(maps, labels, epochs=40, batch_size=8)
    second = ChromaMapClassifier(2).fit(maps, labels, epochs=40, batch_size=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (first.predict(maps) == labels).all()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert maps.shape == (24, 2, 48, 48)


def test_confusion_counts_rows_are_true_classes_and_columns_what_was_named():
    from colorize.evaluation.metrics import confusion_counts

    counts = confusion_counts(["a", "b", "c"], torch.tensor([0, 0, 2, 2, 2]), torch.tensor([0, 2, 2, 1, 2]))
    assert counts == {"a": {"a": 1, "b": 0, "c": 1}, "c": {"a": 0, "b": 1, "c": 2}}


def test_chroma_picture_keeps_the_colours_and_drops_the_lightness():
    from colorize.color import lab_to_rgb, rgb_to_lab
    from colorize.evaluation.metrics import PROBE_SIZE, chroma_picture

    chroma = torch.zeros(1, 2, 8, 12)
    chroma[:, 0, :, :6] = 0.3  # a reddish left half, a neutral right half
    dark, light = (lab_to_rgb(torch.full((1, 1, 8, 12), value), chroma) for value in (-0.3, 0.5))
    pictures = chroma_picture(torch.cat([dark, light]))
    assert pictures.shape == (2, 3, PROBE_SIZE, PROBE_SIZE)
    assert torch.allclose(pictures[0], pictures[1], atol=0.02)  # the same chroma on another lightness: the same picture
    lightness, ab = rgb_to_lab(pictures)
    assert torch.allclose(lightness, torch.full_like(lightness, 0.2), atol=0.01)  # L 60 everywhere
    assert ab[:, 0, :, :100].mean() > 0.25 and ab[:, :, :, -100:].abs().max() < 0.02  # the colours stay where they were
