"""Reading and writing video clips with PyAV (FFmpeg inside its wheel), one frame at a time.

`open_video` checks a file and describes it (`VideoInfo`); `read_frames` decodes its frames as RGB arrays, one
at a time, so memory does not grow with the clip's length; `VideoWriter` encodes frames with their own timestamps
(the input's frame rate, variable or not, is kept) and carries the input's audio over, interleaved as it goes.
The writer works on a hidden partial file beside the output and renames it only once the clip is complete: a
failure never leaves anything under the output's name.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Frames above this many pixels (8K UHD is 33.2 MP) are refused before decoding: each one costs about 60 bytes a
# pixel on the way through the pipeline.
MAX_FRAME_PIXELS = 40_000_000

# Audio codecs an MP4 / MOV file can hold as they are; others (PCM, ...) are re-encoded to AAC there.
MP4_AUDIO_CODECS = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


class VideoError(ValueError):
    """A clip that cannot be read or written; the message is one line for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What `open_video` learns about a clip before decoding it."""

    path: Path
    width: int
    height: int
    fps: Fraction  # the stream's average frame rate
    num_frames: int  # as the container declares it; 0 when it does not say
    has_audio: bool
    duration: float = 0.0  # seconds of video the container declares; 0 when it does not say


def open_video(path) -> VideoInfo:
    """The `VideoInfo` of the clip at ``path``; `VideoError` in one line when it is missing, not a media file, has
    no video stream (audio only), or frames too large to colorize."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                what = "audio only" if container.streams.audio else "no streams"
                raise VideoError(f"{path}: has no video stream ({what}).")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = stream.average_rate or stream.guessed_rate or Fraction(25)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:  # the container's length, which may include a longer audio track
                duration = (container.duration or 0) / av.time_base
            info = VideoInfo(path, width, height, Fraction(fps), int(stream.frames or 0), bool(container.streams.audio),
                             duration)
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: not a readable video ({error.strerror or type(error).__name__}).") from None
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: the video stream has no frame size.")
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(f"{path}: frames of {width} x {height} are above the {MAX_FRAME_PIXELS / 1e6:.0f} MP limit.")
    return info


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its RGB pixels (H, W, 3) uint8 and its timestamp (``pts`` in units of ``time_base``)."""

    rgb: np.ndarray
    pts: int | None
    time_base: Fraction | None


# A clip whose decoded frames end before this fraction of its declared duration (less half a second) is truncated.
TRUNCATED_FRACTION = 0.9


def read_frames(info: VideoInfo) -> Iterator[Frame]:
    """The clip's frames in display order, decoded one at a time. `VideoError` when decoding fails part-way, when
    the file holds no frame, or when it ends before the frame count or the duration its container declares (a
    truncated file)."""
    count, end = 0, 0.0
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                count += 1
                if frame.pts is not None and frame.time_base is not None:
                    end = float(frame.pts * frame.time_base) + 1 / float(info.fps)
                yield Frame(frame.to_ndarray(format="rgb24"), frame.pts, frame.time_base)
    except av.error.FFmpegError as error:
        raise VideoError(f"{info.path}: decoding failed after {count} frames ({error.strerror or type(error).__name__}): "
                         "a truncated or damaged file?") from None
    if count == 0:
        raise VideoError(f"{info.path}: the video stream holds no frames.")
    if info.num_frames and count < info.num_frames:
        raise VideoError(f"{info.path}: only {count} of its {info.num_frames} frames could be decoded (a truncated file?).")
    if end and end < TRUNCATED_FRACTION * info.duration - 0.5:
        raise VideoError(f"{info.path}: the frames end at {end:.1f} s of the {info.duration:.1f} s the file declares "
                         "(a truncated file?).")


def partial_path(path: Path) -> Path:
    """The hidden file beside ``path`` that a clip is written to until it is complete."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class VideoWriter:
    """Encodes frames to ``path`` (H.264, the container from its suffix) at the input's size, frame rate and
    timestamps, with the input's audio: a context manager that renames the finished file into place on success and
    deletes it on any error. ``source`` is the `VideoInfo` of the input clip."""

    def __init__(self, path, source: VideoInfo, crf: int = 18):
        self.path = Path(path)
        self.source = source
        self.partial = partial_path(self.path)
        self.crf = crf
        self.container = None

    def __enter__(self):
        try:
            self.container = av.open(str(self.partial), mode="w")
        except (av.error.FFmpegError, ValueError) as error:
            raise VideoError(f"{self.path}: cannot write a video there ({error}).") from None
        try:
            self.input = av.open(str(self.source.path))
            self.video = self._add_video_stream()
            self.audio_packets, self.audio = self._add_audio_stream()
        except BaseException:
            self._discard()
            raise
        self.pending_audio = None
        return self

    def _add_video_stream(self):
        source = self.input.streams.video[0]
        even = self.source.width % 2 == 0 and self.source.height % 2 == 0
        stream = self.container.add_stream("libx264", rate=self.source.fps)
        stream.width, stream.height = self.source.width, self.source.height
        # 4:2:0 needs even sides; odd frame sizes keep every pixel with 4:4:4 (High 4:4:4 profile).
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        stream.time_base = source.time_base
        stream.codec_context.time_base = source.time_base
        stream.options = {"crf": str(self.crf), "preset": "medium"}
        return stream

    def _add_audio_stream(self):
        """The input's first audio stream, copied as it is where the output container can hold its codec, else
        re-encoded to AAC; (None, None) without audio."""
        self.reencode_audio = False
        if not self.input.streams.audio:
            return None, None
        source = self.input.streams.audio[0]
        mp4_like = self.path.suffix.lower() in (".mp4", ".m4v", ".mov")
        if mp4_like and source.codec_context.name not in MP4_AUDIO_CODECS:
            stream = self.container.add_stream("aac", rate=source.codec_context.sample_rate)
            stream.layout = source.codec_context.layout
            self.reencode_audio = True
            return self._decoded_audio(source), stream
        stream = self.container.add_stream_from_template(source)
        return self.input.demux(source), stream

    def _decoded_audio(self, source):
        for packet in self.input.demux(source):
            yield from packet.decode()

    def _mux_audio_until(self, seconds: float | None):
        """Writes the input's audio up to ``seconds`` (all that is left: None), so that audio and video interleave."""
        if self.audio is None:
            return
        while True:
            item = self.pending_audio if self.pending_audio is not None else next(self.audio_packets, None)
            self.pending_audio = None
            if item is None:
                return
            if isinstance(item, av.Packet) and item.dts is None:  # the demuxer's flush packet
                continue
            start = float(item.pts * item.time_base) if item.pts is not None else 0.0
            if seconds is not None and start > seconds:
                self.pending_audio = item
                return
            if isinstance(item, av.Packet):
                item.stream = self.audio
                self.container.mux(item)
            else:
                item.pts = None
                self.container.mux(self.audio.encode(item))

    def write(self, rgb: np.ndarray, pts: int | None = None, time_base: Fraction | None = None):
        """Encodes one RGB frame (H, W, 3) uint8 at its input timestamp (None: the next one at the clip's rate)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if pts is not None:
            frame.pts, frame.time_base = pts, time_base
            self._mux_audio_until(float(pts * time_base))
        self.container.mux(self.video.encode(frame))

    def _discard(self):
        """Closes what is open, ignoring errors, and deletes the partial file."""
        for container in (self.container, getattr(self, "input", None)):
            try:
                if container is not None:
                    container.close()
            except Exception:  # noqa: BLE001 - already failing: the first error is the one to report
                pass
        self.partial.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            self._discard()
            return False
        try:
            self.container.mux(self.video.encode())  # what the encoder still holds
            self._mux_audio_until(None)
            if self.reencode_audio:
                self.container.mux(self.audio.encode())
            self.container.close()
            self.input.close()
        except BaseException:
            self._discard()
            raise
        os.replace(self.partial, self.path)
        return False
