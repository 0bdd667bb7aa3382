#!/usr/bin/env python
"""Train a `ChromaPrior` for a saved ColorizationPipeline and save the pipeline with it (predict-and-refine).

The prior predicts a photo's chroma from the pipeline's frozen image-encoder maps; the pipeline then starts
sampling from it, noised to ``strength``, instead of from pure noise (see colorize/chroma_prior.py). Only the
small head is trained: the encoder maps of every photo are computed once, then a few epochs with random horizontal
flips, fitting either each cell's histogram over ab bins (``--bins_per_axis`` Q > 0, soft cross-entropy; decoded by
the annealed mean at ``--temperature``) or, with ``--bins_per_axis 0``, each photo's ab averaged to the map's cells
(mean squared error). The UNet is untouched.

    python train_chroma_prior.py --pretrained_model_name_or_path models/flowers \\
        --train_data_dir outputs/data/train.txt --output_dir outputs/flowers-prior
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from colorize import ColorizationPipeline
from colorize.chroma_prior import ChromaPrior, bin_targets
from colorize.color import rgb_to_lab
from colorize.data import usable_image
from colorize.image_io import find_images, pil_to_tensor


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained_model_name_or_path", required=True,
                        help="The pipeline (local folder or Hub id) to add the prior to; it needs an image encoder.")
    parser.add_argument("--train_data_dir", required=True,
                        help="Colour photos: a folder (searched recursively) or a text file listing image paths.")
    parser.add_argument("--output_dir", required=True,
                        help="Where the pipeline with its prior is saved; must not exist yet or be empty.")
    parser.add_argument("--num_train_epochs", type=int, default=20)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--adam_weight_decay", type=float, default=1e-2)
    parser.add_argument("--random_flip", action=argparse.BooleanOptionalAction, default=True,
                        help="Random horizontal flips of maps and targets.")
    parser.add_argument("--bins_per_axis", type=int, default=0,
                        help="0: regress ab (mean squared error; the shipped flowers prior); Q > 0: predict each cell's "
                        "distribution over Q x Q ab bins, decoded by the annealed mean (20 measured: benchmarks/README.md).")
    parser.add_argument("--temperature", type=float, default=0.25,
                        help="Saved in the prior (with bins): the annealed mean's temperature, 1 the distribution's "
                        "mean, towards 0 its mode.")
    parser.add_argument("--gain", type=float, default=1.5,
                        help="Saved in the prior: its colours are multiplied by it (a mean of plausible colours is "
                        "paler than any of them; 1.5 for the regression, 1.35 measured for 20 bins at temperature 0.25).")
    parser.add_argument("--strength", type=float, default=0.8,
                        help="Saved in the prior: the pipeline's default strength (1: pure noise, the prior unused).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the head's initialisation, order and flips.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if not 0.0 <= args.strength <= 1.0:
        parser.error(f"--strength must be between 0 and 1, got {args.strength}")
    if args.num_train_epochs < 1 or args.train_batch_size < 1:
        parser.error("--num_train_epochs and --train_batch_size must be at least 1")
    if args.bins_per_axis < 0 or args.temperature <= 0:
        parser.error("--bins_per_axis must be at least 0 and --temperature above 0")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        parser.error(f"--output_dir {output_dir} exists and is not an empty folder: nothing is overwritten")
    return args


def encode_photos(pipeline: ColorizationPipeline, files: list, device, bins_per_axis: int) -> tuple[list, list, int]:
    """(stacked encoder maps, targets, photos skipped): for every usable photo its `stacked_features` (fp16, on the
    CPU) and its target on the map's cells: with bins, each cell's histogram over them (fp16); else its ab in the
    UNet's space averaged to the cells."""
    maps, targets, skipped = [], [], 0
    for file in tqdm(files, desc="Encoding photos", unit="photo"):
        image, problem = usable_image(str(file.path), str(file.path))
        if image is None:
            skipped += 1
            continue
        lightness, ab = rgb_to_lab(pil_to_tensor(image.convert("RGB"))[None])
        stacked = pipeline.image_encoder.stacked_features(lightness.to(device))[0]
        maps.append(stacked.to("cpu", torch.float16))
        if bins_per_axis:
            targets.append(bin_targets(ab, stacked.shape[-2:], bins_per_axis)[0].half())
        else:
            targets.append(F.adaptive_avg_pool2d(ab, stacked.shape[-2:])[0] * pipeline.config.chroma_scale)
    return maps, targets, skipped


def prior_loss(output: torch.Tensor, target: torch.Tensor, bins_per_axis: int) -> torch.Tensor:
    """Soft cross-entropy of the bin logits to the cells' histograms, or mean squared error of the regressed ab."""
    if bins_per_axis:
        return -(target * F.log_softmax(output, dim=1)).sum(dim=1).mean()
    return F.mse_loss(output, target)


def train_prior(prior: ChromaPrior, maps: list, targets: list, args) -> float:
    """Fit ``prior`` to the targets (photos batched with others of their map size); the last epoch's mean loss."""
    generator = torch.Generator().manual_seed(args.seed)
    by_shape = {}
    for index, stacked in enumerate(maps):
        by_shape.setdefault(tuple(stacked.shape), []).append(index)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay)
    prior.train()
    progress = tqdm(range(args.num_train_epochs), desc="Epochs")
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
                total, count = total + loss.item() * len(batch), count + len(batch)
        progress.set_postfix(loss=f"{total / count:.4f}")
    prior.eval()
    return total / count


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        pipeline = ColorizationPipeline.from_pretrained(args.pretrained_model_name_or_path, use_safetensors=True)
        files = find_images(args.train_data_dir)
    except (OSError, ValueError) as error:
        sys.exit(f"train_chroma_prior.py: error: {str(error).splitlines()[0]}")
    if pipeline.image_encoder is None:
        sys.exit("train_chroma_prior.py: error: the pipeline has no image encoder: the prior predicts from its maps.")
    pipeline.image_encoder.to(args.device)
    maps, targets, skipped = encode_photos(pipeline, files, args.device, args.bins_per_axis)
    if not maps:
        sys.exit(f"train_chroma_prior.py: error: no usable colour photo in {args.train_data_dir} ({skipped} skipped).")
    print(f"{len(maps)} photos, {skipped} skipped (gray or undecodable)")
    torch.manual_seed(args.seed)
    prior = ChromaPrior(gain=args.gain, strength=args.strength, bins_per_axis=args.bins_per_axis,
                        temperature=args.temperature, chroma_scale=pipeline.config.chroma_scale).to(args.device)
    loss = train_prior(prior, maps, targets, args)
    pipeline.register_modules(chroma_prior=prior.to("cpu"))
    pipeline.to("cpu").save_pretrained(args.output_dir, safe_serialization=True)
    print(f"final loss {loss:.4f}; saved the pipeline with its chroma prior to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
