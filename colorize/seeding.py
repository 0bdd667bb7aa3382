"""The one seeding rule of every command: sample k of every photo is drawn from ``seed + k``.

So ``colorize photo.jpg --seed S``, ``colorize evaluate`` at ``--seed S``, the web demo at seed S and
``pipe(photo, generator=torch.Generator().manual_seed(S))`` give the same colours for the same photo, whichever
other photos share its batch and wherever it stands in the list; ``--num-samples N`` adds the colourings of
seeds S + 1 ... S + N - 1.
"""

import torch


def sample_generators(seed: int, num_photos: int, num_samples: int = 1) -> list[torch.Generator]:
    """One CPU generator per output of a pipeline call on ``num_photos`` photos with ``num_images_per_prompt =
    num_samples``, in the pipeline's output order (the samples of photo 0, then of photo 1, ...): sample k of
    every photo seeded with ``seed + k``."""
    return [torch.Generator().manual_seed(seed + k) for _ in range(num_photos) for k in range(num_samples)]
