import json
import os
import shutil
import subprocess
import sys
from unittest import mock

import yaml
from conftest import make_tiny_pipeline
from huggingface_hub.utils import filter_repo_objects

from colorize.hub import IGNORE_PATTERNS, Provenance, make_model_card, push_folder_to_hub


def test_model_card_has_hub_metadata_and_usage():
    card = make_model_card(
        "someone/flowers-colorizer",
        Provenance(title="Flowers", description="Colorizes flowers.", dataset="tf_flowers"),
        metrics={"num_images": 4, "psnr": 23.456, "gray_psnr": 22.0, "ssim": 0.9, "gray_ssim": 0.91, "auc": 0.9,
                 "gray_auc": 0.88, "colorfulness": 25.0, "colorfulness_reference": 30.0, "colorfulness_ratio": 0.81},
        runs=[{"command": "accelerate launch train_colorization.py --train_data_dir x", "started": "2026-11-25",
               "start_step": 0, "end_step": 10, "images_seen": 160, "hours": 0.1, "hardware": "CPU",
               "mixed_precision": "no"}],
        base_model="someone/base",
    )
    metadata = yaml.safe_load(str(card).split("---")[1])
    assert metadata["license"] == "apache-2.0" and metadata["library_name"] == "diffusers"
    assert metadata["pipeline_tag"] == "image-to-image" and metadata["base_model"] == "someone/base"
    assert "image-colorization" in metadata["tags"] and metadata["datasets"] == ["tf_flowers"]
    assert 'ColorizationPipeline.from_pretrained("someone/flowers-colorizer")' in card.text
    assert "| PSNR (dB) | 23.46 | 22.00 |" in card.text and "--train_data_dir x" in card.text


def test_push_creates_the_repo_and_uploads_the_pipeline_but_not_training_state(tmp_path):
    make_tiny_pipeline().save_pretrained(tmp_path)
    for junk in ("checkpoint-10/optimizer.bin", "logs/train/events.out", "validation/grid-000010.png"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("x")
    with mock.patch("colorize.hub.HfApi") as api_class:
        api = api_class.return_value
        api.create_repo.return_value.repo_id = "someone/model"
        repo_id = push_folder_to_hub(tmp_path, "someone/model", token="hf_test", private=True)
    assert repo_id == "someone/model"
    api_class.assert_called_once_with(token="hf_test")
    api.create_repo.assert_called_once_with(repo_id="someone/model", exist_ok=True, private=True)
    upload = api.upload_folder.call_args.kwargs
    assert upload["repo_id"] == "someone/model" and upload["folder_path"] == str(tmp_path)
    files = [str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()]
    uploaded = set(filter_repo_objects(files, ignore_patterns=upload["ignore_patterns"]))
    assert uploaded == {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                        "scheduler/scheduler_config.json"}
    assert upload["ignore_patterns"] == IGNORE_PATTERNS


def test_from_pretrained_resolves_a_hub_id_from_the_local_cache_offline(tmp_path):
    """The path real users take: a Hub id, resolved from a populated cache with HF_HUB_OFFLINE=1."""
    saved = tmp_path / "saved"
    make_tiny_pipeline().save_pretrained(saved)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_cache = tmp_path / "hf" / "hub" / "models--some-user--some-model"
    shutil.copytree(saved, repo_cache / "snapshots" / commit)
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text(commit)

    script = (
        "import json, torch\n"
        "from PIL import Image\n"
        "from colorize import ColorizationPipeline\n"
        "pipe = ColorizationPipeline.from_pretrained('some-user/some-model')\n"
        "image = pipe(Image.new('RGB', (21, 13), (90, 90, 90)), num_inference_steps=2).images[0]\n"
        "print(json.dumps({'size': image.size, 'chroma_scale': pipe.config.chroma_scale}))\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"size": [21, 13], "chroma_scale": 4.4}
