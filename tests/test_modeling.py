import pytest
import torch

from colorize.modeling import PRESETS, build_noise_scheduler, build_unet, downsample_factor


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
    base = dict(scheduler.config, beta_schedule="linear", prediction_type="v_prediction")
    tuned = build_noise_scheduler(2.0, base, prediction_type=None, num_train_timesteps=500)
    assert tuned.config.beta_schedule == "linear"  # kept from the base config
    assert tuned.config.prediction_type == "v_prediction"  # None does not override
    assert tuned.config.num_train_timesteps == 500 and tuned.config.clip_sample_range == 2.0
