import pytest
import torch

from colorize.color import rgb_to_lab
from colorize.modeling import PRESETS, build_noise_scheduler, build_unet, downsample_factor
from colorize.training import diffusion_loss


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_take_lightness_plus_chroma_and_predict_chroma(preset):
    unet = build_unet(preset, resolution=32)
    assert unet.config.in_channels == 3 and unet.config.out_channels == 2
    assert unet.config.sample_size == 32
    if preset == "tiny":
        out = unet(torch.randn(2, 3, 16, 24), torch.tensor([1, 500])).sample
        assert out.shape == (2, 2, 16, 24)


def test_presets_grow_in_size():
    sizes = [sum(p.numel() for p in build_unet(name).parameters()) for name in ("tiny", "small", "base")]
    assert sizes == sorted(sizes) and sizes[0] < 1e6 < sizes[1] < sizes[2]


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown model preset 'huge'"):
        build_unet("huge")


def test_downsample_factor_matches_the_unet_depth():
    assert downsample_factor(build_unet("tiny")) == 2
    assert downsample_factor(build_unet("small")) == 8


def test_noise_scheduler_defaults_and_overrides():
    scheduler = build_noise_scheduler(4.4)
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert scheduler.config.clip_sample_range == 4.4 and scheduler.config.timestep_spacing == "trailing"
    assert scheduler.config.prediction_type == "v_prediction"
    base = dict(scheduler.config, beta_schedule="linear", prediction_type="epsilon")
    tuned = build_noise_scheduler(2.0, base, prediction_type=None, num_train_timesteps=500)
    assert tuned.config.beta_schedule == "linear"  # kept from the base config
    assert tuned.config.prediction_type == "epsilon"  # None does not override
    assert tuned.config.num_train_timesteps == 500 and tuned.config.clip_sample_range == 2.0


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusion_loss_scores_the_right_target(prediction_type):
    """An oracle UNet that recovers the true noise (or v) from its input scores ~0; one that answers zeros
    scores the power of a unit-variance target."""
    torch.manual_seed(0)
    scheduler = build_noise_scheduler(4.4, prediction_type=prediction_type)
    rgb = torch.rand(4, 3, 8, 8)
    lightness, chroma = rgb_to_lab(rgb)
    clean = chroma * 4.4

    class Oracle(torch.nn.Module):
        def __init__(self, exact):
            super().__init__()
            self.exact = exact

        def forward(self, model_input, timesteps, class_labels=None):
            assert torch.allclose(model_input[:, :1], lightness)  # L comes first, then the noisy ab
            alpha = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
            noise = (model_input[:, 1:] - alpha.sqrt() * clean) / (1 - alpha).sqrt()
            velocity = alpha.sqrt() * noise - (1 - alpha).sqrt() * clean
            target = noise if prediction_type == "epsilon" else velocity
            return type("Output", (), {"sample": target if self.exact else torch.zeros_like(target)})()

    assert diffusion_loss(Oracle(exact=True), scheduler, rgb, 4.4).item() < 1e-6
    assert 0.3 < diffusion_loss(Oracle(exact=False), scheduler, rgb, 4.4).item() < 3.0
