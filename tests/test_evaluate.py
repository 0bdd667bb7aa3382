import json

import pytest
import torch

from colorize.cli import main
from colorize.color import rgb_to_gray
from colorize.evaluation.metrics import auc, psnr
from colorize.evaluation.report import metrics_tables, summary_line
from colorize.evaluation.scoring import score
from colorize.image_io import find_images, open_image, pil_to_tensor

KEYS = {"num_images", "psnr", "ssim", "auc", "colorfulness", "colorfulness_reference", "colorfulness_ratio",
        "gray_psnr", "gray_ssim", "gray_auc", "seconds_per_image", "num_inference_steps", "scheduler", "model"}


def test_evaluate_a_folder_with_classes_and_a_corrupt_file(model_dir, image_folder, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", str(image_folder), "--model", str(model_dir), "--output-dir", str(out),
                 "--num-inference-steps", "2", "--num-samples", "2", "--batch-size", "3", "--scheduler", "ddim",
                 "--reference-data", str(image_folder), "--working-size", "24"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(metrics) and "psnr_best_of_n" in metrics
    assert metrics["num_images"] == 13 and metrics["num_skipped"] == 1  # 12 colour + 1 gray; 1 corrupt
    assert metrics["skipped"][0]["file"].endswith("broken.jpg")
    assert metrics["scheduler"] == "ddim" and metrics["num_inference_steps"] == 2 and metrics["working_size"] == 24
    assert metrics["psnr_best_of_n"] >= metrics["psnr"]
    assert set(metrics["per_class"]) == {"green", "red"}
    assert metrics["per_class"]["red"]["num_images"] == 6 and KEYS - {
        "seconds_per_image", "num_inference_steps", "scheduler", "model"} <= set(metrics["per_class"]["red"])
    assert metrics["colorfulness_ratio"] == pytest.approx(metrics["colorfulness"] / metrics["colorfulness_reference"])
    assert len((out / "per_image.csv").read_text().splitlines()) == 14
    report = (out / "report.md").read_text()
    assert "| PSNR (dB) |" in report and "| red | 6 |" in report and "broken.jpg" in report
    assert "working size 24 px" in report
    # set scores: colour distributions per class, the chroma classifier fitted on --reference-data, KID
    assert set(metrics["per_class_jsd"]) == {"green", "red"} and 0 <= metrics["jsd"] <= 1
    assert metrics["gray_jsd"] > 0.5  # all of gray's mass sits in the centre bins, far from red and green
    assert metrics["chroma_accuracy_real"] >= 12 / 13  # told apart by colour alone (one "green" photo is gray)
    assert 0 <= metrics["chroma_accuracy"] <= 1 and metrics["kid"] is not None
    assert "chroma-only classifier accuracy" in report
    assert metrics["chroma_map_accuracy_real"] >= 12 / 13 and 0 <= metrics["chroma_map_accuracy"] <= 1  # the CNN
    assert "chroma-map CNN accuracy" in report
    # the ImageNet probe on the chroma alone: the real photos' red and green are told apart, the gray input's are not
    assert metrics["chroma_probe_accuracy_real"] >= 12 / 13 and metrics["chroma_probe_accuracy_gray"] <= 8 / 13
    assert "chroma ImageNet probe accuracy" in report and "probe" in summary_line(metrics)
    assert (out / "samples.png").exists() and (out / "denoising.png").exists()
    assert "PSNR" in capsys.readouterr().out


def test_gray_baseline_is_the_gray_image_scored_against_the_truth(image_folder):
    truth = pil_to_tensor(open_image(image_folder / "red" / "0.png"))[None]
    gray = rgb_to_gray(truth)
    scores = score(torch.cat([gray, truth]), truth)  # two "samples": the gray image and a perfect one
    assert scores["gray_psnr"] == pytest.approx(psnr(gray, truth).item())
    assert scores["gray_auc"] == pytest.approx(auc(gray, truth).item())
    assert scores["psnr"] == pytest.approx((psnr(gray, truth).item() + 100) / 2)
    assert scores["psnr_best_of_n"] == 100
    assert scores["colorfulness"] == pytest.approx(scores["colorfulness_reference"] / 2, rel=0.05)


def test_limit_and_file_list_input(model_dir, image_folder, tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text(f"{image_folder / 'red' / '1.png'}\n{image_folder / 'green' / '2.png'}\n")
    assert [file.group for file in find_images(listing)] == ["red", "green"]
    out = tmp_path / "eval"
    assert main(["evaluate", str(listing), "--model", str(model_dir), "--output-dir", str(out),
                 "--num-inference-steps", "1", "--limit", "1", "--chroma-sharpening", "0.5",
                 "--detail-transfer", "0.25"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 1 and list(metrics["per_class"]) == ["red"]
    assert metrics["chroma_sharpening"] == 0.5  # the call's, not the model's (0)
    assert metrics["detail_transfer"] == 0.25
    assert "psnr_best_of_n" not in metrics


def test_nothing_to_score_is_a_clear_error(model_dir, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.jpg").write_bytes(b"nope")
    assert main(["evaluate", str(tmp_path / "data"), "--model", str(model_dir), "--output-dir", str(tmp_path / "o")]) == 2
    assert "could be colorized" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "--model", str(model_dir), "--output-dir", str(tmp_path / "o")]) == 2


def test_the_judges_over_all_samples_count_every_sample_of_every_photo(image_folder):
    """Each photo's first sample is the truth and its second has red and green swapped: the judges name the first
    samples as well as the real photos, and about half of all samples."""
    from colorize.evaluation.evaluate import fit_chroma_classifier
    from colorize.evaluation.scoring import SetScores

    classifier = fit_chroma_classifier(image_folder, show_progress=False)
    scores = SetScores(kid=False, probe=True)
    for file in find_images(image_folder):
        if file.path.name == "broken.jpg":
            continue
        truth = pil_to_tensor(open_image(file.path))[None]
        scores.add(torch.cat([truth, truth[:, [1, 0, 2]]]), truth, file.group)
    metrics = scores.summary(classifier)
    for judge in ("chroma_accuracy", "chroma_map_accuracy", "chroma_probe_accuracy"):
        assert metrics[judge] == metrics[f"{judge}_real"] >= 12 / 13
        assert 0.4 <= metrics[f"{judge}_all_samples"] <= 0.6
        assert metrics[f"{judge}_all_samples_ratio"] == pytest.approx(metrics[f"{judge}_all_samples"] / metrics[f"{judge}_real"])
        first, swapped = metrics[f"{judge}_per_sample"]  # sample 1: the truth; sample 2: red and green swapped
        assert first == metrics[f"{judge}_real"] and swapped < first
        assert (first + swapped) / 2 == pytest.approx(metrics[f"{judge}_all_samples"])
    table = metrics_tables({**metrics, "num_samples": 2, "psnr": 20.0, "gray_psnr": 18.0, "ssim": 0.9, "gray_ssim": 0.9,
                            "auc": 0.9, "gray_auc": 0.8, "colorfulness_reference": 40.0, "colorfulness": 40.0,
                            "colorfulness_ratio": 1.0})
    per_sample = metrics["chroma_probe_accuracy_per_sample"]
    assert f"| chroma ImageNet probe accuracy per sample (1 / 2) | {per_sample[0]:.2f} / {per_sample[1]:.2f} |  |" in table
