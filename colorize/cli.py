"""The ``colorize`` command: colorize photos, files, folders or globs, with a saved pipeline."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from PIL import Image
from tqdm.auto import tqdm

from . import demo, evaluate, prepare, publish
from .hints import hints_from_image, parse_hint
from .image_io import IMAGE_SUFFIXES, find_images, is_grayscale, open_image
from .model_options import add_model_arguments, load_pipeline_or_exit
from .stage_params import expand_params, respell_flags
from .visualize import STRIP_FRAMES, denoising_strip, gray_picture, make_grid

# The repository this package was installed from (editable install): training script and accelerate config.
ROOT = Path(__file__).resolve().parents[1]
UMASK = os.umask(0o022)  # read the process umask (setting it is the only way), then put it back
os.umask(UMASK)

# Output keeps the input's format family; formats PIL cannot write in RGB become PNG.
WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def output_path(out_dir: Path, relative: Path) -> Path:
    suffix = relative.suffix.lower()
    return out_dir / (relative if suffix in WRITABLE_SUFFIXES else relative.with_suffix(".png"))


def save_atomically(image: Image.Image | list[Image.Image], path: Path):
    """Write to a temporary file beside ``path`` and rename it, so no half-written file is ever left.
    A list of images is written as an animation (GIF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp creates it private (0600): give it the usual permissions
    try:
        if isinstance(image, list):
            image[0].save(temporary, format="GIF", save_all=True, append_images=image[1:], duration=80, loop=0)
        else:
            image.save(temporary, format=Image.registered_extensions()[path.suffix.lower()], quality=95)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def side_by_side(gray: Image.Image, colorized: Image.Image, original: Image.Image | None) -> Image.Image:
    """gray | colorized | original in one picture at the photo's own height (``original`` None: no such column)."""
    row = [gray, colorized] if original is None else [gray, colorized, original]
    return make_grid([row], height=gray.height, gap=8)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize",
        description="Colorize grayscale photos with a diffusion model. Outputs keep each input's size.",
        epilog="Other commands, the stages of the MLOps pipeline (each has --help): `colorize prepare SOURCE` checks "
        "and splits a dataset; `colorize train ...` runs train_colorization.py under accelerate; `colorize evaluate "
        "DATA` scores a model against the gray baseline; `colorize publish MODEL` exports it with a model card and "
        "pushes it to the Hub; `colorize demo` starts the Gradio web demo.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="Image files, folders (searched recursively) or glob patterns.")
    parser.add_argument("-o", "--output-dir", default="colorized", help="Where the colorized images are written.")
    add_model_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="Replace output files that already exist.")
    parser.add_argument("--num-samples", type=int, default=1,
                        help="Colorizations per photo, each from its own seed (seed, seed+1, ...), named NAME_0 ... NAME_N-1.")
    parser.add_argument("--save-intermediates", nargs="?", const="png", choices=["png", "gif"], default=None,
                        help="Also write NAME_denoising.png (a strip of 8 steps, noisiest first) or, with `gif`, "
                        "an animation of every step.")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="Photos per pipeline call; photos of the same working size share one UNet batch.")
    parser.add_argument(
        "--hint", action="append", type=hint_argument, default=[], metavar="X,Y,COLOR",
        help="A colour you know: at pixel X,Y (from the top left) the photo is COLOR (#rrggbb or a name such as "
        "yellow). Repeatable. Its chroma spreads over the region of similar tone around the point; the photo "
        "keeps its lightness. Applies to every input photo.",
    )
    parser.add_argument(
        "--hint-image", type=Path, default=None, metavar="PNG",
        help="Hints painted on a transparent image the size of the photo: every opaque pixel is a hint of its colour.",
    )
    parser.add_argument(
        "--side-by-side", action="store_true",
        help="Write gray input | colorized | original (when the input has colour) side by side, at full size, "
        "instead of the colorized image alone.",
    )
    return parser


