"""The ``colorize`` command: colorize photos, files, folders or globs, with a saved pipeline."""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .color import rgb_to_gray
from .data import is_grayscale, list_image_files, open_image, pil_to_tensor
from .pipeline_colorization import DEFAULT_MODEL
from .visualize import STRIP_FRAMES, denoising_strip, make_grid, tensor_to_pil

# The repository this package was installed from (editable install): training script and accelerate config.
ROOT = Path(__file__).resolve().parent.parent
# Output keeps the input's format family; formats PIL cannot write in RGB become PNG.
WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def find_images(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(source file, output path relative to the output folder) for every image named by ``inputs``."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend((file, file.relative_to(path)) for file in list_image_files(path))
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


def save_atomically(image: Image.Image | list[Image.Image], path: Path):
    """Write to a temporary file beside ``path`` and rename it, so no half-written file is ever left.
    A list of images is written as an animation (GIF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if isinstance(image, list):
            image[0].save(temporary, format="GIF", save_all=True, append_images=image[1:], duration=80, loop=0)
        else:
            image.save(temporary, format=Image.registered_extensions()[path.suffix.lower()], quality=95)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def side_by_side(original: Image.Image, colorized: Image.Image) -> Image.Image:
    """gray | colorized | original in one picture at the photo's own height (no original column for gray input)."""
    gray = tensor_to_pil(rgb_to_gray(pil_to_tensor(original)))
    row = [gray, colorized] if is_grayscale(original) else [gray, colorized, original]
    return make_grid([row], height=original.height, gap=8)


def load_pipeline(model: str, scheduler: str | None, device: str):
    from .pipeline_colorization import ColorizationPipeline, scheduler_from_name

    looks_local = model.startswith(("/", ".", "~")) or model.count("/") != 1
    if looks_local and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"no pipeline folder at {model}")
    # Weights only from safetensors (never a pickle); no remote code is ever run.
    pipeline = ColorizationPipeline.from_pretrained(Path(model).expanduser() if looks_local else model, use_safetensors=True)
    if scheduler is not None:
        pipeline.scheduler = scheduler_from_name(scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def add_model_arguments(parser: argparse.ArgumentParser):
    """Options shared by every command that runs a pipeline."""
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
        "--side-by-side", action="store_true",
        help="Write gray input | colorized | original (when the input has colour) side by side, at full size, "
        "instead of the colorized image alone.",
    )
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize evaluate",
        description="Turn each colour photo of DATA_DIR gray, colorize it at full resolution and score it against "
        "the original: PSNR, SSIM, AuC (ab error), colourfulness, and the same for the gray input. Writes "
        "OUT/metrics.json, OUT/per_image.csv and OUT/report.md with sample pictures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("data_dir", help="A folder of colour photos (class sub-folders allowed) or a text file of paths.")
    parser.add_argument("--output-dir", required=True, help="Where metrics.json and report.md are written.")
    add_model_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="Score only the first K photos (sorted by path).")
    parser.add_argument("--num-samples", type=int, default=1, help="Colorizations per photo (adds psnr_best_of_n).")
    parser.add_argument("--batch-size", type=int, default=1, help="Photos per pipeline call.")
    return parser


@dataclass
class Job:
    """One input photo: where it comes from, where its colorized sample(s) and denoising picture go."""

    source: Path
    targets: list[Path]
    intermediates: Path | None
    image: Image.Image | None = None


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
        [job.image for job in jobs], num_inference_steps=args.num_inference_steps, generator=generators,
        num_images_per_prompt=count, return_intermediates=bool(args.save_intermediates),
        num_intermediates=STRIP_FRAMES if args.save_intermediates == "png" else None,
    )
    for position, job in enumerate(jobs):
        for k, target in enumerate(job.targets):
            sample = output.images[position * count + k]
            save_atomically(side_by_side(job.image, sample) if args.side_by_side else sample, target)
        if job.intermediates is not None:
            frames = [step[position * count] for step in output.intermediates]
            save_atomically(denoising_picture(frames, args.save_intermediates), job.intermediates)


