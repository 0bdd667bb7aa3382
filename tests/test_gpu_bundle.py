"""`make gpu-bundle` (gpu/make_bundle.py) and the GPU launcher, run here on the CPU with the tiny preset."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import safetensors.torch
from conftest import make_tiny_teacher, write_image_folder

from colorize import ColorizationPipeline

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "gpu"))
import make_bundle  # noqa: E402


@pytest.mark.slow
def test_the_launcher_trains_and_distils_from_a_bundle_and_leaves_both_fp16_pipelines_and_a_summary(tmp_path):
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
    with tarfile.open(tmp_path / "bundle" / "data" / "train" / "shard-00000.tar") as shard:
        assert {Path(name).suffix for name in shard.getnames()} == {".jpg"}  # no classes: the recipe needs none
    assert (tmp_path / "bundle" / "perceptual" / "efficientnet-lite1.safetensors").is_file()
    make_tiny_teacher().save_pretrained(tmp_path / "tiny")  # an image encoder and a chroma prior, as the shipped model

    env = dict(os.environ, OUT=str(tmp_path / "out"), REPO=str(ROOT), SITE=str(tmp_path / "site"),
               WORK=str(tmp_path / "work"), PRETRAINED=str(tmp_path / "tiny"), PYTHON=sys.executable,
               MINUTES="0.00001", STEPS="50", MIXED_PRECISION="no", RESOLUTION="16", BATCH="4", OMP_NUM_THREADS="2",
               DISTILL_MINUTES="0.00001", DISTILL_STEPS="50", WORKING_SIZE="16")
    result = subprocess.run(
        ["bash", str(tmp_path / "bundle" / "launch.sh"), "--validation_steps", "3", "--num_validation_images", "1",
         "--num_scored_validation_images", "2", "--num_inference_steps", "2", "--checkpointing_steps", "20"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "| diffusers" in result.stdout  # the import check
    out = tmp_path / "out"
    files = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert files == ["image_encoder.tar", "one-pass.tar", "summary.json", "teacher.tar", "train.log"]
    assert all((out / path).stat().st_size <= 16 * 2**20 for path in files)  # what the device returns
    # the time boxes (0.6 ms, shorter than any step) stop both 50-step schedules after their first step
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"]["budget"]["end_step"] == 1 and summary["teacher"]["images_per_second"] > 0
    assert "val/psnr" in summary["teacher"]["budget"]["validation"]
    assert summary["one-pass"]["budget"]["end_step"] == 1
    assert "distill_sampler.py" in summary["one-pass"]["budget"]["command"]
    log = (out / "train.log").read_text()
    assert "Saved the pipeline" in log and "Steps:" not in log
    assert "--max_train_minutes 1e-05 reached: stopping at step 1" in log
    assert "== distill_sampler.py" in log and "--max_train_minutes 1e-05 reached: stopped at step 1" in log

    for name in ("teacher", "one-pass"):  # unpacked as docs/gpu.md says: the model's tar, then the encoder's
        with tarfile.open(out / f"{name}.tar") as model:
            assert not any(member.startswith("image_encoder") for member in model.getnames())
            model.extractall(tmp_path / name, filter="data")
        with tarfile.open(out / "image_encoder.tar") as encoder:
            encoder.extractall(tmp_path / name, filter="data")
        pipeline = ColorizationPipeline.from_pretrained(tmp_path / name)
        assert pipeline.image_encoder is not None and pipeline.chroma_prior is not None
        saved = safetensors.torch.load_file(tmp_path / name / "unet" / "diffusion_pytorch_model.safetensors")
        assert {str(tensor.dtype) for tensor in saved.values()} == {"torch.float16"}
    one_pass = ColorizationPipeline.from_pretrained(tmp_path / "one-pass")
    assert one_pass.config.num_inference_steps == 2 and one_pass.config.working_size == 16
