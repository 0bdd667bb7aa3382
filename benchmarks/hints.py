#!/usr/bin/env python
"""Colour hints: how much k hint points taken from the true photo help, and how well they are honoured.

    python benchmarks/hints.py --model models/flowers --data data/validation-half.txt \
        --counts 0 1 5 10 20 --output-dir outputs/bench-hints

For each photo, hint positions are drawn at random (seeded per photo, at least 2 px from the border) and
each hint's colour is the true photo's mean over the 5x5 patch around it, as in Zhang et al. 2017. Every
k uses the first k of the same positions and the same sampling seed, so k = 0 is the unhinted output.
Per k: PSNR and AuC against the truth, the chroma error at the hinted pixels (Lab units: the distance
between the output's ab there and the hint's), and the largest change of L (the photo's lightness must
stay). ``--methods`` compares the pipeline's edge-aware spreading with hints on their own pixel only
(``point``, spreading switched off). Writes hints.md / hints.json, hints.png (PSNR against k) and
grid.png (photos with their hints marked). Run it on an otherwise idle machine.
"""

import argparse
import contextlib
import json
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image, ImageDraw

from colorize import ColorizationPipeline
from colorize.color import AB_SCALE, rgb_to_lab
from colorize.hints import hint_chroma
from colorize.image_io import find_images, open_image, pil_to_tensor
from colorize.evaluation.metrics import auc, psnr
from colorize.visualize import make_grid

METHODS = {"spread": None, "point": 0.0}  # the hints' spreading decay: the default, or none


def hint_points(image: Image.Image, count: int, seed: int) -> list[tuple[int, int, tuple[float, float, float]]]:
    """``count`` hints from the true photo: random positions, each with its 5x5 patch's mean colour."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64)
    width, height = image.size
    points = []
    for _ in range(count):
        x, y = int(rng.integers(2, width - 2)), int(rng.integers(2, height - 2))
        points.append((x, y, tuple(pixels[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0))))
    return points


def hinted_error(output: torch.Tensor, hints: list) -> float:
    """Mean Lab distance between the output's ab at each hinted pixel and the hint's ab."""
    _, chroma = rgb_to_lab(output)
    return float(np.mean([((chroma[0, :, y, x] - hint_chroma(color)) * AB_SCALE).norm().item() for x, y, color in hints]))


def mark(image: Image.Image, hints: list) -> Image.Image:
    """The photo with each hint drawn as a ring of its colour."""
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    radius = max(3, min(image.size) // 40)
    for x, y, color in hints:
        box = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(box, fill=tuple(int(round(c)) for c in color), outline=(255, 255, 255), width=max(1, radius // 3))
    return marked


def run(pipeline, photos, counts, decay, seed):
    """Scores per k for one method; also the outputs of the first photos (for the grid)."""
    rows, shown = {k: [] for k in counts}, []
    patch = mock.patch("colorize.hints.DECAY", decay) if decay is not None else contextlib.nullcontext()
    with patch:
        for index, path in enumerate(photos):
            image = open_image(path)
            truth = pil_to_tensor(image)[None]
            points = hint_points(image, max(counts), seed=index)
            outputs = []
            for k in counts:
                hints = points[:k]
                output = pipeline(image, hints=hints, generator=torch.Generator().manual_seed(seed), output_type="pt").images
                lightness_change = (rgb_to_lab(output)[0] - rgb_to_lab(truth)[0]).abs().max().item() * 50
                rows[k].append({"psnr": psnr(output, truth).item(), "auc": auc(output, truth).item(),
                                "hinted_error": hinted_error(output, hints) if hints else float("nan"),
                                "lightness_change": lightness_change})
                outputs.append((output, hints))
            if index < 4:
                shown.append((image, outputs))
    summary = {k: {key: float(np.nanmean([row[key] for row in rows[k]])) if k or key != "hinted_error" else None
                   for key in rows[k][0]} for k in counts}
    for k in counts:
        summary[k]["max_lightness_change"] = max(row["lightness_change"] for row in rows[k])
    return summary, shown


def to_pil(tensor: torch.Tensor) -> Image.Image:
    return Image.fromarray((tensor[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A pipeline folder or Hub id (default: the shipped model).")
    parser.add_argument("--data", required=True, help="Colour photos: a folder or a list file.")
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 1, 5, 10, 20], help="Numbers of hints k.")
    parser.add_argument("--methods", nargs="+", default=["spread"], choices=sorted(METHODS))
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N photos.")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed (the same for every k).")
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args()

    pipeline = ColorizationPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    photos = [item.path for item in find_images(args.data)][: args.limit]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results, lines = {}, ["| method | k | PSNR | Δ vs k = 0 | AuC | chroma error at hints (Lab) | max L change |",
                          "|---|---|---|---|---|---|---|"]
    for method in args.methods:
        summary, shown = run(pipeline, photos, args.counts, METHODS[method], args.seed)
        results[method] = summary
        base = summary[args.counts[0]]["psnr"]
        for k in args.counts:
            row = summary[k]
            error = "—" if row["hinted_error"] is None else f"{row['hinted_error']:.1f}"
            lines.append(f"| {method} | {k} | {row['psnr']:.2f} | {row['psnr'] - base:+.2f} | {row['auc']:.3f} | {error} "
                         f"| {row['max_lightness_change']:.2f} |")
            print(lines[-1], flush=True)
        if method == args.methods[0]:
            grid = [[mark(image, outputs[-1][1])] + [to_pil(output) for output, _ in outputs] for image, outputs in shown]
            make_grid(grid, height=160).save(output_dir / "grid.png")
    footer = f"{len(photos)} photos, 1 sample each, seed {args.seed}; the grid: truth with the {args.counts[-1]} hints, then k = {args.counts}."
    (output_dir / "hints.md").write_text("\n".join(lines) + "\n\n" + footer + "\n")
    (output_dir / "hints.json").write_text(json.dumps({"photos": len(photos), "results": results}, indent=2) + "\n")
    plot(results, args.counts, output_dir / "hints.png")
    print(footer)


def plot(results: dict, counts: list[int], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for method, summary in results.items():
        axis.plot(counts, [summary[k]["psnr"] for k in counts], marker="o", label=method)
    axis.set_xlabel("hints per photo (k)")
    axis.set_ylabel("PSNR (dB)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
