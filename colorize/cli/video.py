"""`colorize video IN -o OUT.mp4`: colorize a clip without flicker (`VideoColorizationPipeline`), frame by frame as it
is decoded, keeping its frame count, size, timestamps (frame rate) and audio; never over an existing file without
``--overwrite``, and nothing left under the output's name when it fails."""

import argparse
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..pipeline_video_colorization import (
    DEFAULT_KEYFRAME_INTERVAL,
    DEFAULT_PROPAGATION_STRENGTH,
    DEFAULT_PROPAGATION_WEIGHT,
    DEFAULT_VIDEO_NUM_INFERENCE_STEPS,
    VideoColorizationPipeline,
)
from ..settings import argument_type, check_strength
from ..video_files import colorize_video_file
from ..video_io import VideoError, open_video
from .errors import CommandError
from .options import add_model_arguments, load_pipeline
from .photos import hint_argument

# Containers written (H.264 video); the output's suffix picks one.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize video",
        description="Colorize a grayscale video clip without flicker: keyframes are colorized as photos are, and each "
        "following frame's colours are carried along the optical flow and refined in a few steps. The output keeps "
        "the input's frame count, size, frame rate (timestamps) and audio, and each frame its own lightness.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="The clip to colorize (any format FFmpeg reads).")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help=f"The colorized clip, H.264 in the container its suffix names ({', '.join(sorted(VIDEO_SUFFIXES))}).")
    add_model_arguments(parser, default_steps=DEFAULT_VIDEO_NUM_INFERENCE_STEPS)
    parser.add_argument("--overwrite", action="store_true", help="Replace the output file if it exists.")
    parser.add_argument(
        "--propagation-strength", type=argument_type(check_strength), default=DEFAULT_PROPAGATION_STRENGTH,
        help="How far along the noise schedule each frame's carried colours are noised before the model refines "
        "them: lower is steadier and faster; 1 samples every frame afresh.",
    )
    parser.add_argument("--propagation-weight", type=float, default=DEFAULT_PROPAGATION_WEIGHT,
                        help="How strongly each refinement step is pulled onto the carried colours where the flow is "
                        "trusted (0 to 1).")
    parser.add_argument("--keyframe-interval", type=int, default=DEFAULT_KEYFRAME_INTERVAL,
                        help="Also sample a frame afresh every N frames (default: only the first frame and scene "
                        "cuts; 1: every frame, the per-frame colorizer).")
    parser.add_argument("--hint", action="append", type=hint_argument, default=[], metavar="X,Y,COLOR",
                        help="A colour you know in the first frame (X,Y from its top left, COLOR #rrggbb or a name); "
                        "it moves with the content through the clip. Repeatable.")
    parser.add_argument("--crf", type=int, default=18, help="H.264 quality (0 lossless, 18 visually lossless, 51 worst).")
    return parser


def check_paths(args) -> None:
    """`CommandError` for an output that cannot be written as asked."""
    if args.output.suffix.lower() not in VIDEO_SUFFIXES:
        raise CommandError(f"{args.output}: the output must end in one of {', '.join(sorted(VIDEO_SUFFIXES))}.")
    if args.output.exists() and args.output.resolve() == args.input.resolve():
        raise CommandError(f"{args.output}: the output would replace the input.")
    if args.output.exists() and not args.overwrite:
        raise CommandError(f"{args.output} exists: pass --overwrite to replace it.")
    if args.output.is_dir():
        raise CommandError(f"{args.output} is a folder: name the output file.")
    if not args.output.parent.is_dir():
        raise CommandError(f"{args.output.parent}: no such folder.")
    if not 0 <= args.crf <= 51:
        raise CommandError(f"--crf must be in 0..51, got {args.crf}.")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_paths(args)
    try:
        info = open_video(args.input)
    except VideoError as error:
        raise CommandError(str(error)) from None
    pipe = VideoColorizationPipeline.from_pipe(load_pipeline(args))
    pipe.set_progress_bar_config(disable=True)
    settings = dict(num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
                    generator=torch.Generator().manual_seed(args.seed), hints=args.hint or None,
                    saturation=args.saturation, strength=args.strength, working_size=args.working_size,
                    propagation_strength=args.propagation_strength, propagation_weight=args.propagation_weight,
                    keyframe_interval=args.keyframe_interval)
    try:
        with tqdm(total=info.num_frames or None, unit="frame", desc=args.input.name) as bar:
            clip = colorize_video_file(pipe, info, args.output, crf=args.crf, on_frame=lambda _: bar.update(), **settings)
    except (VideoError, ValueError) as error:
        raise CommandError(str(error)) from None
    print(f"wrote {args.output}: {clip.num_frames} frames, {len(clip.keyframes)} sampled afresh (the first and scene "
          f"cuts), {bar.format_dict['elapsed'] / max(clip.num_frames, 1):.2f} s a frame")
    return 0
