"""Shared fixtures: synthetic colour images made on the fly, a tiny pipeline, and no network."""

import os
import runpy
import sys
import tempfile
from pathlib import Path
from unittest import mock

# Before anything imports huggingface_hub: never reach the network, never touch the user's caches.
_HF_HOME = tempfile.mkdtemp(prefix="colorize-tests-hf-")
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
                  GRADIO_ANALYTICS_ENABLED="False", SE_AVOID_STATS="true")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import DPMSolverMultistepScheduler  # noqa: E402
from PIL import Image  # noqa: E402

from colorize import ColorizationPipeline  # noqa: E402
from colorize.chroma_prior import ChromaPrior  # noqa: E402
from colorize.image_encoder import ImageEncoder  # noqa: E402
from colorize.modeling import build_noise_scheduler, build_unet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZE = 16  # the tiny pipelines' training resolution


def run_script(script: str, *argv):
    """Run a script of the repository in this process, as `python SCRIPT ARGV...` would (as ``__main__``, never
    imported as a module): quick, and mocks apply. Its SystemExit propagates."""
    with mock.patch.object(sys, "argv", [str(ROOT / script), *map(str, argv)]):
        runpy.run_path(str(ROOT / script), run_name="__main__")


def script_error(capsys, script: str, *argv) -> str:
    """Run ``script`` (`run_script`) expecting it to stop on a mistake: exit status 2 and a last line on stderr
    that starts "SCRIPT: error:", which is returned."""
    import pytest

    with pytest.raises(SystemExit) as stopped:
        run_script(script, *argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"{script}: error:"), error
    return error


CLASS_HUES = {"red": (200, 40, 30), "green": (40, 180, 60)}


def colour_image(width: int, height: int, rgb=(200, 40, 30), seed: int = 0) -> Image.Image:
    """A smooth colour image: a gradient of ``rgb`` over gray, with mild noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.2, 1.0, width)[None, :, None] * np.linspace(0.5, 1.0, height)[:, None, None]
    pixels = ramp * np.array(rgb)[None, None, :] + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def gray_image(width: int, height: int) -> Image.Image:
    return colour_image(width, height).convert("L").convert("RGB")


def write_image_folder(root, per_class: int = 6, size=(40, 48), corrupt: bool = True, gray: bool = True):
    """root/<class>/*.png colour images, plus one undecodable and one gray file when asked."""
    for class_index, (name, rgb) in enumerate(CLASS_HUES.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour_image(*size, rgb=rgb, seed=100 * class_index + i).save(folder / f"{i}.png")
    if corrupt:
        (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    if gray:
        gray_image(*size).save(root / "green" / "already_gray.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("flowers"))


def make_tiny_pipeline(seed: int = 0, resolution: int = 16) -> ColorizationPipeline:
    torch.manual_seed(seed)
    unet = build_unet("tiny", resolution)
    pipeline = ColorizationPipeline(unet=unet, scheduler=build_noise_scheduler(chroma_scale=4.4), chroma_scale=4.4)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def make_tiny_teacher(num_inference_steps: int | None = None) -> ColorizationPipeline:
    """A tiny guidance-distilled pipeline with an image encoder and a chroma prior, sampling with DPM-Solver++."""
    torch.manual_seed(0)
    base = make_tiny_pipeline()
    pipeline = ColorizationPipeline(
        unet=build_unet("tiny", SIZE, feature_channels=4).eval(),
        scheduler=DPMSolverMultistepScheduler.from_config(base.scheduler.config, prediction_type="v_prediction"),
        image_encoder=ImageEncoder.from_imagenet(projection_channels=4).eval(), chroma_scale=4.4,
        chroma_prior=ChromaPrior().eval(), distilled_guidance_scale=2.0, num_inference_steps=num_inference_steps,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def tiny_pipeline():
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A saved tiny pipeline folder, for the commands that load one."""
    path = tmp_path_factory.mktemp("model")
    make_tiny_pipeline().save_pretrained(path)
    return path
