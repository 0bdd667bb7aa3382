"""Predict-and-refine: the chroma prior, the pipeline's `strength`, and `train_chroma_prior.py`."""

import pytest
import torch
from conftest import colour_image, make_tiny_pipeline, run_script, write_image_folder
from diffusers import DPMSolverMultistepScheduler

from colorize import ColorizationPipeline, ImageEncoder
from colorize.chroma_prior import ChromaPrior, bin_centers, bin_targets
from colorize.color import rgb_to_lab
from colorize.image_io import find_images
from colorize.modeling import build_unet
from colorize.shards import write_shards
from colorize.training.budget import read_budget

COLOUR = (0.15, 0.1)  # the constant prior's normalised (a, b)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ImageEncoder.from_imagenet(projection_channels=4)


def constant_prior(gain: float = 1.5) -> ChromaPrior:
    """A prior that predicts one colour everywhere, `COLOUR` (in the UNet's space, chroma_scale 4.4)."""
    prior = ChromaPrior(gain=gain)
    with torch.no_grad():
        last = prior.head[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor(COLOUR) * 4.4 / gain)
    return prior


def make_pipeline(encoder, prior=None) -> ColorizationPipeline:
    base = make_tiny_pipeline()
    pipeline = ColorizationPipeline(
        unet=build_unet("tiny", 16, feature_channels=encoder.config.projection_channels),
        scheduler=DPMSolverMultistepScheduler.from_config(base.scheduler.config),
        image_encoder=encoder, chroma_scale=4.4, chroma_prior=prior,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipeline, image, steps: int = 3, **kwargs) -> torch.Tensor:
    return pipeline(image, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="pt",
                    **kwargs).images


