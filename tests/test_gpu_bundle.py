"""`make gpu-bundle` (gpu/make_bundle.py) and the GPU launcher, run here on the CPU with the tiny preset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_pipeline, write_image_folder

from colorize import ColorizationPipeline

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "gpu"))
import make_bundle  # noqa: E402


@pytest.mark.slow
def test_the_launcher_trains_from_a_bundle_and_leaves_the_fp16_pipeline_and_a_summary(tmp_path):
    photos = write_image_folder(tmp_path / "photos", per_class=6, size=(40, 48))
    try:
        # the device's wheels are for its Python 3.12; this run installs them into the Python running the tests
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        summary = make_bundle.build(tmp_path / "bundle", str(photos), str(photos), 4, 32, 75, 5, wheels=True,
                                    max_mib=60, python_version=python)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"PyPI unreachable for the bundle's wheels: {error}")
    assert summary["mib"] <= 60 and json.loads((tmp_path / "bundle" / "bundle.json").read_text()) == summary
    assert summary["train"] == {"photos": 13, "shards": 3, "left_out": [str(photos / "red" / "broken.jpg")],
                                "mib": summary["train"]["mib"]}
    assert {name.split("-")[0] for name in summary["wheels"]} >= {"diffusers", "datasets", "kornia"}
    make_tiny_pipeline(resolution=16).save_pretrained(tmp_path / "tiny")

    env = dict(os.environ, OUT=str(tmp_path / "out"), REPO=str(ROOT), SITE=str(tmp_path / "site"),
               WORK=str(tmp_path / "work"), PRETRAINED=str(tmp_path / "tiny"), PYTHON=sys.executable,
               MINUTES="0.00001", STEPS="50", MIXED_PRECISION="no", RESOLUTION="16", BATCH="4", OMP_NUM_THREADS="2")
    result = subprocess.run(
        ["bash", str(tmp_path / "bundle" / "launch.sh"), "--validation_steps", "3", "--num_validation_images", "1",
         "--num_scored_validation_images", "2", "--num_inference_steps", "2", "--checkpointing_steps", "20"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # the import check; the time box (0.6 ms, shorter than any step) stops the 50-step schedule after its first step
    assert "| diffusers" in result.stdout and "1 steps" in result.stdout
    files = sorted(str(path.relative_to(tmp_path / "out")) for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert len(files) <= 8 and all(path.count("/") <= 2 for path in files), files
    assert all((tmp_path / "out" / path).stat().st_size <= 16 * 2**20 for path in files)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["budget"]["end_step"] == 1 and summary["images_per_second"] > 0
    assert "val/psnr" in summary["budget"]["validation"]
    log = (tmp_path / "out" / "train.log").read_text()
    assert "Saved the pipeline" in log and "Steps:" not in log
    assert "--max_train_minutes 1e-05 reached: stopping at step 1" in log
    pipeline = ColorizationPipeline.from_pretrained(tmp_path / "out" / "model")
    assert pipeline.unet.dtype.itemsize == 4  # loaded back as float32 on the CPU
    import safetensors.torch
    saved = safetensors.torch.load_file(tmp_path / "out" / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    assert {str(tensor.dtype) for tensor in saved.values()} == {"torch.float16"}
