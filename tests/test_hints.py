"""Colour hints: parsing, edge-aware spreading, the pipeline honouring them (and ignoring their absence), the CLI."""

import numpy as np
import pytest
import torch
from conftest import colour_image
from PIL import Image

from colorize.cli import main
from colorize.color import AB_SCALE, rgb_to_lab
from colorize.hints import hint_chroma, hints_from_image, hints_per_image, parse_color, parse_hint, spread


def test_colours_and_hints_parse_or_fail_with_a_clear_message():
    assert parse_color("#d02020") == (208, 32, 32) and parse_color("yellow") == (255, 255, 0)
    assert parse_color((10, 20, 30.4)) == (10, 20, 30)
    assert parse_hint("120,80,#d02020") == (120.0, 80.0, (208, 32, 32))
    for bad, message in [("120,80", "X,Y,COLOR"), ("a,80,red", "pixel coordinates"), ("1,2,blurple", "unknown colour")]:
        with pytest.raises(ValueError, match=message):
            parse_hint(bad)
    with pytest.raises(ValueError, match="0..255"):
        parse_color((300, 0, 0))


def test_hints_per_image_takes_one_list_or_one_list_per_image():
    assert hints_per_image(None, 2) == [[], []] and hints_per_image([], 3) == [[], [], []]
    assert hints_per_image([(1, 2, "red")], 1) == [[(1, 2, "red")]]
    assert hints_per_image([[(1, 2, "red")], []], 2) == [[(1, 2, "red")], []]
    with pytest.raises(ValueError, match="one list of hints each"):
        hints_per_image([(1, 2, "red")], 2)


def test_spreading_fills_a_region_of_even_tone_and_stops_at_its_edge():
    lightness = torch.full((1, 1, 16, 16), -0.6)
    lightness[..., 8:] = 0.6  # a dark left half and a bright right half (60 L units apart)
    seeds = torch.zeros(1, 1, 16, 16)
    seeds[0, 0, 8, 2] = 1.0
    weights = spread(seeds, lightness)[0, 0]
    assert weights[8, 2] == 1.0
    assert weights[:, :8].min() > 0.3  # the whole dark half
    assert weights[:, 8:].max() < 1e-3  # not across the edge


def hinted_chroma_error(output: torch.Tensor, hints) -> float:
    _, chroma = rgb_to_lab(output)
    return max(((chroma[0, :, y, x] - hint_chroma(c)) * AB_SCALE).norm().item() for x, y, c in hints)


def test_the_pipeline_honours_hints_keeps_lightness_and_without_hints_is_unchanged(tiny_pipeline):
    """Hints taken from the true colour photo (as the issue's check does) are met at their pixels within 12 Lab
    units even by an untrained model; the gray input's lightness is kept; no hints changes nothing."""
    truth = np.asarray(colour_image(40, 30, rgb=(60, 90, 200)), dtype=np.float64)
    truth[:, 20:] = truth[:, 20:][..., ::-1]  # a blue left half and an orange-ish right half
    truth_image = Image.fromarray(truth.astype(np.uint8))
    image = truth_image.convert("L").convert("RGB")

    def run(**kwargs):
        return tiny_pipeline(image, num_inference_steps=4, generator=torch.Generator().manual_seed(0),
                             output_type="pt", **kwargs).images

    plain = run()
    assert torch.equal(run(hints=None), plain) and torch.equal(run(hints=[]), plain)
    hints = [(x, y, tuple(truth[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0))) for x, y in [(8, 15), (31, 12)]]
    hinted = run(hints=hints)
    assert hinted_chroma_error(hinted, hints) < 12  # the bar, in Lab units
    assert hinted_chroma_error(plain, hints) > 20  # which the unhinted output is far from
    gray_lightness, _ = rgb_to_lab(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255)
    assert (rgb_to_lab(hinted)[0] - gray_lightness).abs().max() * 50 < 0.5  # L unchanged
    assert hinted_chroma_error(run(hints=hints, saturation=1.5), hints) < hinted_chroma_error(hinted, hints) + 1
    # a saturation gain leaves the hinted colours as the user gave them


def test_a_batch_takes_one_hint_list_per_image_and_bad_hints_are_value_errors(tiny_pipeline):
    images = [colour_image(24, 24, seed=1), colour_image(32, 24, seed=2)]
    generators = [torch.Generator().manual_seed(k) for k in range(2)]
    outputs = tiny_pipeline(images, num_inference_steps=3, generator=generators, output_type="pt",
                            hints=[[(3, 3, "red")], []]).images
    alone = tiny_pipeline(images[1], num_inference_steps=3, generator=torch.Generator().manual_seed(1), output_type="pt").images
    assert torch.equal(outputs[1][None], alone)  # the unhinted image of the batch is as without hints
    with pytest.raises(ValueError, match="outside the 24x24 image"):
        tiny_pipeline(images[0], num_inference_steps=2, hints=[(24, 3, "red")])
    with pytest.raises(ValueError, match="unknown colour"):
        tiny_pipeline(images[0], num_inference_steps=2, hints=[(2, 3, "nocolour")])


def test_hint_image_opaque_pixels_are_hints():
    painted = Image.new("RGBA", (6, 4), (0, 0, 0, 0))
    painted.putpixel((2, 1), (255, 0, 0, 255))
    painted.putpixel((5, 3), (0, 0, 255, 200))
    assert sorted(hints_from_image(painted)) == [(2, 1, (255, 0, 0)), (5, 3, (0, 0, 255))]
    with pytest.raises(ValueError, match="transparency"):
        hints_from_image(Image.new("RGB", (6, 4)))


def test_cli_hints_and_their_one_line_errors(model_dir, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    colour_image(40, 30).save(photo)
    common = [str(photo), "--model", str(model_dir), "--num-inference-steps", "2"]
    assert main(common + ["-o", str(tmp_path / "a"), "--hint", "10,10,#d02020", "--hint", "30,20,yellow"]) == 0
    assert (tmp_path / "a" / "photo.png").is_file()
    with pytest.raises(SystemExit):  # argparse: one usage line and the reason
        main(common + ["--hint", "10,10,blurple"])
    assert "unknown colour 'blurple'" in capsys.readouterr().err
    assert main(common + ["-o", str(tmp_path / "b"), "--hint", "400,10,red"]) == 1
    output = capsys.readouterr()
    assert "hint at (400.0, 10.0) is outside the 40x30 image" in output.out + output.err
    wrong_size = tmp_path / "hints.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(wrong_size)
    assert main(common + ["-o", str(tmp_path / "c"), "--hint-image", str(wrong_size)]) == 1
    output = capsys.readouterr()
    assert "--hint-image is 20x20, the photo 40x30" in output.out + output.err
    assert not (tmp_path / "c" / "photo.png").exists()
