import json
from unittest import mock

import pytest
import yaml
from conftest import colour_image, make_tiny_pipeline
from safetensors import safe_open

from colorize import ColorizationPipeline
from colorize.cli import main

RUN = {
    "command": "accelerate launch train_colorization.py --train_data_dir data --max_train_steps 40",
    "started": "2026-11-25T10:00:00+00:00",
    "hardware": "1 x CPU x86_64, 2 cores, 2 torch threads/process",
    "mixed_precision": "no",
    "start_step": 0,
    "end_step": 40,
    "images_per_step": 16,
    "images_seen": 640,
    "hours": 0.25,
    "validation": None,
}
METRICS = {
    "num_images": 12, "scheduler": "dpm", "num_inference_steps": 25, "seed": 0, "seconds_per_image": 1.5,
    "psnr": 21.5, "gray_psnr": 20.25, "ssim": 0.9, "gray_ssim": 0.91, "auc": 0.9, "gray_auc": 0.85,
    "colorfulness": 26.1, "colorfulness_reference": 30.0, "colorfulness_ratio": 0.87,
    "per_class": {"rose": {"num_images": 12, "psnr": 21.5, "gray_psnr": 20.25, "auc": 0.9, "gray_auc": 0.85,
                           "colorfulness_ratio": 0.87}},
}


def trained_model_folder(tmp_path):
    """A training output_dir: the pipeline, a budget record, and training state that must not ship."""
    model = tmp_path / "trained"
    make_tiny_pipeline().save_pretrained(model)
    (model / "budget").mkdir()
    (model / "budget" / "run-1.json").write_text(json.dumps(RUN))
    (model / "checkpoint-40").mkdir()
    (model / "checkpoint-40" / "optimizer.bin").write_bytes(b"state")
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps(METRICS))
    colour_image(30, 10).save(evaluation / "samples.png")
    return model, evaluation


def test_dry_run_writes_fp16_weights_and_a_full_model_card_and_pushes_nothing(tmp_path, capsys):
    model, evaluation = trained_model_folder(tmp_path)
    out = tmp_path / "published"
    with mock.patch("colorize.hub.HfApi") as api_class:
        code = main(["publish", str(model), "--output-dir", str(out), "--evaluation", str(evaluation),
                     "--title", "Flowers colorizer", "--dataset", "tf_flowers",
                     "--dataset-description", "3,455 Flickr photos, CC BY.", "--training-notes", "32 px: 4x faster.",
                     "--saturation", "1.06", "--working-size", "24", "--sample-spread", "prior:1", "noise:1.3"])
    assert code == 0 and not api_class.called
    listing = capsys.readouterr().out
    assert "dry run, nothing pushed" in listing and "unet/diffusion_pytorch_model.safetensors" in listing
    assert "checkpoint-40" not in listing and not (out / "checkpoint-40").exists()

    with safe_open(out / "unet" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        assert {str(weights.get_tensor(key).dtype) for key in weights.keys()} == {"torch.float16"}
    pipeline = ColorizationPipeline.from_pretrained(out)  # loads back as float32 and runs on CPU
    assert pipeline.config.saturation == 1.06  # the calibrated gain, stored as the calls' default
    assert pipeline.config.working_size == 24 and pipeline.model_size_for(40, 40) == (24, 24)
    assert pipeline.default_sample_spread() == [("prior", 1.0), ("noise", 1.3)]
    assert pipeline.unet.dtype.is_floating_point and pipeline(colour_image(12, 12), num_inference_steps=1).images

    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["license"] == "apache-2.0" and metadata["datasets"] == ["tf_flowers"]
    assert "# Flowers colorizer" in card and "3,455 Flickr photos, CC BY." in card
    assert "| PSNR (dB) | 21.50 | 20.25 |" in card and "| rose | 12 | 21.50 |" in card
    assert "![samples](samples.png)" in card and (out / "samples.png").is_file()
    assert "| 1 | 2026-11-25T10:00:00+00:00 | 0 → 40 | 640 | 0.25 |" in card and "--max_train_steps 40" in card
    assert "## Limitations" in card and "## How it was trained\n\n32 px: 4x faster." in card


def test_push_uploads_the_published_folder_with_the_given_token(tmp_path, capsys):
    model, evaluation = trained_model_folder(tmp_path)
    out = tmp_path / "published"
    with mock.patch("colorize.hub.HfApi") as api_class:
        api = api_class.return_value
        api.create_repo.return_value.repo_id = "someone/flowers"
        code = main(["publish", str(model), "--output-dir", str(out), "--evaluation", str(evaluation),
                     "--repo-id", "someone/flowers", "--token", "hf_test"])
    assert code == 0 and "pushed to https://huggingface.co/someone/flowers" in capsys.readouterr().out
    api_class.assert_called_once_with(token="hf_test")
    assert api.upload_folder.call_args.kwargs["folder_path"] == str(out)
    assert 'from_pretrained("someone/flowers")' in (out / "README.md").read_text()


def test_refuses_to_replace_a_folder_without_overwrite(tmp_path, capsys):
    model, _ = trained_model_folder(tmp_path)
    out = tmp_path / "published"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    assert main(["publish", str(model), "--output-dir", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "precious.txt").read_text() == "keep"
    assert main(["publish", str(model), "--output-dir", str(out), "--overwrite"]) == 0
    assert "No budget records" not in (out / "README.md").read_text()


def test_a_negative_saturation_is_refused_before_anything_is_written(tmp_path, capsys):
    model, _ = trained_model_folder(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["publish", str(model), "--output-dir", str(tmp_path / "published"), "--saturation", "-1"])
    assert stopped.value.code == 2 and "saturation must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "published").exists()
    with pytest.raises(SystemExit) as stopped:
        main(["publish", str(model), "--output-dir", str(tmp_path / "published"), "--sample-spread", "prior:1", "sky:2"])
    assert stopped.value.code == 2 and "start 'prior', 'noise', 'mean' or a strength in (0, 1], got 'sky:2'" in capsys.readouterr().err
    assert not (tmp_path / "published").exists()