def hint_argument(text: str):
    """argparse type of --hint: a malformed hint or an unknown colour is argparse's one-line error."""
    try:
        return parse_hint(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def read_hint_image(path: Path) -> tuple[tuple[int, int], list]:
    """(size, hints) of a --hint-image; ValueError (one line) when it cannot be used."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.size, hints_from_image(image)
    except OSError as error:
        raise ValueError(f"cannot read --hint-image {path}: {error}") from None


def photo_hints(image: Image.Image, args, hint_image) -> list:
    """The hints for one photo: --hint points and the --hint-image's, which must be the photo's size."""
    hints = list(args.hint)
    if hint_image is not None:
        size, painted = hint_image
        if size != image.size:
            raise ValueError(f"--hint-image is {size[0]}x{size[1]}, the photo {image.size[0]}x{image.size[1]}")
        hints += painted
    return hints


@dataclass
class Job:
    """One input photo: where it comes from, where its colorized sample(s) and denoising picture go."""

    source: Path
    targets: list[Path]
    intermediates: Path | None
    image: Image.Image | None = None
    hints: list | None = None


def plan_job(source: Path, relative: Path, out_dir: Path, args) -> Job:
    target = output_path(out_dir, relative)
    targets = [target] if args.num_samples == 1 else [
        target.with_name(f"{target.stem}_{k}{target.suffix}") for k in range(args.num_samples)
    ]
    strip = target.with_name(f"{target.stem}_denoising.{args.save_intermediates}") if args.save_intermediates else None
    return Job(source, targets, strip)


def denoising_picture(frames: list[Image.Image], kind: str) -> Image.Image | list[Image.Image]:
    """A strip of evenly spaced steps (png), or every step as animation frames (gif), at most 256 px high."""
    if kind == "png":
        return denoising_strip(frames, height=min(256, frames[0].height))
    scale = min(1.0, 256 / frames[0].height)
    size = (max(1, round(frames[0].width * scale)), max(1, round(frames[0].height * scale)))
    return [frame.resize(size, Image.Resampling.BICUBIC) for frame in frames]


def colorize_batch(pipeline, jobs: list[Job], args):
    """Colorize the photos of ``jobs`` in one pipeline call; write every sample (and picture) of each."""
    count = args.num_samples
    generators = [torch.Generator().manual_seed(args.seed + k) for _ in jobs for k in range(count)]
    output = pipeline(
        [job.image for job in jobs], num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
        generator=generators,
        num_images_per_prompt=count, return_intermediates=bool(args.save_intermediates),
        num_intermediates=STRIP_FRAMES if args.save_intermediates == "png" else None,
        hints=[job.hints or [] for job in jobs], saturation=args.saturation, strength=args.strength,
        working_size=args.working_size,
    )
    for position, job in enumerate(jobs):
        if args.side_by_side:  # once per photo, whatever the number of samples
            gray, original = gray_picture(job.image), None if is_grayscale(job.image) else job.image
        for k, target in enumerate(job.targets):
            sample = output.images[position * count + k]
            save_atomically(side_by_side(gray, sample, original) if args.side_by_side else sample, target)
        if job.intermediates is not None:
            frames = [step[position * count] for step in output.intermediates]
            save_atomically(denoising_picture(frames, args.save_intermediates), job.intermediates)


def colorize_files(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(respell_flags(parser, argv))
    try:
        inputs = find_images(*args.inputs)
    except FileNotFoundError as error:
        print(f"colorize: {error}", file=sys.stderr)
        return 2
    if not inputs:
        print(f"colorize: no images found in {' '.join(args.inputs)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})",
              file=sys.stderr)
        return 2
    hint_image = None
    if args.hint_image is not None:
        try:
            hint_image = read_hint_image(args.hint_image)
        except ValueError as error:
            print(f"colorize: {error}", file=sys.stderr)
            return 2
    out_dir = Path(args.output_dir)
    pipeline = load_pipeline_or_exit(args)
    if pipeline is None:
        return 2
    counts = Counter()
    started = time.perf_counter()
    progress = tqdm(total=len(inputs), desc="Colorizing", unit="image")

    def fail(job: Job, error: Exception):  # one line naming the file; the rest of the batch goes on
        tqdm.write(f"failed {job.source}: {type(error).__name__}: {error}")
        counts["failed"] += 1

    def run(batch: list[Job]):
        try:
            colorize_batch(pipeline, batch, args)
            counts["done"] += len(batch)
        except Exception as error:
            if len(batch) == 1:
                fail(batch[0], error)
            else:  # find the photo that failed: the others still get done
                for job in batch:
                    run([job])
                return
        progress.update(len(batch))

    batch = []
    for image_file in inputs:
        source = image_file.path
        job = plan_job(source, image_file.name, out_dir, args)
        existing = [target for target in job.targets if target.exists()]
        if existing and not args.overwrite:
            tqdm.write(f"skipped {source}: {existing[0]} exists (use --overwrite)")
            counts["skipped"] += 1
            progress.update(1)
            continue
        try:
            job.image = open_image(source)
            job.hints = photo_hints(job.image, args, hint_image)
        except Exception as error:
            fail(job, error)
            progress.update(1)
            continue
        batch.append(job)
        if len(batch) == args.batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    progress.close()
    seconds = time.perf_counter() - started
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"{seconds / max(counts['done'], 1):.2f} s per image -> {out_dir}")
    return 1 if counts["failed"] else 0


def train_model(argv) -> int:
    """`colorize train [--accelerate-config F] [--params FILE] ARGS...`: `accelerate launch train_colorization.py ARGS...`."""
    parser = argparse.ArgumentParser(
        prog="colorize train", add_help=False,
        description="Run train_colorization.py under `accelerate launch`; every other argument goes to the script "
        "(see `colorize train --help-script`), its flags spelled with hyphens or underscores "
        "(--max-train-steps = --max_train_steps). --params FILE adds the `train` section of a pipeline params.yaml "
        "as flags.",
    )
    parser.add_argument("--accelerate-config", default=str(ROOT / "accelerate_config.yaml"),
                        help="accelerate config file (default: the repository's).")
    parser.add_argument("--help-script", action="store_true", help="Show train_colorization.py's options.")
    parser.add_argument("-h", "--help", action="store_true", help="Show this help.")
    args, script_args = parser.parse_known_args(argv)
    try:
        script_args = expand_params(script_args, "train")
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"colorize train: --params: {error}", file=sys.stderr)
        return 2
    if args.help:
        parser.print_help()
        return 0
    script = ROOT / "train_colorization.py"
    if not script.is_file():
        print(f"colorize train: {script} not found (it ships with a clone of the repository)", file=sys.stderr)
        return 2
    # --quiet: a failed run ends with the script's own one-line error, not accelerate's CalledProcessError traceback
    command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", args.accelerate_config,
               str(script), *(["--help"] if args.help_script else script_args)]
    return subprocess.run(command, env=training_environment()).returncode


def training_environment() -> dict:
    """This process's environment, with OMP_NUM_THREADS set to the usable cores when unset: accelerate launches a
    CPU process with one thread otherwise (1.8x slower on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"OMP_NUM_THREADS": str(cores or 1), **os.environ}


# Sub-commands: each module has its own ``build_parser`` and ``main(argv)``.
COMMANDS = {"prepare": prepare.main, "evaluate": evaluate.main, "publish": publish.main, "demo": demo.main}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "train":
        return train_model(argv[1:])
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return colorize_files(argv)


if __name__ == "__main__":
    sys.exit(main())
