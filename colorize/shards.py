"""Photos packed into webdataset shards: ``.tar`` files of ``<key>.jpg`` (+ ``<key>.txt``, its class) members, which
🤗 datasets reads as a dataset (``load_dataset("webdataset", ...)``, streamed or not).

Packing a folder of photos into a few shards makes it quick to copy and to read: one file per few
thousand photos, optionally re-encoded smaller (`colorize.image_io` decodes them; nothing here trains).
"""

import io
import tarfile
from pathlib import Path

from PIL import Image as PILImage

from .image_io import ImageFile, open_image


def encoded_photo(image: PILImage.Image, shorter_side: int | None, quality: int) -> bytes:
    """``image`` as JPEG bytes, first shrunk so its shorter side is at most ``shorter_side`` (never enlarged)."""
    if shorter_side is not None and min(image.size) > shorter_side:
        scale = shorter_side / min(image.size)
        size = (max(shorter_side, round(image.width * scale)), max(shorter_side, round(image.height * scale)))
        image = image.resize(size, PILImage.Resampling.BICUBIC, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def add_member(archive: tarfile.TarFile, name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # mtime 0: the same photos give the same bytes
    archive.addfile(info, io.BytesIO(data))


def write_shards(files: list[ImageFile], folder, images_per_shard: int = 1000, shorter_side: int | None = None,
                 quality: int = 90) -> tuple[list[Path], list[Path]]:
    """Pack ``files`` (`colorize.image_io.find_images`'s list) into ``folder/shard-00000.tar``, ... in order,
    each photo as JPEG (see `encoded_photo`) with its class (``.txt``) when it has one. Files that cannot be
    decoded are left out. Returns (the shards, the files left out)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards, left_out = [], []
    for first in range(0, len(files), images_per_shard):
        path = folder / f"shard-{len(shards):05d}.tar"
        with tarfile.open(path, "w") as archive:
            for index, file in enumerate(files[first : first + images_per_shard], start=first):
                try:
                    photo = encoded_photo(open_image(str(file.path)), shorter_side, quality)
                except Exception:  # PIL raises many types for broken files
                    left_out.append(file.path)
                    continue
                key = f"{index:08d}"
                add_member(archive, f"{key}.jpg", photo)
                if file.group is not None:
                    add_member(archive, f"{key}.txt", file.group.encode())
        shards.append(path)
    return shards, left_out
