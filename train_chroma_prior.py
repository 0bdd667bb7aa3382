#!/usr/bin/env python
"""Train a `ChromaPrior` for a saved ColorizationPipeline and save the pipeline with it (predict-and-refine).

    python train_chroma_prior.py --pretrained_model_name_or_path models/flowers \\
        --train_data_dir outputs/data/train.txt --output_dir outputs/flowers-prior

The prior predicts a photo's chroma from the pipeline's frozen image-encoder maps; the pipeline then starts
sampling from it, noised to ``strength``, instead of from pure noise (see colorize/chroma_prior.py). Only the
small head is trained: the encoder maps of every photo are computed once, then a few epochs with random horizontal
flips, fitting either each cell's histogram over ab bins (``--bins_per_axis`` Q > 0, soft cross-entropy; decoded by
the annealed mean at ``--temperature``) or, with ``--bins_per_axis 0``, each photo's ab averaged to the map's cells
(mean squared error). The UNet is untouched. Photos come from the same sources as `train_colorization.py`'s
(folders, list files, parquet / webdataset shards, Hub datasets: `colorize.training.sources`), its options have
the same names, a mistake stops it in one line (exit status 2) before anything is written, and it leaves a budget
record in ``--output_dir/budget`` beside the starting pipeline's.
"""

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from colorize import ColorizationPipeline
from colorize.chroma_prior import ChromaPrior, bin_targets
from colorize.color import rgb_to_lab
from colorize.image_io import open_image, pil_to_tensor
from colorize.training import config
from colorize.training.budget import BudgetLog, describe_hardware
from colorize.training.starting_point import load_saved_pipeline
from colorize.training.sources import IMAGE_COLUMN, load_training_photos

SCRIPT = "train_chroma_prior.py"


def parse_args(argv=None):
    return config.parse_args(config.prior_parser(__doc__.split("\n\n")[0]), argv, SCRIPT, launcher="python")


def load_pipeline(args) -> ColorizationPipeline:
    pipeline = load_saved_pipeline(args)
    if pipeline.image_encoder is None:
        raise ValueError("the pipeline has no image encoder: the prior predicts from its maps")
    return pipeline


def encode_photos(pipeline: ColorizationPipeline, dataset, device, bins_per_axis: int) -> tuple[list, list]:
    """(stacked encoder maps, targets): for every photo its backbone maps stacked (`BackboneMaps.stacked`; fp16, on
    the CPU) and its target on the map's cells: with bins, each cell's histogram over them (fp16); else its ab in the
    UNet's space averaged to the cells."""
    maps, targets = [], []
    for value in tqdm(dataset[IMAGE_COLUMN], desc="Encoding photos", unit="photo"):
        lightness, ab = rgb_to_lab(pil_to_tensor(open_image(value))[None])
        stacked = pipeline.image_encoder.backbone_maps(lightness.to(device)).stacked()[0]
        maps.append(stacked.to("cpu", torch.float16))
        if bins_per_axis:
            targets.append(bin_targets(ab, stacked.shape[-2:], bins_per_axis)[0].half())
        else:
            targets.append(F.adaptive_avg_pool2d(ab, stacked.shape[-2:])[0] * pipeline.config.chroma_scale)
    return maps, targets


def prior_loss(output: torch.Tensor, target: torch.Tensor, bins_per_axis: int) -> torch.Tensor:
    """Soft cross-entropy of the bin logits to the cells' histograms, or mean squared error of the regressed ab."""
    if bins_per_axis:
        return -(target * F.log_softmax(output, dim=1)).sum(dim=1).mean()
    return F.mse_loss(output, target)


def train_prior(prior: ChromaPrior, maps: list, targets: list, args) -> tuple[float, int]:
    """Fit ``prior`` to the targets (photos batched with others of their map size): (the last epoch's mean loss,
    optimiser steps)."""
    generator = torch.Generator().manual_seed(args.seed)
    by_shape = {}
    for index, stacked in enumerate(maps):
        by_shape.setdefault(tuple(stacked.shape), []).append(index)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay)
    prior.train()
    steps = 0
    progress = tqdm(range(args.num_epochs), desc="Epochs")
    for _ in progress:
        total, count = 0.0, 0
        for indices in by_shape.values():
            order = [indices[i] for i in torch.randperm(len(indices), generator=generator)]
            for start in range(0, len(order), args.train_batch_size):
                batch = order[start : start + args.train_batch_size]
                inputs = torch.stack([maps[i] for i in batch]).to(args.device, torch.float32)
                target = torch.stack([targets[i] for i in batch]).to(args.device, torch.float32)
                if args.random_flip and torch.rand((), generator=generator) < 0.5:
                    inputs, target = inputs.flip(-1), target.flip(-1)
                loss = prior_loss(prior.regress(inputs), target, args.bins_per_axis)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
                total, count = total + loss.item() * len(batch), count + len(batch)
        progress.set_postfix(loss=f"{total / count:.4f}")
    prior.eval()
    return total / count, steps


def main(args):
    try:
        config.check_start(args, output_must_be_empty=True)
        pipeline = load_pipeline(args)
        photos = load_training_photos(args)
    except ValueError as error:
        config.exit_on_mistake(SCRIPT, error)
    budget = BudgetLog(args.output_dir, args.training_command, describe_hardware(args.device), "no", 0,
                       args.train_batch_size)
    pipeline.image_encoder.to(args.device)
    maps, targets = encode_photos(pipeline, photos, args.device, args.bins_per_axis)
    torch.manual_seed(args.seed)
    prior = ChromaPrior(gain=args.gain, strength=args.strength, bins_per_axis=args.bins_per_axis,
                        temperature=args.temperature, chroma_scale=pipeline.config.chroma_scale).to(args.device)
    loss, steps = train_prior(prior, maps, targets, args)
    pipeline.register_modules(chroma_prior=prior.to("cpu"))
    pipeline.to("cpu").save_pretrained(args.output_dir, safe_serialization=True)
    pretrained_budget = Path(args.pretrained_model_name_or_path, "budget")
    if pretrained_budget.is_dir():  # the UNet's runs stay on the record of the pipeline that ships them
        shutil.copytree(pretrained_budget, Path(args.output_dir, "budget"), dirs_exist_ok=True)
    budget.write(steps, images_seen=len(maps) * args.num_epochs)
    print(f"final loss {loss:.4f}; saved the pipeline with its chroma prior to {args.output_dir}")


if __name__ == "__main__":
    main(parse_args())