def colorize_files(argv) -> int:
    args = build_parser().parse_args(argv)
    try:
        inputs = find_images(args.inputs)
    except FileNotFoundError as error:
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
    for source, relative in inputs:
        job = plan_job(source, relative, out_dir, args)
        existing = [target for target in job.targets if target.exists()]
        if existing and not args.overwrite:
            tqdm.write(f"skipped {source}: {existing[0]} exists (use --overwrite)")
            counts["skipped"] += 1
            progress.update(1)
            continue
        try:
            job.image = open_image(source)
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


def evaluate_folder(argv) -> int:
    from .evaluate import evaluate

    args = build_evaluate_parser().parse_args(argv)
    pipeline = load_pipeline_or_exit(args)
    if pipeline is None:
        return 2
    try:
        metrics = evaluate(
            pipeline, args.data_dir, args.output_dir, model_name=args.model,
            num_inference_steps=args.num_inference_steps, seed=args.seed, limit=args.limit,
            num_samples=args.num_samples, batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"colorize evaluate: {error}", file=sys.stderr)
        return 2
    print(
        f"{metrics['num_images']} photos ({metrics['num_skipped']} skipped): PSNR {metrics['psnr']:.2f} dB "
        f"(gray {metrics['gray_psnr']:.2f}), SSIM {metrics['ssim']:.3f}, AuC {metrics['auc']:.3f} "
        f"(gray {metrics['gray_auc']:.3f}), colourfulness ratio {metrics['colorfulness_ratio']:.2f}; "
        f"{metrics['seconds_per_image']:.2f} s per photo -> {Path(args.output_dir) / 'report.md'}"
    )
    return 0


def build_prepare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize prepare",
        description="Check every image of SOURCE (decodable, colour, not tiny, no exact duplicate), write a "
        "deterministic train / validation / test split stratified by class (manifest.csv with sha256 hashes, "
        "train.txt, validation.txt, test.txt) and a data report (data_report.md / .json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", help="A folder of colour photos (class sub-folders allowed), a text file of "
                        "image paths, or a Hugging Face dataset id.")
    parser.add_argument("--output-dir", required=True, help="Where the manifest, split lists and report go.")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="Share of images for validation.")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="Share of images for the test split.")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the split.")
    parser.add_argument("--min-size", type=int, default=32, help="Drop images whose shorter side is smaller.")
    parser.add_argument("--image-column", default="image", help="Image column of a Hub dataset.")
    parser.add_argument("--dataset-config", default=None, help="Config name of a Hub dataset.")
    return parser


def prepare_data(argv) -> int:
    from .prepare import prepare

    args = build_prepare_parser().parse_args(argv)
    try:
        report = prepare(args.source, args.output_dir, args.validation_fraction, args.test_fraction, args.seed,
                         args.min_size, args.image_column, args.dataset_config)
    except (OSError, ValueError) as error:
        print(f"colorize prepare: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{count} {split}" for split, count in report["splits"].items())
    dropped = ", ".join(f"{count} {reason}" for reason, count in report["dropped"].items()) or "none"
    print(f"{report['num_kept']} of {report['num_source_images']} images kept ({splits}); dropped: {dropped} "
          f"-> {Path(args.output_dir) / 'data_report.md'}")
    return 0


def train_model(argv) -> int:
    """`colorize train [--accelerate-config F] ARGS...`: `accelerate launch train_colorization.py ARGS...`."""
    parser = argparse.ArgumentParser(
        prog="colorize train", add_help=False,
        description="Run train_colorization.py under `accelerate launch`; every other argument goes to the script "
        "(see `colorize train --help-script`).",
    )
    parser.add_argument("--accelerate-config", default=str(ROOT / "accelerate_config.yaml"),
                        help="accelerate config file (default: the repository's).")
    parser.add_argument("--help-script", action="store_true", help="Show train_colorization.py's options.")
    parser.add_argument("-h", "--help", action="store_true", help="Show this help.")
    args, script_args = parser.parse_known_args(argv)
    if args.help:
        parser.print_help()
        return 0
    script = ROOT / "train_colorization.py"
    if not script.is_file():
        print(f"colorize train: {script} not found (it ships with a clone of the repository)", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate_config,
               str(script), *(["--help"] if args.help_script else script_args)]
    return subprocess.run(command).returncode


