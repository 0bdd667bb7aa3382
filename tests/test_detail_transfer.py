"""Colour detail from the lightness: `ColorizationPipeline.transfer_detail`, the call's and the config's
``detail_transfer``, and storing it with `colorize publish`."""

import pytest
import torch
import torch.nn.functional as F
from conftest import colour_image

from colorize import ColorizationPipeline
from colorize.cli import main as colorize_main
from colorize.publish import export_pipeline


def stripes(height=24, width=32, period=4):
    """Normalised lightness with fine vertical stripes (finer than the transfer's blur) on a left-to-right ramp."""
    columns = torch.arange(width, dtype=torch.float32)
    ramp = columns / width - 0.5
    fine = 0.2 * torch.sign(torch.sin(2 * torch.pi * columns / period))
    return (ramp + fine).expand(1, 1, height, width).clone()


def test_transfer_detail_carries_the_lightness_fine_detail_along_the_chroma_s_local_slope():
    lightness = stripes()
    coarse = F.avg_pool2d(F.pad(lightness, (4, 4, 0, 0), mode="replicate"), (1, 9), stride=1)  # the ramp, smooth
    chroma = torch.cat([0.5 * coarse, -0.25 * coarse])  # a rises with the lightness, b falls at half the rate
    chroma = chroma.view(1, 2, 24, 32)
    assert ColorizationPipeline.transfer_detail(chroma, 0.0, lightness) is chroma
    detailed = ColorizationPipeline.transfer_detail(chroma, 1.0, lightness)
    added = (detailed - chroma)[..., 6:-6]  # away from the borders
    fine = (lightness - coarse)[..., 6:-6]
    assert added.abs().max() > 0.02  # the stripes now show in the colours...
    assert (added[:, 0] * fine[:, 0]).sum() > 0 > (added[:, 1] * fine[:, 0]).sum()  # ...in the direction of the slope
    assert torch.corrcoef(torch.stack([added[0, 0].flatten(), fine[0, 0].flatten()]))[0, 1] > 0.8


def test_transfer_detail_adds_nothing_where_the_chroma_does_not_follow_the_lightness_or_a_hint_pulls():
    lightness = stripes()
    flat_colour = torch.full((1, 2, 24, 32), 0.3)
    assert torch.allclose(ColorizationPipeline.transfer_detail(flat_colour, 1.0, lightness), flat_colour, atol=1e-5)
    chroma = torch.zeros(1, 2, 24, 32)
    chroma[..., 16:] = 0.3
    flat_lightness = torch.zeros(1, 1, 24, 32)
    assert torch.equal(ColorizationPipeline.transfer_detail(chroma, 1.0, flat_lightness), chroma)
    hinted = torch.zeros(1, 1, 24, 32)
    hinted[..., 10:20] = 1.0
    kept = ColorizationPipeline.transfer_detail(chroma, 1.0, lightness, hinted)
    assert torch.equal(kept[..., 10:20], chroma[..., 10:20])


def test_the_call_takes_the_models_calibrated_detail_transfer_and_a_saved_one_survives_export(tiny_pipeline, tmp_path):
    image = colour_image(40, 30)

    def run(pipeline, **kwargs):
        return pipeline(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt",
                        **kwargs).images

    plain = run(tiny_pipeline)
    assert tiny_pipeline.config.detail_transfer == 0.0
    assert torch.equal(run(tiny_pipeline, detail_transfer=0.0), plain)
    detailed = run(tiny_pipeline, detail_transfer=1.0)
    assert (detailed - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="detail_transfer"):
        run(tiny_pipeline, detail_transfer=-1)
    latents, lightness = torch.randn(1, 2, 12, 16), torch.rand(1, 1, 24, 32) * 2 - 1  # a step's picture: alike
    small = torch.nn.functional.interpolate(lightness, size=(12, 16), mode="bilinear", antialias=True)
    expected = tiny_pipeline.compose(lightness, ColorizationPipeline.transfer_detail(latents / 4.4, 1.0, small))
    assert torch.allclose(tiny_pipeline.decode_latents(latents, lightness, 1.0, detail_transfer=1.0), expected)
    tiny_pipeline.save_pretrained(tmp_path / "model")
    export_pipeline(tmp_path / "model", tmp_path / "published", dtype="fp32", detail_transfer=1.0)
    published = ColorizationPipeline.from_pretrained(tmp_path / "published")
    published.set_progress_bar_config(disable=True)
    assert published.config.detail_transfer == 1.0
    assert torch.allclose(run(published), detailed, atol=1e-6)


def test_publish_refuses_a_negative_detail_transfer_in_one_line(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        colorize_main(["publish", str(model_dir), "--output-dir", str(tmp_path / "out"), "--detail-transfer", "-1"])
    assert exit_info.value.code == 2 and "detail_transfer must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
