"""The unsharp mask on the sampled chroma: `ColorizationPipeline.sharpen` (the call, the config and publishing it:
test_chroma_finish.py)."""

import torch

from colorize import ColorizationPipeline


def test_sharpen_amplifies_edges_where_the_lightness_has_one_and_leaves_flat_colour_and_hinted_pixels_alone():
    chroma = torch.zeros(1, 2, 12, 16)
    chroma[..., 8:] = 0.3  # a step in a and b halfway across
    lightness = torch.zeros(1, 1, 12, 16)
    lightness[..., 8:] = 0.5  # the photo's edge in the same place
    assert ColorizationPipeline.sharpen(chroma, 0.0, lightness) is chroma
    sharp = ColorizationPipeline.sharpen(chroma, 1.0, lightness)
    assert sharp[..., 7].max() < -0.01 and sharp[..., 8].min() > 0.31  # both sides of the edge pushed apart
    assert torch.allclose(sharp[..., :4], chroma[..., :4], atol=1e-4)  # far from it, flat colour unchanged
    assert torch.allclose(sharp[..., 12:], chroma[..., 12:], atol=1e-4)
    flat = ColorizationPipeline.sharpen(chroma, 1.0, torch.zeros(1, 1, 12, 16))  # a colour step on flat lightness
    assert torch.equal(flat, chroma)
    hinted = torch.zeros(1, 1, 12, 16)
    hinted[..., 6:10] = 1.0
    assert torch.equal(ColorizationPipeline.sharpen(chroma, 1.0, lightness, hinted)[..., 6:10], chroma[..., 6:10])

