#!/usr/bin/env python
"""Build `.gpu-bundle/`: everything a bare GPU machine with torch and accelerate needs to run the training recipe.

    python gpu/make_bundle.py --train-data outputs/data/train.txt --validation-data outputs/data/validation.txt

writes (docs/gpu.md says how it is used):
- ``wheels/``: the packages such a machine lacks (manylinux wheels for its Python 3.12, of the versions
  installed here);
- ``data/train/``, ``data/validation/``: the photos packed as webdataset ``.tar`` shards, re-encoded as JPEG
  with their shorter side at most ``--shorter-side`` pixels (the recipe trains on 64 px crops; the image
  encoder sees the photo at 224 px either way), without their classes (the recipe does not use them);
- ``perceptual/efficientnet-lite1.safetensors``: the sampler distillation's perceptual network
  (`colorize.training.perceptual.save_weights_file`: 8 MiB, where its wheel would take 19);
- ``train.txt`` and ``validation.txt``: the photos packed (the split listing), ``bundle.json``: what it holds;
- ``launch.sh``: the launcher (a copy of gpu/launch.sh).
The bundle must stay under ``--max-mib``, and with the repository's tracked files under 64 MiB: the device
machine takes a working tree of 64 MiB at most, the shipped model (21 MB) included.
"""

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from colorize.image_io import find_images
from colorize.shards import write_shards
from colorize.training.perceptual import BACKBONE, save_weights_file

HERE = Path(__file__).resolve().parent
DEVICE_PYTHON = "3.12"  # the device image's Python
TREE_LIMIT_MIB = 64  # what the device machine takes: tracked files plus carried folders
# What the device image (torch, accelerate, huggingface_hub, pyarrow, pandas, ... : see docs/gpu.md) lacks.
MISSING_ON_DEVICE = ["diffusers", "datasets", "dill", "multiprocess", "kornia", "kornia_rs", "efficientnet-lite-pytorch",
                     "importlib_metadata"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def download_wheels(folder: Path, packages: list[str], python_version: str = DEVICE_PYTHON) -> list[Path]:
    """x86-64 wheels of ``packages`` for ``python_version``, at the versions installed here (no dependencies)."""
    folder.mkdir(parents=True, exist_ok=True)
    pinned = [f"{name}=={importlib.metadata.version(name)}" for name in packages]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + pinned, check=True)
    return sorted(folder.glob("*.whl"))


def tracked_mib() -> float:
    """Size of the repository's tracked files (what travels with the bundle), or 0 outside a git checkout."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=HERE.parent, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0.0
    files = [HERE.parent / name for name in listing.decode().split("\0") if name]
    return sum(path.stat().st_size for path in files if path.is_file()) / 2**20


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def build(output: Path, train_data: str, validation_data: str | None, num_validation: int, shorter_side: int,
          quality: int, images_per_shard: int, wheels: bool, max_mib: float, python_version: str = DEVICE_PYTHON) -> dict:
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    summary = {"shorter_side": shorter_side, "jpeg_quality": quality}
    for split, source, limit in (("train", train_data, None), ("validation", validation_data, num_validation)):
        if source is None:
            continue
        files = [replace(file, group=None) for file in find_images(source)[:limit]]  # no .txt member: 1 KiB a photo
        shards, left_out = write_shards(files, output / "data" / split, images_per_shard, shorter_side, quality)
        (output / f"{split}.txt").write_text("".join(f"{file.path}\n" for file in files if file.path not in left_out))
        summary[split] = {"photos": len(files) - len(left_out), "shards": len(shards), "left_out": [str(p) for p in left_out],
                          "mib": round(folder_size(output / "data" / split) / 2**20, 2)}
    (output / "perceptual").mkdir()
    save_weights_file(output / "perceptual" / f"{BACKBONE}.safetensors")
    if wheels:
        summary["wheels"] = [path.name for path in download_wheels(output / "wheels", MISSING_ON_DEVICE, python_version)]
    shutil.copy(HERE / "launch.sh", output / "launch.sh")
    summary["mib"] = round(folder_size(output) / 2**20, 2)
    summary["tree_mib"] = round(summary["mib"] + tracked_mib(), 2)
    (output / "bundle.json").write_text(json.dumps(summary, indent=2) + "\n")
    if summary["mib"] > max_mib or summary["tree_mib"] > TREE_LIMIT_MIB:
        raise SystemExit(f"make_bundle.py: error: the bundle is {summary['mib']} MiB ({summary['tree_mib']} MiB with the "
                         f"repository's files), over {max_mib} MiB (or {TREE_LIMIT_MIB} with the repository): lower "
                         f"--shorter-side or --quality")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train-data", required=True, help="Training photos: a folder or list file (e.g. colorize prepare's train.txt).")
    parser.add_argument("--validation-data", default=None, help="Validation photos (folder or list file); the first --num-validation are packed.")
    parser.add_argument("--num-validation", type=int, default=64, help="Validation photos packed (the run's in-training validation).")
    parser.add_argument("--output", default=".gpu-bundle", help="The bundle folder (replaced).")
    parser.add_argument("--shorter-side", type=int, default=128, help="Photos larger than this are shrunk to it (shorter side, pixels).")
    parser.add_argument("--quality", type=int, default=65, help="JPEG quality of the packed photos (65: the bundle with the perceptual network stays under the 64 MiB a device call takes).")
    parser.add_argument("--images-per-shard", type=int, default=1000, help="Photos per .tar shard.")
    parser.add_argument("--no-wheels", dest="wheels", action="store_false", help="Leave the wheels out (no PyPI access).")
    parser.add_argument("--max-mib", type=float, default=60, help="Fail when the bundle is larger.")
    parser.add_argument("--python-version", default=DEVICE_PYTHON, help="Python the wheels are for (the device's).")
    args = parser.parse_args(argv)
    summary = build(Path(args.output), args.train_data, args.validation_data, args.num_validation, args.shorter_side,
                    args.quality, args.images_per_shard, args.wheels, args.max_mib,
                    args.python_version)
    print(f"{args.output}: {summary['mib']} MiB, {summary['tree_mib']} MiB with the repository ({summary['train']['photos']} training photos in "
          f"{summary['train']['shards']} shards, {len(summary.get('wheels', []))} wheels)")


if __name__ == "__main__":
    main()