def build_publish_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize publish",
        description="Export a trained pipeline folder (fp16 safetensors by default) with a Hub model card built from "
        "`colorize evaluate` results and the training budget records, then push it to the Hub when --repo-id is "
        "given; without it, only prepare the folder and list what would be pushed (dry run).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="The trained pipeline folder (train_colorization.py's --output_dir).")
    parser.add_argument("--output-dir", required=True, help="Where the published folder is written.")
    parser.add_argument("--evaluation", default=None, help="A `colorize evaluate` output folder, for metrics and grid.")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"], help="Precision of the saved weights.")
    parser.add_argument("--title", default="Colorization diffusion model", help="The model card's title.")
    parser.add_argument("--description", default="A diffusion model that colorizes grayscale photos.",
                        help="The model card's first paragraph.")
    parser.add_argument("--dataset", default=None, help="Training dataset name or Hub id, for the card metadata.")
    parser.add_argument("--dataset-description", default="", help="Markdown: the training data, its split, licence.")
    parser.add_argument("--license", default="apache-2.0", help="Licence of the weights (Hub licence id).")
    parser.add_argument("--repo-id", default=None, help="Hub repository to push to; omit for a dry run.")
    parser.add_argument("--token", default=None, help="Hub token; default: the one `hf auth login` stored.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output-dir, replacing files of the same name.")
    parser.add_argument("--params", default=None, help="A pipeline params.yaml: its `publish` section sets the "
                        "defaults of these options (e.g. title, dataset_description, repo_id).")
    return parser


def parse_with_params(parser: argparse.ArgumentParser, argv, section: str) -> argparse.Namespace:
    """Parse ``argv``; the ``section`` of the file given by ``--params`` supplies the defaults."""
    import yaml

    args, _ = parser.parse_known_args(argv)
    if args.params:
        values = yaml.safe_load(Path(args.params).read_text()).get(section) or {}
        unknown = sorted(set(values) - {action.dest for action in parser._actions})
        if unknown:
            parser.error(f"{args.params}: unknown keys in section '{section}': {', '.join(unknown)}")
        parser.set_defaults(**values)
    return parser.parse_args(argv)


def publish_model(argv) -> int:
    from .publish import Provenance, publish

    args = parse_with_params(build_publish_parser(), argv, "publish")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        print(f"colorize publish: {output_dir} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    provenance = Provenance(args.title, args.description, args.dataset, args.dataset_description, args.license)
    try:
        files = publish(args.model, output_dir, provenance, evaluation_dir=args.evaluation, dtype=args.dtype,
                        repo_id=args.repo_id, token=args.token, private=args.private or None)
    except (OSError, ValueError) as error:
        print(f"colorize publish: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    size = sum((output_dir / name).stat().st_size for name in files) / 2**20
    where = f"pushed to https://huggingface.co/{args.repo_id}" if args.repo_id else "dry run, nothing pushed"
    print(f"{len(files)} files, {size:.1f} MiB in {output_dir} ({where}):")
    for name in files:
        print(f"  {name}")
    return 0


def build_demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize demo",
        description="Start the Gradio web demo (needs the demo extra: pip install -e \".[demo]\").",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="Interface to listen on; 127.0.0.1 keeps it to this machine, 0.0.0.0 opens it to the network.")
    parser.add_argument("--port", type=int, default=7860, help="Port to listen on.")
    parser.add_argument("--max-upload-mb", type=float, default=20, help="Largest accepted upload, in MB.")
    return parser


def run_demo(argv) -> int:
    args = build_demo_parser().parse_args(argv)
    try:
        from .demo import build_demo
    except ImportError as error:
        print(f'colorize demo: {error}; install the demo extra: pip install -e ".[demo]"', file=sys.stderr)
        return 2
    pipeline = load_pipeline_or_exit(args)
    if pipeline is None:
        return 2
    demo = build_demo(pipeline, args.model, args.max_upload_mb, args.num_inference_steps)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=int(args.max_upload_mb * 2**20), share=False)
    return 0


def load_pipeline_or_exit(args):
    """The pipeline named by ``args``, or None after one line on stderr saying why it cannot load."""
    try:
        return load_pipeline(args.model, args.scheduler, args.device)
    except Exception as error:
        print(f"colorize: cannot load the model '{args.model}': {type(error).__name__}: {error}", file=sys.stderr)
        return None


COMMANDS = {
    "prepare": prepare_data, "train": train_model, "evaluate": evaluate_folder, "publish": publish_model, "demo": run_demo,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return colorize_files(argv)


if __name__ == "__main__":
    sys.exit(main())
