"""The flowers model and sample photos that ship in the repository: what `make demo` and a bare
`colorize photo.jpg` rely on, offline."""

from pathlib import Path

import yaml
from conftest import colour_image
from PIL import Image
from safetensors import safe_open

from colorize import ColorizationPipeline
from colorize.cli import main
from colorize.pipeline_colorization import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def test_the_default_model_is_a_small_fp16_safetensors_diffusers_folder():
    files = [path for path in DEFAULT_MODEL.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) <= 50 * 2**20
    assert not [path for path in files if path.suffix in (".bin", ".pt", ".pth", ".pkl")]
    with safe_open(DEFAULT_MODEL / "unet" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        assert {str(weights.get_tensor(key).dtype) for key in weights.keys()} == {"torch.float16"}


def test_the_model_card_says_what_the_hub_and_a_user_need():
    card = (DEFAULT_MODEL / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["license"] and metadata["library_name"] == "diffusers" and metadata["datasets"]
    for section in ("## Results", "## Training data", "## Training budget", "## Training commands", "## Limitations"):
        assert section in card
    assert "| PSNR (dB) |" in card and "gray input" in card
    assert "![samples](samples.png)" in card and (DEFAULT_MODEL / "samples.png").is_file()


def test_from_pretrained_without_a_name_loads_the_shipped_model_and_colorizes():
    pipeline = ColorizationPipeline.from_pretrained()
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline(colour_image(48, 40), num_inference_steps=2).images[0]
    assert image.size == (48, 40) and image.mode == "RGB"
    assert pipeline.config.saturation == 1.06  # its calibrated gain, measured with guidance 2 (benchmarks/README.md)
    assert pipeline.config.working_size == 48 and pipeline.unet.config.sample_size == 48  # distilled at its working size
    assert pipeline.config.distilled_guidance_scale == 2.0  # guided in one UNet pass at the default guidance scale
    # a photo's samples: its best guess, a draw led in from the prior noised further, the muted mean of the drawn
    # samples and a vivid draw (benchmarks/README.md, "Draws led in from the prior", "The muted sample: the mean")
    assert pipeline.default_sample_spread() == [("prior", 1.0), (0.9, 1.25), ("mean", 0.7), (0.75, 1.3)]
    # the colours' fine shapes from the gray photo's detail, instead of an unsharp mask (benchmarks/README.md)
    assert pipeline.config.detail_transfer == 1.0 and pipeline.config.chroma_sharpening == 0.0
    # one UNet pass a photo: the last step of 2 from the prior at half the schedule (distill_sampler.py)
    assert pipeline.default_num_inference_steps() == 2 and pipeline.default_strength() == 0.5


def test_colorize_uses_the_shipped_model_when_none_is_named(tmp_path, capsys):
    colour_image(40, 30).convert("L").save(tmp_path / "photo.jpg")
    assert main([str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "out"), "--num-inference-steps", "2"]) == 0
    assert Image.open(tmp_path / "out" / "photo.jpg").size == (40, 30)


def test_at_most_eight_bundled_samples_each_credited_and_one_large():
    photos = sorted(path for path in SAMPLES.iterdir() if path.suffix == ".jpg")
    credits = (SAMPLES / "README.md").read_text()
    assert 1 <= len(photos) <= 8 and all(photo.name in credits for photo in photos)
    assert max(max(Image.open(photo).size) for photo in photos) >= 1024
