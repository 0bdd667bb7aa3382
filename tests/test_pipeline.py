import numpy as np
import pytest
import torch
from conftest import colour_image, make_tiny_pipeline
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from colorize import ColorizationPipeline, ColorizationPipelineOutput
from colorize.color import rgb_to_gray, rgb_to_lab
from colorize.image_io import pil_to_tensor
from colorize.schedulers import scheduler_from_name


def run(pipeline, image, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 3)
    return pipeline(image, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_output_has_the_input_size_for_odd_sizes(tiny_pipeline):
    images = [colour_image(97, 131), colour_image(131, 97), colour_image(1, 1), colour_image(300, 20)]
    output = run(tiny_pipeline, images)
    assert isinstance(output, ColorizationPipelineOutput)
    assert [image.size for image in output.images] == [(97, 131), (131, 97), (1, 1), (300, 20)]
    assert all(image.mode == "RGB" for image in output.images)


def test_single_image_in_single_image_out(tiny_pipeline):
    output = run(tiny_pipeline, colour_image(33, 21), output_type="np")
    assert output.images.shape == (1, 21, 33, 3)
    assert output.images.min() >= 0 and output.images.max() <= 1


def test_lightness_of_the_input_is_preserved(tiny_pipeline):
    image = colour_image(97, 131)
    result = run(tiny_pipeline, image, output_type="pt").images
    input_lightness, _ = rgb_to_lab(pil_to_tensor(image)[None])
    output_lightness, output_chroma = rgb_to_lab(result)
    difference = (output_lightness - input_lightness).abs() * 50  # in L units (0..100)
    assert difference.mean() < 1.0 and torch.quantile(difference.flatten(), 0.95) < 3.0
    assert output_chroma.abs().max() > 0.01  # it did add colour


def test_colour_and_gray_inputs_give_the_same_result(tiny_pipeline):
    image = colour_image(40, 30)
    gray = rgb_to_gray(pil_to_tensor(image))  # the same CIE L, no chroma
    from_colour = run(tiny_pipeline, image, output_type="np").images
    from_gray = run(tiny_pipeline, gray, output_type="np").images
    np.testing.assert_allclose(from_colour, from_gray, atol=1e-3)


def test_same_generator_same_output_and_other_seed_differs(tiny_pipeline):
    image = colour_image(50, 40)
    first = run(tiny_pipeline, image, seed=7, output_type="np").images
    second = run(tiny_pipeline, image, seed=7, output_type="np").images
    other = run(tiny_pipeline, image, seed=8, output_type="np").images
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 1e-3


def test_numpy_and_tensor_inputs_match_pil(tiny_pipeline):
    image = colour_image(24, 20)
    from_pil = run(tiny_pipeline, image, output_type="np").images
    array = np.asarray(image)
    from_uint8 = run(tiny_pipeline, array, output_type="np").images
    from_tensor = run(tiny_pipeline, torch.from_numpy(array / 255.0).permute(2, 0, 1), output_type="np").images
    np.testing.assert_allclose(from_pil, from_uint8, atol=1e-5)
    np.testing.assert_allclose(from_pil, from_tensor, atol=1e-5)


@pytest.mark.parametrize("scheduler_class", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_scheduler_swap(tiny_pipeline, scheduler_class):
    tiny_pipeline.scheduler = scheduler_class.from_config(tiny_pipeline.scheduler.config)
    image = colour_image(30, 20)
    first = run(tiny_pipeline, image, num_inference_steps=4, output_type="np").images
    again = run(tiny_pipeline, image, num_inference_steps=4, output_type="np").images
    assert first.shape == (1, 20, 30, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)


def test_scheduler_from_name():
    pipeline = make_tiny_pipeline()
    assert isinstance(scheduler_from_name("dpm", pipeline.scheduler.config), DPMSolverMultistepScheduler)
    assert scheduler_from_name("dpm", pipeline.scheduler.config).config.algorithm_type == "dpmsolver++"
    with pytest.raises(ValueError, match="Unknown scheduler"):
        scheduler_from_name("euler", pipeline.scheduler.config)


def test_num_images_per_prompt_gives_different_samples_in_input_order(tiny_pipeline):
    images = [colour_image(20, 30), colour_image(30, 20)]
    output = run(tiny_pipeline, images, num_images_per_prompt=2, output_type="np")
    assert [a.shape for a in output.images] == [(30, 20, 3), (30, 20, 3), (20, 30, 3), (20, 30, 3)]
    assert np.abs(output.images[0] - output.images[1]).max() > 1e-3


def test_generator_list_makes_each_output_reproducible_alone(tiny_pipeline):
    images = [colour_image(20, 20), colour_image(20, 20, rgb=(10, 20, 200))]
    generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    together = tiny_pipeline(images, num_inference_steps=3, generator=generators, output_type="np").images
    alone = tiny_pipeline(images[1], num_inference_steps=3, generator=[torch.Generator().manual_seed(2)], output_type="np").images
    np.testing.assert_allclose(together[1], alone[0], atol=1e-6)
    with pytest.raises(ValueError, match="generators"):
        tiny_pipeline(images, generator=generators[:1])


def test_output_types_and_tuple_return(tiny_pipeline):
    image = colour_image(20, 16)
    as_tensor = run(tiny_pipeline, image, output_type="pt").images
    assert as_tensor.shape == (1, 3, 16, 20)
    images, intermediates = run(tiny_pipeline, image, return_dict=False)
    assert images[0].size == (20, 16) and intermediates is None
    with pytest.raises(ValueError, match="output_type"):
        run(tiny_pipeline, image, output_type="latent")
    with pytest.raises(TypeError, match="PIL image"):
        run(tiny_pipeline, "not-an-image.jpg")


def test_intermediates_show_every_step_at_full_size(tiny_pipeline):
    output = run(tiny_pipeline, colour_image(45, 35), num_inference_steps=5, return_intermediates=True)
    assert len(output.intermediates) == 5
    assert all(step[0].size == (45, 35) for step in output.intermediates)
    np.testing.assert_array_equal(np.asarray(output.intermediates[-1][0]), np.asarray(output.images[0]))
    fewer = run(tiny_pipeline, colour_image(45, 35), num_inference_steps=5, return_intermediates=True, num_intermediates=3)
    assert len(fewer.intermediates) == 3  # steps 0, 2 and 4 (the last)
    for kept, step in zip(fewer.intermediates, (0, 2, 4)):
        np.testing.assert_array_equal(np.asarray(kept[0]), np.asarray(output.intermediates[step][0]))


def test_callback_on_step_end_sees_and_can_replace_latents(tiny_pipeline):
    seen = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        seen.append((step_index, int(timestep), callback_kwargs["latents"].shape))
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    output = run(tiny_pipeline, colour_image(16, 16), num_inference_steps=3, output_type="pt",
                 callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][2] == (1, 2, 16, 16)
    _, chroma = rgb_to_lab(output.images)
    assert chroma.abs().max() < 0.01  # zeroed latents -> gray output
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        run(tiny_pipeline, colour_image(16, 16), callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_working_size_keeps_aspect_and_unet_multiples(tiny_pipeline):
    assert tiny_pipeline.model_size_for(131, 97) == (22, 16)
    assert tiny_pipeline.model_size_for(16, 16) == (16, 16)
    assert tiny_pipeline.model_size_for(10, 10_000) == (16, 64)  # panoramas capped at 4:1
    assert tiny_pipeline.model_size_for(131, 97, working_size=31) == (42, 32)  # sides rounded to the multiple (2)


def test_working_size_sets_the_denoised_grid_defaults_to_the_models_and_is_saved(tiny_pipeline, tmp_path):
    shapes = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        shapes.append(tuple(callback_kwargs["latents"].shape[-2:]))
        return {}

    image = colour_image(60, 40)  # width 60, height 40
    assert tiny_pipeline.config.working_size is None  # made without one: the UNet's sample_size (16)
    run(tiny_pipeline, image, num_inference_steps=1, callback_on_step_end=callback)
    output = run(tiny_pipeline, image, num_inference_steps=1, callback_on_step_end=callback, working_size=32, output_type="np")
    assert shapes == [(16, 24), (32, 48)] and output.images.shape == (1, 40, 60, 3)  # the input's own size either way
    for bad in (4, 24.5, float("inf"), "32", True):
        with pytest.raises(ValueError, match="working_size must be a whole number of pixels >= 8"):
            run(tiny_pipeline, image, working_size=bad)
    tiny_pipeline.register_to_config(working_size=32)
    try:
        tiny_pipeline.save_pretrained(tmp_path)
    finally:
        tiny_pipeline.register_to_config(working_size=None)
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.working_size == 32
    np.testing.assert_array_equal(run(loaded, image, output_type="np").images, run(loaded, image, output_type="np", working_size=32).images)
    np.testing.assert_allclose(run(loaded, image, output_type="np", working_size=16).images,  # loaded weights: float
                               run(tiny_pipeline, image, output_type="np").images, atol=1e-5)  # rounding only


def test_save_and_load_round_trip_gives_identical_outputs(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").exists()
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (tmp_path / "scheduler" / "scheduler_config.json").exists()
    assert not list(tmp_path.rglob("*.bin"))  # no pickles
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.chroma_scale == tiny_pipeline.config.chroma_scale
    assert loaded.scheduler.config.clip_sample_range == tiny_pipeline.scheduler.config.clip_sample_range
    for name, tensor in tiny_pipeline.unet.state_dict().items():
        assert torch.equal(tensor, loaded.unet.state_dict()[name]), name
    image = colour_image(37, 29)
    # Same weights, same arithmetic; only the float rounding of SIMD kernels may differ (~1e-7), as
    # safetensors' memory-mapped tensors are not aligned like freshly allocated ones.
    np.testing.assert_allclose(
        run(tiny_pipeline, image, output_type="np").images, run(loaded, image, output_type="np").images, atol=1e-5
    )
    reloaded = ColorizationPipeline.from_pretrained(tmp_path)
    np.testing.assert_array_equal(run(loaded, image, output_type="np").images, run(reloaded, image, output_type="np").images)


def test_saturation_scales_the_chroma_keeps_lightness_and_defaults_to_the_models_calibrated_value(tiny_pipeline, tmp_path):
    image = colour_image(40, 30)
    base = run(tiny_pipeline, image, output_type="pt").images
    assert torch.equal(run(tiny_pipeline, image, output_type="pt", saturation=1.0).images, base)
    base_lightness, base_chroma = rgb_to_lab(base)
    half_lightness, half_chroma = rgb_to_lab(run(tiny_pipeline, image, output_type="pt", saturation=0.5).images)
    torch.testing.assert_close(half_lightness, base_lightness, atol=2e-3, rtol=0)
    # Same hues, less chroma (not exactly half: the untrained model's chroma leaves the gamut, where it is cut).
    coloured = base_chroma.norm(dim=1) > 0.05
    assert torch.cosine_similarity(half_chroma, base_chroma, dim=1)[coloured].min() > 0.99
    assert half_chroma.norm(dim=1).mean() < 0.8 * base_chroma.norm(dim=1).mean()
    assert rgb_to_lab(run(tiny_pipeline, image, output_type="pt", saturation=0).images)[1].abs().max() < 2e-3  # gray
    with pytest.raises(ValueError, match="saturation must be a finite number >= 0"):
        run(tiny_pipeline, image, saturation=-1)

    assert tiny_pipeline.config.saturation == 1.0  # a pipeline made without one: colours as sampled
    tiny_pipeline.register_to_config(saturation=0.5)
    try:
        tiny_pipeline.save_pretrained(tmp_path)
    finally:
        tiny_pipeline.register_to_config(saturation=1.0)
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.saturation == 0.5
    torch.testing.assert_close(rgb_to_lab(run(loaded, image, output_type="pt").images)[1], half_chroma, atol=1e-4, rtol=0)


def test_saturate_multiplies_the_chroma_and_fades_out_towards_hints():
    chroma = torch.randn(2, 2, 4, 5)
    torch.testing.assert_close(ColorizationPipeline.saturate(chroma, 1.5), chroma * 1.5)
    assert ColorizationPipeline.saturate(chroma, 1.0) is chroma
    weight = torch.zeros(2, 1, 4, 5)
    weight[:, :, 0, 0], weight[:, :, 1, 1] = 1.0, 0.5
    saturated = ColorizationPipeline.saturate(chroma, 2.0, weight)
    torch.testing.assert_close(saturated[..., 0, 0], chroma[..., 0, 0])  # a hint's own pixel keeps its colour
    torch.testing.assert_close(saturated[..., 1, 1], chroma[..., 1, 1] * 1.5)
    torch.testing.assert_close(saturated[..., 3, 4], chroma[..., 3, 4] * 2.0)


def test_pipelines_saved_before_saturation_existed_load_with_gain_one(tiny_pipeline, tmp_path):
    import json
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    del index["saturation"], index["working_size"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    assert loaded.config.saturation == 1.0 and loaded.config.working_size is None
