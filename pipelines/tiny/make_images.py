"""Write the tiny parameter set's synthetic photos: 3 colour classes x 8 images of 48x48 pixels, plus one
gray image and one exact duplicate that `colorize prepare` must drop. Run from the repository root:

    python pipelines/tiny/make_images.py
"""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

FOLDER = Path(__file__).resolve().parent / "images"
CLASS_COLOURS = {"red": (200, 40, 30), "green": (40, 170, 60), "blue": (40, 80, 200)}


def synthetic_photo(rgb, seed: int, size: int = 48) -> Image.Image:
    """A colour blob over a lighter background, at a random place: L predicts where colour is."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (size / 6) ** 2))[..., None]
    background = np.array([170, 190, 150])
    pixels = blob * np.array(rgb) + (1 - blob) * background + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def main():
    for class_index, (name, rgb) in enumerate(CLASS_COLOURS.items()):
        (FOLDER / name).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            synthetic_photo(rgb, seed=100 * class_index + i).save(FOLDER / name / f"{i}.png")
    synthetic_photo((128, 128, 128), seed=999).convert("L").save(FOLDER / "green" / "gray.png")
    shutil.copyfile(FOLDER / "red" / "0.png", FOLDER / "red" / "0-copy.png")


if __name__ == "__main__":
    main()
