"""The calibrated finishes of the sampled chroma, `ColorizationPipeline.sharpen` (``chroma_sharpening``) and
`ColorizationPipeline.transfer_detail` (``detail_transfer``): the call's and the config's amount, a step's picture,
storing it with `colorize publish`."""

import pytest
import torch
from conftest import colour_image

from colorize import ColorizationPipeline
from colorize.cli import main as colorize_main
from colorize.publish import export_pipeline

FINISHES = [("chroma_sharpening", ColorizationPipeline.sharpen), ("detail_transfer", ColorizationPipeline.transfer_detail)]


@pytest.mark.parametrize("setting, finish", FINISHES)
def test_the_call_takes_the_models_calibrated_amount_and_a_saved_one_survives_export(tiny_pipeline, tmp_path, setting,
                                                                                     finish):
    image = colour_image(40, 30)

    def run(pipeline, **kwargs):
        return pipeline(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt",
                        **kwargs).images

    plain = run(tiny_pipeline)
    assert tiny_pipeline.config[setting] == 0.0
    assert torch.equal(run(tiny_pipeline, **{setting: 0.0}), plain)
    finished = run(tiny_pipeline, **{setting: 1.0})
    assert (finished - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match=setting):
        run(tiny_pipeline, **{setting: -1})
    latents, lightness = torch.randn(1, 2, 12, 16), torch.rand(1, 1, 24, 32) * 2 - 1  # a step's picture: alike
    small = torch.nn.functional.interpolate(lightness, size=(12, 16), mode="bilinear", antialias=True)
    expected = tiny_pipeline.compose(lightness, finish(latents / 4.4, 1.0, small))
    assert torch.allclose(tiny_pipeline.decode_latents(latents, lightness, 1.0, **{setting: 1.0}), expected)
    tiny_pipeline.save_pretrained(tmp_path / "model")
    export_pipeline(tmp_path / "model", tmp_path / "published", dtype="fp32", **{setting: 1.0})
    published = ColorizationPipeline.from_pretrained(tmp_path / "published")
    published.set_progress_bar_config(disable=True)
    assert published.config[setting] == 1.0
    assert torch.allclose(run(published), finished, atol=1e-6)


@pytest.mark.parametrize("setting", [setting for setting, _ in FINISHES])
def test_publish_refuses_a_negative_amount_in_one_line(model_dir, tmp_path, capsys, setting):
    flag = "--" + setting.replace("_", "-")
    with pytest.raises(SystemExit) as exit_info:
        colorize_main(["publish", str(model_dir), "--output-dir", str(tmp_path / "out"), flag, "-0.5"])
    assert exit_info.value.code == 2 and f"{setting} must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
