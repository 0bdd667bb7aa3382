"""`colorize PHOTOS...`: colorize photos, files, folders or globs with a saved pipeline, each written beside its
folder layout under ``--output-dir``, never over an existing file without ``--overwrite``."""

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from ..flags import respell_flags
from ..hints import hints_from_image, parse_hint
from ..image_io import IMAGE_SUFFIXES, ImageFile, find_images, is_grayscale, open_image
from ..seeding import sample_generators
from ..visualize import STRIP_FRAMES, denoising_animation, denoising_strip, gray_picture, make_grid
from .errors import CommandError
from .options import add_model_arguments, add_sample_spread_argument, load_pipeline
from .overlap import BackgroundWriter, prefetch

UMASK = os.umask(0o022)  # read the process umask (setting it is the only way), then put it back
os.umask(UMASK)

# Output keeps the input's format family; formats PIL cannot write in RGB become PNG.
WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize",
        description="Colorize grayscale photos with a diffusion model. Outputs keep each input's size.",
        epilog="Other commands (each has --help): `colorize video IN -o OUT.mp4` colorizes a clip without flicker; "
        "`colorize evaluate-video CLIPS` scores that against per-frame colorization. The stages of the MLOps "
        "pipeline: `colorize prepare SOURCE` checks "
        "and splits a dataset; `colorize train ...` runs train_colorization.py under accelerate; `colorize train-prior "
        "...` fits a chroma prior for a trained model (train_chroma_prior.py); `colorize evaluate "
        "DATA` scores a model against the gray baseline; `colorize publish MODEL` exports it with a model card and "
        "pushes it to the Hub; `colorize demo` starts the Gradio web demo.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="Image files, folders (searched recursively) or glob patterns.")
    parser.add_argument("-o", "--output-dir", default="colorized", help="Where the colorized images are written.")
    add_model_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="Replace output files that already exist.")
    parser.add_argument("--num-samples", type=int, default=1,
                        help="Colorizations per photo, each from its own seed (seed, seed+1, ...), named NAME_0 ... NAME_N-1; "
                        "--sample-spread says how they differ.")
    add_sample_spread_argument(parser)
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
    """(size, hints) of a --hint-image; `CommandError` when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.size, hints_from_image(image)
    except OSError as error:
        raise CommandError(f"cannot read --hint-image {path}: {error}") from None


def photo_hints(image: Image.Image, args, hint_image) -> list:
    """The hints for one photo: --hint points and the --hint-image's, which must be the photo's size."""
    hints = list(args.hint)
    if hint_image is not None:
        size, painted = hint_image
        if size != image.size:
            raise ValueError(f"--hint-image is {size[0]}x{size[1]}, the photo {image.size[0]}x{image.size[1]}")
        hints += painted
    return hints


def find_inputs(patterns: list[str], out_dir: Path, quiet: bool = False) -> list[ImageFile]:
    """The images of the files, folders and globs given, each file once; `CommandError` when one is missing or none
    is found. A file found in a folder or by a glob that lies inside ``out_dir`` is not an input (an earlier run's output,
    or a photo its output would replace); only a file named on its own is taken from there."""
    try:
        found = find_images(*patterns)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    if not found:
        raise CommandError(f"no images found in {' '.join(patterns)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    unique = {}  # resolved path -> file: a file named twice (or by two patterns) is one input, at its first place
    for file in found:
        unique.setdefault(file.path.resolve(), file)
    named = {Path(pattern).resolve() for pattern in patterns if Path(pattern).is_file()}
    output = out_dir.resolve()
    inputs = [file for path, file in unique.items() if path in named or output not in path.parents]
    if not inputs:
        raise CommandError(f"all {len(unique)} images found are inside the output folder {out_dir}: colorized photos "
                           "would replace them; write them to another --output-dir")
    if len(inputs) < len(unique) and not quiet:
        print(f"left out {len(unique) - len(inputs)} images inside the output folder {out_dir} (earlier outputs)")
    return inputs


@dataclass
class Job:
    """One input photo: where it comes from, where its colorized sample(s) and denoising picture go."""

    source: Path
    targets: list[Path]
    intermediates: Path | None
    image: Image.Image | None = None
    hints: list | None = None


def output_path(out_dir: Path, relative: Path) -> Path:
    suffix = relative.suffix.lower()
    return out_dir / (relative if suffix in WRITABLE_SUFFIXES else relative.with_suffix(".png"))


def plan_job(source: Path, relative: Path, out_dir: Path, args) -> Job:
    target = output_path(out_dir, relative)
    targets = [target] if args.num_samples == 1 else [
        target.with_name(f"{target.stem}_{k}{target.suffix}") for k in range(args.num_samples)
    ]
    strip = target.with_name(f"{target.stem}_denoising.{args.save_intermediates}") if args.save_intermediates else None
    return Job(source, targets, strip)


def written_by(job: Job) -> list[Path]:
    """Every file a job writes, resolved."""
    return [path.resolve() for path in job.targets + ([job.intermediates] if job.intermediates else [])]


def plan_jobs(inputs: list[ImageFile], out_dir: Path, args, quiet: bool = False) -> list[Job]:
    """One job per input, planned before any work, so that no two write the same file: when an input's output
    names are taken by an earlier input's (``a/x.jpg`` and ``b/x.jpg`` both give ``x.jpg``), it gets the first free
    ``x_2.jpg``, ``x_3.jpg``... (said on one line), the same on every run of the same command. `CommandError`
    when an output would replace an input photo."""
    sources = {file.path.resolve() for file in inputs}
    taken, jobs = set(), []
    for file in inputs:
        job, number = plan_job(file.path, file.name, out_dir, args), 2
        paths = written_by(job)
        while taken.intersection(paths):
            renamed = file.name.with_name(f"{file.name.stem}_{number}{file.name.suffix}")
            job, number = plan_job(file.path, renamed, out_dir, args), number + 1
            paths = written_by(job)
        if number > 2 and not quiet:
            print(f"{file.path}: written as {job.targets[0].name}, its own name being taken by another input")
        replaced = sources.intersection(paths)
        if replaced:
            raise CommandError(f"the output of {file.path} would replace the input photo {replaced.pop()}: "
                               "write to another --output-dir")
        taken.update(paths)
        jobs.append(job)
    return jobs


def check_writable(out_dir: Path):
    """`CommandError` unless files can be written into ``out_dir`` (made when missing): found before any photo
    is colorized, not after each one."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out_dir, prefix=".colorize-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise CommandError(f"cannot write into the output folder {out_dir}: {error.strerror or error}") from None


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