def mean_chroma(images: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(images)[1].mean(dim=(0, 2, 3))


def test_strength_one_samples_from_noise_exactly_as_without_a_prior(encoder):
    torch.manual_seed(1)
    plain = make_pipeline(encoder)
    with_prior = make_pipeline(encoder, constant_prior())
    with_prior.unet.load_state_dict(plain.unet.state_dict())
    image = colour_image(40, 30)
    assert torch.equal(run(with_prior, image, strength=1.0), run(plain, image))
    assert not torch.allclose(run(with_prior, image), run(plain, image), atol=1e-3)  # default: the prior's 0.8


def test_low_strength_keeps_the_prior_colour_and_the_pipeline_saves_and_loads_with_it(encoder, tmp_path):
    """Started near the end of the schedule (strength 0.05 of 20 steps: one step at t ~ 50), the output's colour is
    the prior's; from pure noise the random tiny UNet's is not. Saved and loaded, the prior comes along."""
    pipeline = make_pipeline(encoder, constant_prior())
    image = colour_image(40, 30)
    refined = run(pipeline, image, steps=20, strength=0.05)
    assert torch.allclose(mean_chroma(refined), torch.tensor(COLOUR), atol=0.02)
    from_noise = mean_chroma(run(pipeline, image, steps=20, strength=1.0))
    assert (from_noise - torch.tensor(COLOUR)).abs().max() > 0.1
    pipeline.save_pretrained(tmp_path)
    assert (tmp_path / "chroma_prior" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.chroma_prior, ChromaPrior) and loaded.chroma_prior.config.strength == 0.8
    assert torch.allclose(run(loaded, image, steps=20, strength=0.05), refined, atol=1e-6)


def test_bad_strength_and_a_prior_without_encoder_are_refused(encoder):
    pipeline = make_pipeline(encoder, constant_prior())
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        run(pipeline, colour_image(32, 32), strength=1.5)
    base = make_tiny_pipeline()
    with pytest.raises(ValueError, match="needs an image_encoder"):
        ColorizationPipeline(unet=base.unet, scheduler=base.scheduler, chroma_prior=constant_prior())


def test_bin_targets_count_each_cell_s_colours_and_the_annealed_mean_sharpens_towards_the_mode():
    chroma = torch.zeros(1, 2, 8, 8)  # 2 x 2 cells of 4 x 4 pixels (PIXELS_PER_CELL)
    chroma[:, 0, :, 4:] = 0.5  # right cells: a = 0.5
    chroma[:, 0, 0, :4] = 0.5  # top-left cell: 4 of its 16 pixels too, the rest gray
    targets = bin_targets(chroma, (2, 2), bins_per_axis=4)
    assert targets.shape == (1, 16, 2, 2) and torch.allclose(targets.sum(dim=1), torch.ones(1, 2, 2))
    gray_bin, red_bin = 2 * 4 + 2, 3 * 4 + 2  # a-major; 0 falls in bin 2 of 4, 0.5 in bin 3
    assert targets[0, red_bin, :, 1].eq(1).all() and targets[0, gray_bin, 1, 0] == 1
    assert targets[0, gray_bin, 0, 0] == 0.75 and targets[0, red_bin, 0, 0] == 0.25
    assert torch.allclose(bin_centers(4)[:, red_bin], torch.tensor([0.75, 0.25]))

    prior = ChromaPrior(bins_per_axis=4, temperature=1.0, chroma_scale=2.0)
    logits = torch.full((1, 16, 1, 1), -20.0)
    logits[0, red_bin], logits[0, gray_bin] = 2.0, 1.0  # mostly red, some gray
    mean = prior.decode(logits)[0, :, 0, 0] / 2.0
    prior.register_to_config(temperature=0.1)
    sharpened = prior.decode(logits)[0, :, 0, 0] / 2.0
    red = bin_centers(4)[:, red_bin]
    assert (sharpened - red).norm() < 1e-3 < (mean - red).norm()  # T = 0.1: the mode; T = 1: pulled towards gray
    with pytest.raises(ValueError, match="temperature"):
        ChromaPrior(bins_per_axis=4, temperature=0.0)


@pytest.mark.parametrize("bins_per_axis", [0, 8])
def test_train_chroma_prior_fits_a_prior_that_learns_the_photos_colour_and_saves_the_pipeline(
    encoder, tmp_path, capsys, bins_per_axis
):
    """All-red training photos: the trained prior predicts red (a > 0), as a regression and as bins; the saved
    pipeline carries it with the gain and strength asked for; gray and broken files are skipped and counted; an
    existing output folder is never written over; the run leaves its budget record."""
    photos = write_image_folder(tmp_path / "photos", per_class=3)
    for folder in photos.iterdir():  # keep the red class (and the broken and gray files) only
        if folder.name != "red":
            for file in folder.iterdir():
                if file.name != "already_gray.png":
                    file.unlink()
    make_pipeline(encoder).save_pretrained(tmp_path / "model")
    output = tmp_path / "with-prior"
    run_script(
        "train_chroma_prior.py", "--pretrained_model_name_or_path", tmp_path / "model", "--train_data_dir", photos,
        "--output_dir", output, "--num_train_epochs", "30", "--gain", "1.2", "--strength", "0.6",
        "--bins_per_axis", bins_per_axis,
    )
    assert "kept 3 images, skipped 2" in capsys.readouterr().out
    (record,) = read_budget(output)
    assert record["end_step"] == 30 and record["images_seen"] == 90 and "train_chroma_prior.py" in record["command"]
    pipeline = ColorizationPipeline.from_pretrained(output)
    assert pipeline.chroma_prior.config.gain == 1.2 and pipeline.chroma_prior.config.strength == 0.6
    assert pipeline.chroma_prior.config.bins_per_axis == bins_per_axis
    lightness, ab = rgb_to_lab(torch.stack([torch.tensor([0.8, 0.15, 0.1]).view(3, 1, 1).expand(3, 40, 48)]))
    predicted = pipeline.encode_image(lightness, (8, 8), with_prior=True).prior.mean(dim=(0, 2, 3)) / 4.4
    assert predicted[0] > 0.1  # red: positive a
    with pytest.raises(SystemExit) as exit_info:
        run_script("train_chroma_prior.py", "--pretrained_model_name_or_path", tmp_path / "model",
                   "--train_data_dir", photos, "--output_dir", output)
    assert exit_info.value.code == 2 and "nothing is overwritten" in capsys.readouterr().err


def test_train_chroma_prior_reads_the_shards_the_unet_trains_on_and_stops_in_one_line_on_a_bad_source(
    encoder, tmp_path, capsys
):
    """The same data sources as train_colorization.py: webdataset shards here; a missing folder is one line, exit 2,
    nothing written."""
    photos = write_image_folder(tmp_path / "photos", per_class=2, corrupt=False, gray=False)
    write_shards(find_images(photos), tmp_path / "shards", shorter_side=32)
    make_pipeline(encoder).save_pretrained(tmp_path / "model")
    run_script("train_chroma_prior.py", "--pretrained_model_name_or_path", tmp_path / "model",
               "--train_data_dir", tmp_path / "shards", "--output_dir", tmp_path / "out", "--num_epochs", "1")
    assert "kept all 4 images" in capsys.readouterr().out
    assert ColorizationPipeline.from_pretrained(tmp_path / "out").chroma_prior is not None
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_script("train_chroma_prior.py", "--pretrained_model_name_or_path", tmp_path / "model",
                   "--train_data_dir", tmp_path / "nowhere", "--output_dir", tmp_path / "out2")
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1 and "no such folder" in error
    assert not (tmp_path / "out2").exists()


def test_the_command_line_takes_strength_and_refuses_one_out_of_range(capsys):
    from colorize.cli.evaluate import build_parser

    assert build_parser().parse_args(["photos/", "--output-dir", "out", "--strength", "0.5"]).strength == 0.5
    assert build_parser().parse_args(["photos/", "--output-dir", "out"]).strength is None  # the model's own
    with pytest.raises(SystemExit):
        build_parser().parse_args(["photos/", "--output-dir", "out", "--strength", "1.5"])
    assert "strength must be between 0 and 1, got 1.5" in capsys.readouterr().err
