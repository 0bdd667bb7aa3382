"""Guidance distillation: the training target is the pipeline's own guided prediction, and a distilled pipeline
runs one UNet pass a step at its scale and guides relative to it at any other."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_pipeline, run_script, script_error

from colorize import ColorizationPipeline, VideoColorizationPipeline
from colorize.image_encoder import ImageEncoder
from colorize.modeling import add_class_embedding, add_feature_channels, time_embedding_dim
from colorize.training.loss import guidance_distillation_loss, guided_prediction, project_features

SIZE, CHANNELS = 16, 4


def make_teacher(pooled: bool) -> ColorizationPipeline:
    """A tiny pipeline with an image encoder whose features matter (random first-layer weights and projection
    biases: the conditional and unconditional predictions differ)."""
    base = make_tiny_pipeline(seed=3, resolution=SIZE)
    encoder = ImageEncoder.from_imagenet(projection_channels=CHANNELS)
    unet = add_feature_channels(base.unet, CHANNELS)
    if pooled:
        unet = add_class_embedding(unet)
        encoder.add_pooled_projection(time_embedding_dim(unet))
    torch.manual_seed(4)
    with torch.no_grad():
        unet.conv_in.weight.normal_(std=0.2)
        encoder.projection.bias.normal_()
        if pooled:
            encoder.pooled_projection.weight.normal_(std=0.05)
    pipeline = ColorizationPipeline(unet=unet.eval(), scheduler=base.scheduler, image_encoder=encoder.eval(),
                                    chroma_scale=4.4)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def training_batch(count: int = 3) -> dict:
    """What the training loader gives: RGB crops, the photos' cached backbone maps, their means and the crops'
    places on the maps."""
    generator = torch.Generator().manual_seed(5)
    features = torch.rand(count, 1280, 2, 3, generator=generator)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(count, 2, 3)
    return {
        "pixel_values": torch.rand(count, 3, SIZE, SIZE, generator=generator),
        "features": features,
        "pooled_features": features.mean(dim=(2, 3)),
        "feature_grid": F.affine_grid(identity, [count, 1, SIZE, SIZE], align_corners=False),
    }


@pytest.mark.parametrize("pooled", [False, True])
def test_the_target_is_the_pipelines_guided_prediction_and_hidden_features_learn_the_unguided_one(pooled):
    teacher = make_teacher(pooled)
    batch = training_batch()
    features, embeds = project_features(teacher.image_encoder, batch)
    generator = torch.Generator().manual_seed(6)
    lightness, noisy = torch.rand(3, 1, SIZE, SIZE, generator=generator), torch.randn(3, 2, SIZE, SIZE, generator=generator)
    step = torch.tensor(600)
    with torch.no_grad():
        expected = teacher.predict(lightness, noisy, step, features, embeds, 2.0)
        target = guided_prediction(teacher.unet, teacher.image_encoder, batch, lightness, noisy, step.repeat(3), 2.0, None)
        torch.testing.assert_close(target, expected, rtol=0, atol=1e-5)
        assert (expected - teacher.predict(lightness, noisy, step, features, embeds, 1.0)).abs().max() > 1e-3

        def loss(scale, keep=None):
            student_features, student_embeds = project_features(teacher.image_encoder, batch, keep)
            return guidance_distillation_loss(
                teacher.unet, teacher, teacher.scheduler, batch, 4.4, student_features, scale, image_embeds=student_embeds,
                keep=keep, generator=torch.Generator().manual_seed(7),
            ).item()

        # The teacher itself is its own student at scale 1 (its conditional output), and wherever its features are
        # hidden (its unconditional output, at any scale); not at scale 2.
        assert loss(1.0) < 1e-12
        assert loss(2.0, keep=torch.zeros(3, dtype=torch.bool)) < 1e-12
        assert loss(2.0) > 1e-5


def test_a_distilled_pipeline_runs_one_pass_at_its_scale_and_guides_relative_to_it_otherwise(tmp_path):
    plain = make_teacher(pooled=False)
    plain.save_pretrained(tmp_path / "plain")
    distilled = ColorizationPipeline.from_pretrained(tmp_path / "plain")
    distilled.register_to_config(distilled_guidance_scale=2.0)
    distilled.save_pretrained(tmp_path / "distilled")
    distilled = ColorizationPipeline.from_pretrained(tmp_path / "distilled")
    assert distilled.config.distilled_guidance_scale == 2.0 and plain.config.distilled_guidance_scale is None
    assert VideoColorizationPipeline.from_pipe(distilled).one_pass_guidance_scale == 2.0
    assert plain.one_pass_guidance_scale == 1.0

    batch_sizes = []
    distilled.unet.register_forward_hook(lambda module, args, output: batch_sizes.append(args[0].shape[0]))
    batch = training_batch(2)
    features, _ = project_features(distilled.image_encoder, batch)
    lightness, noisy, step = torch.rand(2, 1, SIZE, SIZE), torch.randn(2, 2, SIZE, SIZE), torch.tensor(400)
    with torch.no_grad():
        conditional = plain.predict(lightness, noisy, step, features, None, 1.0)
        unconditional = plain.predict(lightness, noisy, step, features, None, 0.0)
        batch_sizes.clear()
        torch.testing.assert_close(distilled.predict(lightness, noisy, step, features, None, 2.0), conditional)
        assert batch_sizes == [2]  # one pass, no unconditional half
        for scale in (4.0, 1.0, 0.0):  # the UNet's own outputs at 2 and 0, extrapolated: scale / 2 of the way
            expected = unconditional + scale / 2 * (conditional - unconditional)
            torch.testing.assert_close(distilled.predict(lightness, noisy, step, features, None, scale), expected,
                                       rtol=0, atol=1e-5)


def test_distilling_needs_a_pretrained_pipeline_with_an_image_encoder(tmp_path, image_folder, capsys):
    make_tiny_pipeline().save_pretrained(tmp_path / "no-encoder")
    for model, expected in ((None, "needs --pretrained_model_name_or_path"), (tmp_path / "no-encoder", "has no image encoder")):
        pretrained = [] if model is None else ["--pretrained_model_name_or_path", model]
        error = script_error(capsys, "train_colorization.py", "--train_data_dir", image_folder, "--output_dir",
                             tmp_path / "run", *pretrained, "--distill_guidance_scale", "2", "--max_train_steps", "1")
        assert expected in error
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_distillation_run_saves_a_pipeline_that_records_its_scale(tmp_path, image_folder):
    from accelerate.state import AcceleratorState

    make_teacher(pooled=False).save_pretrained(tmp_path / "teacher")
    try:
        run_script(
            "train_colorization.py", "--train_data_dir", image_folder, "--output_dir", tmp_path / "student",
            "--pretrained_model_name_or_path", tmp_path / "teacher", "--distill_guidance_scale", "2",
            "--train_batch_size", "4", "--max_train_steps", "2", "--lr_warmup_steps", "0", "--validation_steps", "0",
            "--checkpointing_steps", "100", "--seed", "0",
        )
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert json.loads((tmp_path / "student" / "model_index.json").read_text())["distilled_guidance_scale"] == 2.0
    student = ColorizationPipeline.from_pretrained(tmp_path / "student")
    teacher = ColorizationPipeline.from_pretrained(tmp_path / "teacher")
    moved = max((student.unet.state_dict()[name] - weight).abs().max().item()
                for name, weight in teacher.unet.state_dict().items())
    assert 0 < moved < 0.01  # two small steps from the teacher's weights