def colorize_batch(pipeline, jobs: list[Job], args):
    """The pipeline's output for the photos of ``jobs``, in one call: ``--num-samples`` images a photo, in order."""
    count = args.num_samples
    return pipeline(
        [job.image for job in jobs], num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
        generator=sample_generators(args.seed, len(jobs), count),
        num_images_per_prompt=count, return_intermediates=bool(args.save_intermediates),
        num_intermediates=STRIP_FRAMES if args.save_intermediates == "png" else None,
        hints=[job.hints or [] for job in jobs], saturation=args.saturation, strength=args.strength,
        working_size=args.working_size, sample_spread=args.sample_spread,
    )


def write_job(job: Job, output, position: int, args):
    """Write every sample (and the denoising picture) of the photo at ``position`` in ``output``."""
    count = args.num_samples
    if args.side_by_side:  # once per photo, whatever the number of samples
        gray, original = gray_picture(job.image), None if is_grayscale(job.image) else job.image
    for k, target in enumerate(job.targets):
        sample = output.images[position * count + k]
        save_atomically(side_by_side(gray, sample, original) if args.side_by_side else sample, target)
    if job.intermediates is not None:
        first = position * count
        picture = (denoising_strip(output.intermediates, first, height=min(256, job.image.height))
                   if args.save_intermediates == "png" else denoising_animation(output.intermediates, first))
        save_atomically(picture, job.intermediates)


class Tally:
    """The photos done, skipped and failed, with the progress bar and the one-line report of each skip or failure.
    Safe to call from the writing thread and the main one at once."""

    def __init__(self, total: int, process: str = ""):
        self.counts, self.lock = Counter(), threading.Lock()
        self.progress = tqdm(total=total, desc=f"Colorizing{process}", unit="image")

    def count(self, outcome: str, line: str | None = None):
        with self.lock:
            if line is not None:
                tqdm.write(line)
            self.counts[outcome] += 1
            self.progress.update(1)

    def done(self, job: Job):
        self.count("done")

    def skipped(self, job: Job, existing: Path):
        self.count("skipped", f"skipped {job.source}: {existing} exists (use --overwrite)")

    def failed(self, job: Job, error: Exception):
        self.count("failed", f"failed {job.source}: {type(error).__name__}: {error}")

    def report(self) -> str:
        with self.lock:
            return f"{self.counts['done']} done, {self.counts['skipped']} skipped, {self.counts['failed']} failed"


def write_batch(task: tuple, args, tally: Tally):
    """Write the outputs of one colorized batch, ``task`` = (jobs, pipeline output); a photo counts as done once
    its files are written, and one that cannot be written is reported, the others still written."""
    jobs, output = task
    for position, job in enumerate(jobs):
        try:
            write_job(job, output, position, args)
        except Exception as error:  # noqa: BLE001 - a file that cannot be written is reported, never fatal
            tally.failed(job, error)
        else:
            tally.done(job)
        finally:
            release(job)


