"""Colour detail from the lightness: `ColorizationPipeline.transfer_detail` (the call, the config and publishing it:
test_chroma_finish.py)."""

import torch
import torch.nn.functional as F

from colorize import ColorizationPipeline


def stripes(height=24, width=32, period=4):
    """Normalised lightness with fine vertical stripes (finer than the transfer's blur) on a left-to-right ramp."""
    columns = torch.arange(width, dtype=torch.float32)
    ramp = columns / width - 0.5
    fine = 0.2 * torch.sign(torch.sin(2 * torch.pi * columns / period))
    return (ramp + fine).expand(1, 1, height, width).clone()


def test_transfer_detail_carries_the_lightness_fine_detail_along_the_chroma_s_local_slope():
    lightness = stripes()
    coarse = F.avg_pool2d(F.pad(lightness, (4, 4, 0, 0), mode="replicate"), (1, 9), stride=1)  # the ramp, smooth
    chroma = torch.cat([0.5 * coarse, -0.25 * coarse])  # a rises with the lightness, b falls at half the rate
    chroma = chroma.view(1, 2, 24, 32)
    assert ColorizationPipeline.transfer_detail(chroma, 0.0, lightness) is chroma
    detailed = ColorizationPipeline.transfer_detail(chroma, 1.0, lightness)
    added = (detailed - chroma)[..., 6:-6]  # away from the borders
    fine = (lightness - coarse)[..., 6:-6]
    assert added.abs().max() > 0.02  # the stripes now show in the colours...
    assert (added[:, 0] * fine[:, 0]).sum() > 0 > (added[:, 1] * fine[:, 0]).sum()  # ...in the direction of the slope
    assert torch.corrcoef(torch.stack([added[0, 0].flatten(), fine[0, 0].flatten()]))[0, 1] > 0.8


def test_transfer_detail_adds_nothing_where_the_chroma_does_not_follow_the_lightness_or_a_hint_pulls():
    lightness = stripes()
    flat_colour = torch.full((1, 2, 24, 32), 0.3)
    assert torch.allclose(ColorizationPipeline.transfer_detail(flat_colour, 1.0, lightness), flat_colour, atol=1e-5)
    chroma = torch.zeros(1, 2, 24, 32)
    chroma[..., 16:] = 0.3
    flat_lightness = torch.zeros(1, 1, 24, 32)
    assert torch.equal(ColorizationPipeline.transfer_detail(chroma, 1.0, flat_lightness), chroma)
    hinted = torch.zeros(1, 1, 24, 32)
    hinted[..., 10:20] = 1.0
    kept = ColorizationPipeline.transfer_detail(chroma, 1.0, lightness, hinted)
    assert torch.equal(kept[..., 10:20], chroma[..., 10:20])

