"""`colorize evaluate-video CLIPS...`: how steady and how colourful a model's video colorization is, against
colorizing each frame alone (`colorize.evaluation.video_evaluation`)."""

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from ..evaluation.video_evaluation import DEFAULT_METHODS, PER_FRAME, evaluate_clip, strip, summary_table
from ..pipeline_video_colorization import DEFAULT_VIDEO_NUM_INFERENCE_STEPS, VideoColorizationPipeline
from ..video_io import VideoError, open_video, read_frames
from .errors import CommandError
from .options import add_model_arguments, load_pipeline


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize evaluate-video",
        description="Score video colorization on colour clips: each is turned gray and colorized frame by frame (one "
        "fixed seed) and as a clip (`colorize video`'s defaults); reports warping error and CDC (flicker: lower is "
        "steadier; the true clip's own values are the floor), colourfulness, lightness change and seconds per frame.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("clips", nargs="+", type=Path, help="Colour video clips (the ground truth).")
    parser.add_argument("--max-frames", type=int, default=48, help="Frames scored from the start of each clip.")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/evaluate_video"),
                        help="Where report.md and a strip per clip (truth, per-frame, video) are written.")
    add_model_arguments(parser, default_steps=DEFAULT_VIDEO_NUM_INFERENCE_STEPS)
    return parser


def first_frames(path: Path, count: int) -> list:
    """Up to ``count`` RGB frames from the start of a clip; `CommandError` when it cannot be read."""
    frames = []
    try:
        for frame in read_frames(open_video(path)):
            frames.append(frame.rgb)
            if len(frames) == count:
                break
    except VideoError as error:
        raise CommandError(str(error)) from None
    return frames


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames < 2:
        raise CommandError(f"--max-frames must be at least 2, got {args.max_frames}.")
    pipe = VideoColorizationPipeline.from_pipe(load_pipeline(args))
    pipe.set_progress_bar_config(disable=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = dict(num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
                    saturation=args.saturation, strength=args.strength, working_size=args.working_size)
    methods = {name: {**method, **settings} for name, method in DEFAULT_METHODS.items()}
    results = {}
    for path in tqdm(args.clips, unit="clip"):
        results[path.name] = evaluate_clip(pipe, first_frames(path, args.max_frames), methods, args.seed)
        strip(results[path.name]).save(args.output_dir / f"{path.stem}_strip.png")
    report = "\n".join([f"# Video colorization: {args.model}", "", *summary_table(results, PER_FRAME), ""])
    (args.output_dir / "report.md").write_text(report)
    print(report)
    return 0