def release(job: Job):
    """Drop a finished job's photo, so that a folder of any size holds only the photos in flight."""
    job.image = job.hints = None


def colorize_jobs(pipeline, jobs: list[Job], args, tally: Tally, writer: BackgroundWriter):
    """Colorize ``jobs`` in one call and hand the output to ``writer``; when the call fails, one by one, so that
    only the photo at fault is reported and the others are still done."""
    try:
        output = colorize_batch(pipeline, jobs, args)
    except Exception as error:  # noqa: BLE001 - a photo that fails is reported, never fatal to the batch
        if len(jobs) == 1:
            tally.failed(jobs[0], error)
            release(jobs[0])
        else:
            for job in jobs:
                colorize_jobs(pipeline, [job], args, tally, writer)
        return
    writer.submit((jobs, output))


def share_of_jobs(jobs: list[Job], batch_size: int, state) -> list[Job]:
    """This process's jobs under ``accelerate launch`` (``state``: accelerate's `PartialState`): whole batches of
    the one-process run, contiguous, so every photo is done once, in the batch it would have in one process (a
    photo's seeds never depend on its process: `colorize.seeding`). All the jobs in a single process."""
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    with state.split_between_processes(batches) as mine:
        return [job for batch in mine for job in batch]


def main(argv) -> int:
    """Exit status 0 when every photo was colorized (or skipped as already done), 1 when any failed. Ctrl-C stops
    it: the photos already colorized are written first, none is left half-written. Under ``accelerate launch`` each
    process colorizes its share of the photos, on its own device."""
    from accelerate import PartialState

    parser = build_parser()
    args = parser.parse_args(respell_flags(parser, argv))
    out_dir = Path(args.output_dir)
    state = PartialState(cpu=args.device == "cpu")  # processes on the CPU: accelerate's MULTI_CPU (gloo)
    quiet = not state.is_main_process  # one process says what all of them would say
    jobs = plan_jobs(find_inputs(args.inputs, out_dir, quiet), out_dir, args, quiet)
    jobs = share_of_jobs(jobs, args.batch_size, state)
    if state.num_processes > 1 and state.device.type != "cpu":
        args.device = str(state.device)
    hint_image = read_hint_image(args.hint_image) if args.hint_image is not None else None
    pipeline = load_pipeline(args)
    check_writable(out_dir)
    process = f" (process {state.process_index} of {state.num_processes})" if state.num_processes > 1 else ""
    tally = Tally(len(jobs), process)
    started = time.perf_counter()
    try:
        colorize_all(pipeline, jobs, args, hint_image, tally)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"after {tally.report()}; every file written is whole") from None
    finally:
        tally.progress.close()
    seconds = time.perf_counter() - started
    print(f"{tally.report()}{process}; {seconds / max(tally.counts['done'], 1):.2f} s per image -> {out_dir}")
    return 1 if tally.counts["failed"] else 0


def read_job(job: Job, args, hint_image) -> tuple[Job, Path | Exception | None]:
    """(job, None) with its photo and hints loaded; (job, an existing output) to skip (without ``--overwrite``);
    (job, the error) when the photo cannot be read."""
    existing = [target for target in job.targets if target.exists()]
    if existing and not args.overwrite:
        return job, existing[0]
    try:
        job.image = open_image(job.source)
        job.hints = photo_hints(job.image, args, hint_image)
    except Exception as error:  # noqa: BLE001 - an unreadable photo is reported, never fatal
        return job, error
    return job, None


def colorize_all(pipeline, jobs: list[Job], args, hint_image, tally: Tally):
    """Colorize ``jobs`` in batches of ``--batch-size``, skipping those whose outputs exist (without
    ``--overwrite``) and reporting those that cannot be read. Photos are read ahead and written behind the model in
    two threads (`colorize.cli.overlap`); on any exit, Ctrl-C included, every photo already colorized is written."""
    depth = 2 * args.batch_size
    reads = prefetch((read_job(job, args, hint_image) for job in jobs), depth)
    with closing(reads), BackgroundWriter(lambda task: write_batch(task, args, tally), depth=2) as writer:
        batch = []
        for job, outcome in reads:
            if isinstance(outcome, Path):
                tally.skipped(job, outcome)
            elif outcome is not None:
                tally.failed(job, outcome)
            else:
                batch.append(job)
            if len(batch) == args.batch_size:
                colorize_jobs(pipeline, batch, args, tally, writer)
                batch = []
        if batch:
            colorize_jobs(pipeline, batch, args, tally, writer)
