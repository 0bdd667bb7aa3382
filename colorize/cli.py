"""The ``colorize`` command: colorize photos, files, folders or globs, with a saved pipeline."""

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .data import open_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# Output keeps the input's format family; formats PIL cannot write in RGB become PNG.
WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "flowers"


def find_images(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(source file, output path relative to the output folder) for every image named by ``inputs``."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((file, file.relative_to(path)))
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"No such file, folder or glob match: {item}")
            found.extend((Path(match), Path(Path(match).name)) for match in matches if Path(match).is_file())
    return found


def output_path(out_dir: Path, relative: Path) -> Path:
    suffix = relative.suffix.lower()
    return out_dir / (relative if suffix in WRITABLE_SUFFIXES else relative.with_suffix(".png"))


def save_atomically(image: Image.Image, path: Path):
    """Write to a temporary file beside ``path`` and rename it, so no half-written file is ever left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        image.save(temporary, format=Image.registered_extensions()[path.suffix.lower()], quality=95)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_pipeline(model: str, scheduler: str | None, device: str):
    from .pipeline_colorization import ColorizationPipeline, scheduler_from_name

    looks_local = model.startswith(("/", ".", "~")) or model.count("/") != 1
    if looks_local and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"no pipeline folder at {model}")
    pipeline = ColorizationPipeline.from_pretrained(Path(model).expanduser() if looks_local else model)
    if scheduler is not None:
        pipeline.scheduler = scheduler_from_name(scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize",
        description="Colorize grayscale photos with a diffusion model. Outputs keep each input's size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="Image files, folders (searched recursively) or glob patterns.")
    parser.add_argument("-o", "--output-dir", default="colorized", help="Where the colorized images are written.")
    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="A saved ColorizationPipeline: local folder or Hub id."
    )
    parser.add_argument("--num-inference-steps", type=int, default=25, help="Denoising steps per image.")
    parser.add_argument(
        "--scheduler", default=None, choices=["ddpm", "ddim", "dpm"], help="Sampler; default: the model's own."
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed, for reproducible colours.")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device to run on."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace output files that already exist.")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        images = find_images(args.inputs)
    except FileNotFoundError as error:
        print(f"colorize: {error}", file=sys.stderr)
        return 2
    out_dir = Path(args.output_dir)
    try:
        pipeline = load_pipeline(args.model, args.scheduler, args.device)
    except Exception as error:
        print(f"colorize: cannot load the model '{args.model}': {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    done, skipped, failed = 0, 0, 0
    started = time.perf_counter()
    for source, relative in tqdm(images, desc="Colorizing", unit="image"):
        target = output_path(out_dir, relative)
        if target.exists() and not args.overwrite:
            tqdm.write(f"skipped {source}: {target} exists (use --overwrite)")
            skipped += 1
            continue
        try:
            image = open_image(source)
            generator = torch.Generator().manual_seed(args.seed)
            result = pipeline(image, num_inference_steps=args.num_inference_steps, generator=generator).images[0]
            save_atomically(result, target)
            done += 1
        except Exception as error:  # one bad file must not stop the batch
            tqdm.write(f"failed {source}: {type(error).__name__}: {error}")
            failed += 1
    seconds = time.perf_counter() - started
    print(f"{done} done, {skipped} skipped, {failed} failed; {seconds / max(done, 1):.2f} s per image -> {out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
