"""The unsharp mask on the sampled chroma: `ColorizationPipeline.sharpen`, the call's and the config's
``chroma_sharpening``, and storing it with `colorize publish`."""

import pytest
import torch
from conftest import colour_image

from colorize import ColorizationPipeline
from colorize.cli import main as colorize_main
from colorize.publish import export_pipeline


def test_sharpen_amplifies_edges_where_the_lightness_has_one_and_leaves_flat_colour_and_hinted_pixels_alone():
    chroma = torch.zeros(1, 2, 12, 16)
    chroma[..., 8:] = 0.3  # a step in a and b halfway across
    lightness = torch.zeros(1, 1, 12, 16)
    lightness[..., 8:] = 0.5  # the photo's edge in the same place
    assert ColorizationPipeline.sharpen(chroma, 0.0, lightness) is chroma
    sharp = ColorizationPipeline.sharpen(chroma, 1.0, lightness)
    assert sharp[..., 7].max() < -0.01 and sharp[..., 8].min() > 0.31  # both sides of the edge pushed apart
    assert torch.allclose(sharp[..., :4], chroma[..., :4], atol=1e-4)  # far from it, flat colour unchanged
    assert torch.allclose(sharp[..., 12:], chroma[..., 12:], atol=1e-4)
    flat = ColorizationPipeline.sharpen(chroma, 1.0, torch.zeros(1, 1, 12, 16))  # a colour step on flat lightness
    assert torch.equal(flat, chroma)
    hinted = torch.zeros(1, 1, 12, 16)
    hinted[..., 6:10] = 1.0
    assert torch.equal(ColorizationPipeline.sharpen(chroma, 1.0, lightness, hinted)[..., 6:10], chroma[..., 6:10])


def test_the_call_takes_the_models_calibrated_sharpening_and_a_saved_one_survives_export(tiny_pipeline, tmp_path):
    image = colour_image(40, 30)

    def run(pipeline, **kwargs):
        return pipeline(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt",
                        **kwargs).images

    plain = run(tiny_pipeline)
    assert tiny_pipeline.config.chroma_sharpening == 0.0
    assert torch.equal(run(tiny_pipeline, chroma_sharpening=0.0), plain)
    sharpened = run(tiny_pipeline, chroma_sharpening=1.0)
    assert (sharpened - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="chroma_sharpening"):
        run(tiny_pipeline, chroma_sharpening=-1)
    latents, lightness = torch.randn(1, 2, 12, 16), torch.rand(1, 1, 24, 32) * 2 - 1  # a step's picture: alike
    small = torch.nn.functional.interpolate(lightness, size=(12, 16), mode="bilinear", antialias=True)
    expected = tiny_pipeline.compose(lightness, ColorizationPipeline.sharpen(latents / 4.4, 1.0, small))
    assert torch.allclose(tiny_pipeline.decode_latents(latents, lightness, 1.0, chroma_sharpening=1.0), expected)
    tiny_pipeline.save_pretrained(tmp_path / "model")
    export_pipeline(tmp_path / "model", tmp_path / "published", dtype="fp32", chroma_sharpening=1.0)
    published = ColorizationPipeline.from_pretrained(tmp_path / "published")
    published.set_progress_bar_config(disable=True)
    assert published.config.chroma_sharpening == 1.0
    assert torch.allclose(run(published), sharpened, atol=1e-6)


def test_publish_refuses_a_negative_sharpening_in_one_line(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        colorize_main(["publish", str(model_dir), "--output-dir", str(tmp_path / "out"), "--chroma-sharpening", "-0.5"])
    assert exit_info.value.code == 2 and "chroma_sharpening must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
