"""Image I/O: decode files and bytes, any PIL mode to 8-bit RGB, images as tensors, gray detection, and
`find_images`, the one way to list the images of folders, list files and globs.

Nothing here knows about training: the pipeline, the CLI and the training data all build on it.
"""

import glob
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps

from .color import AB_SCALE, rgb_to_lab

# An image whose 99th-percentile chroma (sqrt(a^2 + b^2), Lab units) stays below this is gray:
# JPEG noise on a gray photo stays around 1-2 units, a faint sepia tint is already above 5.
GRAY_CHROMA_THRESHOLD = 3.0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def decode_image(value) -> PILImage.Image:
    """Decode a file path or an undecoded ``datasets.Image`` value ({"path", "bytes"}); PIL images pass through."""
    if isinstance(value, PILImage.Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        source = value
    else:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
    image = PILImage.open(source)
    image.load()
    return image


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Any PIL image as 8-bit RGB: 16- and 32-bit gray rescaled to 0-255 (PIL's own conversion clips it),
    transparency flattened onto white, CMYK, palette and the rest converted by PIL."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        else:
            top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        image = PILImage.fromarray((array * (255.0 / top)).clip(0, 255).round().astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def open_image(value) -> PILImage.Image:
    """`decode_image` (first frame of an animation), turned upright by its EXIF orientation, as 8-bit RGB."""
    return to_rgb(ImageOps.exif_transpose(decode_image(value)))


@dataclass(frozen=True)
class ImageFile:
    """One image named by a source given to `find_images`."""

    path: Path  # the file
    name: Path  # its path below a named folder, else its file name: where its output goes
    group: str | None  # its class: first sub-folder below a named folder, or the folder of a listed file


def read_list_file(list_file: Path) -> list[Path]:
    """The paths of a text file with one image path per line (relative ones: to the file's folder; '#' comments)."""
    lines = [line.strip() for line in list_file.read_text().splitlines()]
    return [list_file.parent / line for line in lines if line and not line.startswith("#")]


def find_images(*sources) -> list[ImageFile]:
    """Every image named by ``sources``, in order: each a folder (searched recursively for `IMAGE_SUFFIXES`,
    sorted), a text file listing image paths, an image file, or a glob pattern. The one way this package
    lists images. Raises FileNotFoundError for a source that names nothing."""
    found = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            for file in sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES):
                relative = file.relative_to(path)
                found.append(ImageFile(file, relative, relative.parts[0] if len(relative.parts) > 1 else None))
        elif path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            found.extend(ImageFile(file, Path(file.name), file.parent.name) for file in read_list_file(path))
        elif path.is_file():
            found.append(ImageFile(path, Path(path.name), None))
        else:
            matches = [Path(match) for match in sorted(glob.glob(str(source), recursive=True))]
            if not matches:
                raise FileNotFoundError(f"No such file, folder or glob match: {source}")
            found.extend(ImageFile(match, Path(match.name), None) for match in matches if match.is_file())
    return found


def pil_to_tensor(image: PILImage.Image) -> torch.Tensor:
    """An RGB PIL image as a float tensor (3, H, W) in [0, 1]."""
    array = np.array(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def is_grayscale(image: PILImage.Image) -> bool:
    """True when the image carries no usable colour (see `GRAY_CHROMA_THRESHOLD`)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((64, 64))
    _, chroma = rgb_to_lab(pil_to_tensor(thumbnail))
    magnitude = chroma.mul(AB_SCALE).pow(2).sum(0).sqrt()
    return torch.quantile(magnitude.flatten(), 0.99).item() < GRAY_CHROMA_THRESHOLD
