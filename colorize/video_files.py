"""Colorize a clip file into another: frames decoded, colorized by a `VideoColorizationPipeline` and encoded one at a
time (memory does not grow with the clip's length), each at its input timestamp, with the audio. Used by
``colorize video`` and the demo's video tab."""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .pipeline_colorization import to_uint8
from .video_io import VideoInfo, VideoWriter, read_frames


@dataclass
class ColorizedClip:
    """What `colorize_video_file` wrote: the frame count and the frames sampled afresh (the first, scene cuts)."""

    path: Path
    num_frames: int
    keyframes: list[int]


def colorize_video_file(pipe, source: VideoInfo, output, crf: int = 18, on_frame: Callable[[int], None] | None = None,
                        **settings) -> ColorizedClip:
    """Colorize the clip ``source`` (`colorize.video_io.open_video`) into ``output`` with ``pipe`` (a
    `VideoColorizationPipeline`; ``settings`` are its call's arguments), H.264 at ``crf``. ``on_frame(count)`` is
    called after each frame written. On any error nothing is left under ``output``'s name (`VideoWriter`)."""
    timestamps = deque()

    def frames():
        for frame in read_frames(source):
            timestamps.append((frame.pts, frame.time_base))
            yield frame.rgb

    keyframes, count = [], 0
    with VideoWriter(output, source, crf=crf) as writer:
        for rgb in pipe.colorize_frames(frames(), on_keyframe=keyframes.append, **settings):
            pts, time_base = timestamps.popleft()
            writer.write(to_uint8(rgb[0].permute(1, 2, 0).cpu().numpy()), pts, time_base)
            count += 1
            if on_frame is not None:
                on_frame(count)
    return ColorizedClip(Path(output), count, keyframes)
