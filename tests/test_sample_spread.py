"""`sample_spread`: how the images of one photo differ (from the chroma prior, from noise or from the prior noised
further, or the mean of the drawn ones, and at which gain)."""

import pytest
import torch
from conftest import colour_image
from test_chroma_prior import constant_prior, make_pipeline

from colorize import ColorizationPipeline, ImageEncoder
from colorize.settings import check_sample_spread


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ImageEncoder.from_imagenet(projection_channels=4)


@pytest.fixture
def pipeline(encoder):
    return make_pipeline(encoder, constant_prior())


def generators(*seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def colorize(pipeline, images, seeds, steps=4, **kwargs) -> torch.Tensor:
    return pipeline(images, num_inference_steps=steps, generator=generators(*seeds), output_type="pt", **kwargs).images


def test_each_image_starts_where_its_pair_says_and_takes_its_gain(pipeline):
    """Image k of each photo is what a one-image call with that start (strength 1 for noise) and gain gives."""
    images = [colour_image(40, 30), colour_image(30, 40, rgb=(10, 200, 30))]
    spread = [("prior", 1.0), ("noise", 1.0), ("prior", 1.5)]
    together = colorize(pipeline, images, [0, 1, 2, 3, 4, 5], num_images_per_prompt=3, sample_spread=spread)
    for photo, image in enumerate(images):
        prior, noise, vivid = together[3 * photo : 3 * photo + 3]
        seed = 3 * photo
        torch.testing.assert_close(prior, colorize(pipeline, image, [seed])[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(noise, colorize(pipeline, image, [seed + 1], strength=1.0)[0], atol=1e-5, rtol=0)
        saturation = 1.5 * pipeline.config.saturation
        torch.testing.assert_close(vivid, colorize(pipeline, image, [seed + 2], saturation=saturation)[0], atol=1e-5, rtol=0)
    assert (together[0] - together[1]).abs().max() > 1e-2  # the draw from noise is another colouring


def test_pairs_cycle_and_the_default_is_every_image_from_the_prior(pipeline):
    image = colour_image(32, 32)
    default = colorize(pipeline, image, [0, 0, 0], num_images_per_prompt=3)
    torch.testing.assert_close(default[1], default[0], atol=1e-5, rtol=0)  # same seed, same start: the same image
    cycled = colorize(pipeline, image, [0, 0, 0], num_images_per_prompt=3, sample_spread=["prior:1", "noise:1"])
    torch.testing.assert_close(cycled[2], cycled[0], atol=1e-5, rtol=0)  # pair 0 again
    assert (cycled[1] - cycled[0]).abs().max() > 1e-2


def test_the_model_s_calibrated_spread_is_saved_loaded_and_overridden_per_call(pipeline, tmp_path):
    pipeline.register_to_config(sample_spread=check_sample_spread(["prior:1", "noise:1.3", "0.75:0.7"]))
    pipeline.save_pretrained(tmp_path)
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.default_sample_spread() == [("prior", 1.0), ("noise", 1.3), (0.75, 0.7)]
    image = colour_image(32, 32)
    calibrated = colorize(loaded, image, [0, 1, 2], num_images_per_prompt=3)
    given = colorize(loaded, image, [0, 1, 2], num_images_per_prompt=3,
                     sample_spread=[("prior", 1.0), ("noise", 1.3), (0.75, 0.7)])
    torch.testing.assert_close(calibrated, given)
    overridden = colorize(loaded, image, [0, 1], num_images_per_prompt=2, sample_spread=[("prior", 1.0)])
    torch.testing.assert_close(overridden[1], colorize(loaded, image, [1])[0], atol=1e-5, rtol=0)


def test_each_photo_is_encoded_once_whatever_its_images_start_from(pipeline, monkeypatch):
    calls = []
    encode = pipeline.encode_image
    monkeypatch.setattr(pipeline, "encode_image", lambda *args, **kwargs: calls.append(args) or encode(*args, **kwargs))
    colorize(pipeline, [colour_image(32, 32), colour_image(32, 32)], range(8), num_images_per_prompt=4,
             sample_spread=["prior:1", "noise:1.3"])
    assert len(calls) == 2


def test_intermediates_of_mixed_starts_hold_the_shortest_run(pipeline):
    """From the prior at strength 0.5 of 4 steps, 2 run; from noise all 4: each entry holds both images."""
    output = pipeline(colour_image(32, 32), num_inference_steps=4, generator=generators(0, 1), num_images_per_prompt=2,
                      sample_spread=["prior:1", "noise:1"], strength=0.5, return_intermediates=True, output_type="pt")
    assert len(output.intermediates) == 2
    torch.testing.assert_close(output.intermediates[-1], output.images)


def test_without_a_prior_every_image_starts_from_noise(encoder):
    plain = make_pipeline(encoder)
    image = colour_image(32, 32)
    spread = colorize(plain, image, [0, 0], num_images_per_prompt=2, sample_spread=["prior:1", "noise:1"])
    torch.testing.assert_close(spread[1], spread[0], atol=1e-5, rtol=0)


def test_a_start_between_the_strength_and_noise_is_the_solver_s_first_order_step_from_there(pipeline, monkeypatch):
    """From the prior at 0.5 a 2-step schedule runs its last step (timestep 499); a start of 0.75 noises the prior to
    timestep 749 and leads into that step with one UNet pass: what DPM-Solver++ gives run over [749, 499]."""
    image = colour_image(32, 24)
    led_in = colorize(pipeline, image, [0, 1], steps=2, num_images_per_prompt=2, strength=0.5,
                      sample_spread=["prior:1", "0.75:1"])
    scheduler = pipeline.scheduler

    def solver_from_749(num_inference_steps, strength, device):
        scheduler.set_timesteps(timesteps=[749, 499], device=device)
        return scheduler.timesteps

    monkeypatch.setattr(pipeline, "get_timesteps", solver_from_749)
    solved = colorize(pipeline, image, [1], steps=2, strength=0.5)
    torch.testing.assert_close(led_in[1], solved[0], atol=2e-3, rtol=0)
    assert (led_in[1] - led_in[0]).abs().max() > 1e-2  # another colouring than the prior's own


def test_a_start_at_or_below_the_strength_is_the_prior_s(pipeline):
    image = colour_image(32, 24)
    spread = colorize(pipeline, image, [0, 0, 0], steps=2, num_images_per_prompt=3, strength=0.5,
                      sample_spread=["prior:1", "0.5:1", "0.3:1"])
    torch.testing.assert_close(spread[1], spread[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(spread[2], spread[0], atol=1e-5, rtol=0)


def test_the_lead_in_pass_honours_hints(pipeline):
    """Where a hint's weight is 1, the prior that the lead-in pass hands to the call's steps is the hint's chroma."""
    lightness = pipeline._prepare_lightness(colour_image(32, 32))
    encoded = pipeline.encode_image(lightness, (32, 32), with_prior=True)
    hinted = torch.tensor([0.5, -0.3]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    weight = torch.zeros(1, 1, 32, 32)
    weight[..., 16, 16] = 1.0
    led_in, noise = pipeline.lead_in(lightness, encoded, 0.9, 0.5, torch.Generator().manual_seed(0), 1.0, (hinted, weight))
    torch.testing.assert_close(led_in.prior[0, :, 16, 16], torch.tensor([0.5, -0.3]) * 4.4)
    assert (led_in.prior[0, :, 0, 0] - torch.tensor([0.5, -0.3]) * 4.4).abs().max() > 0.1  # unhinted pixels: the pass's own
    assert noise.shape == (1, 2, 32, 32)


def test_a_mean_sample_is_the_mean_of_its_photo_s_drawn_samples_at_its_own_gain(pipeline, monkeypatch):
    """Two photos of 3 samples: each photo's "mean" sample is finished from the mean of that photo's two drawn
    samples' chroma, with its own gain, and the drawn samples are what they are without it."""
    finished = []
    finish = pipeline.finish_chroma
    monkeypatch.setattr(pipeline, "finish_chroma",
                        lambda chroma, *args, **kwargs: finished.append((chroma, args[2])) or finish(chroma, *args, **kwargs))
    images = [colour_image(32, 24), colour_image(32, 24, rgb=(10, 200, 30))]
    spread = ["prior:1", "noise:1.2", "mean:0.7"]
    with_mean = colorize(pipeline, images, range(6), num_images_per_prompt=3, sample_spread=spread)
    saturation = pipeline.config.saturation
    for photo in range(2):
        (first, gain_first), (second, _), (mean, gain_mean) = finished[3 * photo : 3 * photo + 3]
        torch.testing.assert_close(mean, (first + second) / 2)
        assert gain_first == pytest.approx(saturation) and gain_mean == pytest.approx(0.7 * saturation)
        assert (mean - first).abs().max() > 1e-3  # a colouring of its own
    drawn = colorize(pipeline, images, [0, 1, 3, 4], num_images_per_prompt=2, sample_spread=spread[:2])
    torch.testing.assert_close(with_mean[[0, 1, 3, 4]], drawn, atol=1e-5, rtol=0)


def test_a_mean_sample_draws_nothing_of_its_own(pipeline, monkeypatch):
    calls = []
    unet = pipeline.unet.forward
    monkeypatch.setattr(pipeline.unet, "forward", lambda *args, **kwargs: calls.append(1) or unet(*args, **kwargs))
    output = pipeline(colour_image(32, 32), num_inference_steps=2, strength=0.5, generator=generators(0, 1, 2),
                      num_images_per_prompt=3, sample_spread=["prior:1", "0.75:1", "mean:1"], return_intermediates=True,
                      output_type="pt")
    assert len(calls) == 3  # the prior's pass, the lead-in and its pass: none for the mean
    torch.testing.assert_close(output.intermediates[-1], output.images)


def test_numeric_starts_are_strengths_in_text_and_json():
    assert check_sample_spread(["0.75:0.7", [0.9, 1.25], ("noise", 1), "mean:0.7"]) == [
        (0.75, 0.7), (0.9, 1.25), ("noise", 1.0), ("mean", 0.7)]


@pytest.mark.parametrize("spread, message", [
    ([], "at least one"),
    (["sky:1"], "start 'prior', 'noise', 'mean' or a strength"),
    (["0:1"], "start 'prior', 'noise', 'mean' or a strength"),
    (["1.5:1"], "start 'prior', 'noise', 'mean' or a strength"),
    (["noise:-1"], "finite numbers >= 0"),
    (["noise:vivid"], "finite numbers >= 0"),
    ([("prior", 1.0, 2.0)], "start 'prior', 'noise', 'mean' or a strength"),
    ([1.0], "start 'prior', 'noise', 'mean' or a strength"),
    (["mean:1", "prior:1"], "first pair must draw a sample"),
    (["prior"], "start 'prior', 'noise', 'mean' or a strength"),
])
def test_a_bad_spread_is_one_line(pipeline, spread, message):
    with pytest.raises(ValueError, match=message):
        check_sample_spread(spread)
    with pytest.raises(ValueError, match=message):
        pipeline(colour_image(16, 16), num_inference_steps=2, sample_spread=spread)
