import pytest
import torch

from colorize.color import rgb_to_lab
from colorize.modeling import PRESETS, build_noise_scheduler, build_unet, downsample_factor
from colorize.training.loss import diffusion_loss, timestep_weights


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


def test_timestep_weights_bias_the_chosen_timesteps_as_diffusers_options_do():
    assert timestep_weights(1000) is None and timestep_weights(1000, "later", multiplier=1.0) is None  # uniform
    later = timestep_weights(1000, "later", multiplier=3.0, portion=0.3)
    assert later.sum().item() == pytest.approx(1.0)
    assert torch.allclose(later[700:], 3 * later[0]) and torch.allclose(later[:700], later[0])
    earlier = timestep_weights(1000, "earlier", multiplier=0.5, portion=0.1)  # below 1: drawn less often
    assert torch.allclose(earlier[:100], 0.5 * earlier[-1]) and torch.allclose(earlier[100:], earlier[-1])
    chosen = timestep_weights(1000, "range", multiplier=2.0, begin=200, end=400)
    assert torch.allclose(chosen[200:400], 2 * chosen[0]) and torch.allclose(chosen[400:], chosen[0])
    for mistake in ({"strategy": "sooner"}, {"strategy": "later", "multiplier": 0.0},
                    {"strategy": "later", "multiplier": 2.0, "portion": 1.0},
                    {"strategy": "range", "multiplier": 2.0, "begin": 500, "end": 1001},
                    {"strategy": "range", "begin": 500, "end": 1001}):  # wrong even where it would change nothing
        with pytest.raises(ValueError):
            timestep_weights(1000, **mistake)


def test_diffusion_loss_draws_timesteps_with_the_given_weights():
    scheduler = build_noise_scheduler(4.4)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, model_input, timesteps, class_labels=None):
            seen.append(timesteps)
            return type("Output", (), {"sample": torch.zeros_like(model_input[:, 1:3])})()

    weights = torch.zeros(1000)
    weights[900:] = 1.0
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        diffusion_loss(Recorder(), scheduler, torch.rand(8, 3, 8, 8), 4.4, generator=generator, timestep_weights=weights)
    drawn = torch.cat(seen)
    assert drawn.min() >= 900 and len(drawn.unique()) > 50  # only the weighted ones, spread over them
    later = timestep_weights(1000, "later", multiplier=3.0, portion=0.3)
    seen.clear()
    for _ in range(50):
        diffusion_loss(Recorder(), scheduler, torch.rand(64, 3, 4, 4), 4.4, generator=generator, timestep_weights=later)
    share = (torch.cat(seen) >= 700).float().mean().item()
    assert abs(share - 0.9 / 1.6) < 0.04  # 0.3 * 3 / (0.7 + 0.3 * 3)
