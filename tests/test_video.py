"""Video: reading and writing clips (PyAV), optical flow, the flicker metrics, `VideoColorizationPipeline` and the
`colorize video` / `colorize evaluate-video` commands, on small clips made on the fly."""

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import colour_image, make_tiny_pipeline
from PIL import Image

from colorize import VideoColorizationPipeline
from colorize.cli import main
from colorize.color import rgb_to_lab
from colorize.evaluation.camera_moves import camera_move
from colorize.evaluation.video_evaluation import DEFAULT_METHODS, PER_FRAME, VIDEO, evaluate_clip
from colorize.evaluation.video_metrics import clip_flow, color_distribution_consistency, warping_error
from colorize.optical_flow import consistent, dis_flow, warp
from colorize.pipeline_colorization import DEFAULT_MODEL
from colorize.video_io import VideoError, VideoWriter, open_video, read_frames

SAMPLE_RATE = 16000


def textured_photo(width: int = 96, height: int = 72, seed: int = 0) -> np.ndarray:
    """A colour photo with texture that optical flow can follow."""
    base = np.asarray(colour_image(width, height, seed=seed), dtype=np.float32)
    rng = np.random.default_rng(seed)
    blobs = np.asarray(Image.fromarray(rng.integers(0, 255, (height // 6, width // 6, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC))
    return np.clip(0.5 * base + 0.5 * blobs, 0, 255).astype(np.uint8)


def write_clip(path, frames, fps=12, audio_codec: str | None = "aac", pts_steps=None):
    """Encode frames (H, W, 3) uint8 to ``path``, with a sine tone of the clip's length in ``audio_codec`` (None: no
    audio); ``pts_steps``: each frame's timestamp in 1/fps units (variable frame rate)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if pts_steps is not None:
            video.codec_context.time_base = Fraction(1, fps)
        audio = None
        if audio_codec:
            audio = container.add_stream(audio_codec, rate=SAMPLE_RATE)
            audio.layout = "mono"
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts_steps is not None:
                frame.pts, frame.time_base = pts_steps[index], Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            seconds = len(frames) / fps
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE)).astype(np.float32)
            samples = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
            samples.sample_rate = SAMPLE_RATE
            container.mux(audio.encode(samples))
            container.mux(audio.encode())
    return path


def streams(path):
    with av.open(str(path)) as container:
        return {stream.type: stream.codec_context.name for stream in container.streams}


@pytest.fixture(scope="module")
def pan_clip():
    return camera_move(textured_photo(), "pan", 8)


def test_a_clip_round_trips_with_its_frames_size_rate_and_audio(tmp_path, pan_clip):
    source = write_clip(tmp_path / "in.mp4", pan_clip)
    info = open_video(source)
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (72, 54, 12, 8, True)
    with VideoWriter(tmp_path / "out.mp4", info) as writer:
        for frame in read_frames(info):
            writer.write(255 - frame.rgb, frame.pts, frame.time_base)
    out = open_video(tmp_path / "out.mp4")
    assert (out.width, out.height, out.fps, out.num_frames) == (72, 54, 12, 8)
    assert streams(tmp_path / "out.mp4") == {"video": "h264", "audio": "aac"}
    assert not list(tmp_path.glob(".*partial*"))


def test_pcm_audio_is_reencoded_for_mp4_and_kept_as_is_in_mkv(tmp_path, pan_clip):
    info = open_video(write_clip(tmp_path / "in.mov", pan_clip[:4], audio_codec="pcm_s16le"))
    for name, codec in (("out.mp4", "aac"), ("out.mkv", "pcm_s16le")):
        with VideoWriter(tmp_path / name, info) as writer:
            for frame in read_frames(info):
                writer.write(frame.rgb, frame.pts, frame.time_base)
        assert streams(tmp_path / name)["audio"] == codec


def test_variable_frame_rate_timestamps_are_kept(tmp_path, pan_clip):
    steps = [0, 1, 2, 4, 5, 8, 9, 10]
    info = open_video(write_clip(tmp_path / "vfr.mp4", pan_clip, audio_codec=None, pts_steps=steps))
    with VideoWriter(tmp_path / "out.mp4", info) as writer:
        for frame in read_frames(info):
            writer.write(frame.rgb, frame.pts, frame.time_base)
    seconds = [float(frame.pts * frame.time_base) for frame in read_frames(open_video(tmp_path / "out.mp4"))]
    assert seconds == pytest.approx([step / 12 for step in steps], abs=1e-3)


def test_a_failure_while_writing_leaves_nothing_under_the_output_name(tmp_path, pan_clip):
    info = open_video(write_clip(tmp_path / "in.mp4", pan_clip))
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "out.mp4", info) as writer:
        writer.write(pan_clip[0])
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == [tmp_path / "in.mp4"]


def test_bad_inputs_are_one_clear_error(tmp_path, pan_clip, monkeypatch):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        open_video(tmp_path / "notes.mp4")
    with av.open(str(tmp_path / "tone.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="flt", layout="mono")
        samples.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match="audio only"):
        open_video(tmp_path / "tone.m4a")
    monkeypatch.setattr("colorize.video_io.MAX_FRAME_PIXELS", 1000)
    with pytest.raises(VideoError, match="above the"):
        open_video(write_clip(tmp_path / "big.mp4", pan_clip[:2], audio_codec=None))


def test_a_truncated_file_is_refused(tmp_path, pan_clip):
    whole = write_clip(tmp_path / "whole.mkv", pan_clip * 3, audio_codec=None).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(VideoError):
        info = open_video(tmp_path / "cut.mkv")
        list(read_frames(info))
    (tmp_path / "cut.mp4").write_bytes(write_clip(tmp_path / "whole.mp4", pan_clip, audio_codec=None).read_bytes()[:-400])
    with pytest.raises(VideoError):
        list(read_frames(open_video(tmp_path / "cut.mp4")))


def test_dis_flow_follows_a_shift_and_marks_what_came_into_view():
    photo = np.array(Image.fromarray(textured_photo()).convert("L"))
    previous, current = photo[:, 8:88], photo[:, 4:84]  # the camera moved 4 px left: content moves 4 px right
    flow = dis_flow(current, previous)
    assert np.median(flow[..., 0][:, 10:-10]) == pytest.approx(-4, abs=0.3)
    assert np.abs(np.median(flow[..., 1])) < 0.3
    mask = consistent(flow, dis_flow(previous, current))
    assert mask[:, 10:].mean() > 0.9 and mask[:, :3].mean() < 0.5  # the left columns were not in the previous frame
    warped = warp(torch.from_numpy(previous)[None, None].float(), torch.from_numpy(flow).permute(2, 0, 1)[None])
    assert np.abs(warped[0, 0].numpy() - current)[:, 10:].mean() < 6


def test_warping_error_and_cdc_are_zero_for_a_still_clip_and_grow_with_flicker(pan_clip):
    still = [pan_clip[0]] * 5
    assert warping_error(still, clip_flow(still, "dis")) == pytest.approx(0, abs=1e-9)
    # Farneback finds sub-pixel motion between identical frames: bilinear resampling leaves a residue of ~3e-7.
    assert warping_error(still, clip_flow(still)) == pytest.approx(0, abs=1e-5) and color_distribution_consistency(still) == 0
    rng = np.random.default_rng(0)
    flicker = [np.clip(frame.astype(int) + rng.integers(-40, 40, 3), 0, 255).astype(np.uint8) for frame in pan_clip]
    flow = clip_flow(pan_clip)
    assert warping_error(flicker, flow) > 5 * warping_error(pan_clip, flow)
    assert color_distribution_consistency(flicker) > color_distribution_consistency(pan_clip)


def lightness_of(frames) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255)[0]


def test_the_video_pipeline_keeps_frames_and_lightness_and_samples_afresh_only_at_cuts(pan_clip):
    pipe = VideoColorizationPipeline.from_pipe(make_tiny_pipeline())
    other = camera_move(textured_photo(seed=5), "zoom", 4)
    clip = pan_clip + other
    out = pipe(clip, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.frames.shape == (12, 54, 72, 3) and out.keyframes == [0, 8]
    frames = [np.round(frame * 255).astype(np.uint8) for frame in out.frames]
    assert (lightness_of(frames) - lightness_of(clip)).abs().mean() * 50 < 1.0  # Lab units, after 8-bit rounding
    images = pipe(torch.from_numpy(np.stack(pan_clip[:3])), num_inference_steps=2).frames
    assert [image.size for image in images] == [(72, 54)] * 3


def test_keyframe_interval_one_is_the_photo_pipeline_frame_by_frame_with_one_seed(pan_clip):
    photo_pipe = make_tiny_pipeline()
    pipe = VideoColorizationPipeline.from_pipe(photo_pipe)
    out = pipe(pan_clip[:3], num_inference_steps=3, keyframe_interval=1, generator=torch.Generator().manual_seed(7),
               output_type="np")
    assert out.keyframes == [0, 1, 2]
    for frame, colour in zip(pan_clip[:3], out.frames):
        alone = photo_pipe(frame, num_inference_steps=3, generator=torch.Generator().manual_seed(7), output_type="np")
        assert np.array_equal(alone.images[0], colour)


def test_frames_stream_through_one_at_a_time(pan_clip):
    pipe = VideoColorizationPipeline.from_pipe(make_tiny_pipeline())
    read = []

    def endless():
        while True:
            read.append(1)
            yield pan_clip[len(read) % len(pan_clip)]

    outputs = list(itertools.islice(pipe.colorize_frames(endless(), num_inference_steps=2), 3))
    assert len(outputs) == 3 and len(read) == 3 and outputs[0].shape == (1, 3, 54, 72)


def test_hints_on_the_first_frame_move_with_the_content(pan_clip):
    pipe = VideoColorizationPipeline.from_pipe(make_tiny_pipeline())
    hints = [(40, 27, "#2060ff")]
    out = pipe(pan_clip, num_inference_steps=3, hints=hints, generator=torch.Generator().manual_seed(0), output_type="np")
    plain = pipe(pan_clip, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np")
    _, hinted = rgb_to_lab(torch.from_numpy(out.frames[-1]).permute(2, 0, 1)[None].float())
    _, free = rgb_to_lab(torch.from_numpy(plain.frames[-1]).permute(2, 0, 1)[None].float())
    assert hinted[0, 1].mean() < free[0, 1].mean() - 0.02  # the last frame is bluer (lower b) than without the hint
    with pytest.raises(ValueError):
        pipe(pan_clip[:2], propagation_weight=2)
    with pytest.raises(ValueError, match="clip"):
        pipe(Image.fromarray(pan_clip[0]))


def test_colorize_video_command_keeps_the_clip_and_never_overwrites(tmp_path, pan_clip, model_dir, capsys):
    source = write_clip(tmp_path / "in.mp4", pan_clip)
    output = tmp_path / "out.mp4"
    arguments = [str(source), "-o", str(output), "--model", str(model_dir), "--num-inference-steps", "2"]
    assert main(["video", *arguments]) == 0
    info = open_video(output)
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (72, 54, 12, 8, True)
    before = output.read_bytes()
    assert main(["video", *arguments]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err and output.read_bytes() == before
    assert main(["video", *arguments, "--overwrite", "--seed", "3"]) == 0 and output.read_bytes() != before


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_colorize_video_refuses_bad_files_in_one_line_leaving_nothing(tmp_path, pan_clip, model_dir, capsys, content):
    source = tmp_path / "in.mp4"
    if content is None:  # truncated: the end of the file, with its index, is gone
        source.write_bytes(write_clip(tmp_path / "whole.mkv", pan_clip * 2).read_bytes()[:3000])
    else:
        source.write_bytes(content)
    output = tmp_path / "out.mp4"
    code = main(["video", str(source), "-o", str(output), "--model", str(model_dir), "--num-inference-steps", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("colorize video: ")
    assert "Traceback" not in err and not output.exists() and not list(tmp_path.glob(".*partial*"))


def test_evaluate_video_reports_flicker_against_per_frame(tmp_path, pan_clip, model_dir, capsys):
    source = write_clip(tmp_path / "clip.mp4", pan_clip, audio_codec=None)
    code = main(["evaluate-video", str(source), "--model", str(model_dir), "--num-inference-steps", "2",
                 "--output-dir", str(tmp_path / "report")])
    assert code == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| truth |" in report and "per-frame, fixed seed" in report and "video (defaults)" in report
    assert Image.open(tmp_path / "report" / "clip_strip.png").size == (72 * 6, 54 * 3)


@pytest.mark.slow
def test_the_shipped_model_flickers_far_less_than_per_frame_and_keeps_its_colours():
    photo = np.asarray(Image.open(sorted((DEFAULT_MODEL.parents[1] / "samples").glob("*.jpg"))[0]).convert("RGB"))
    clip = camera_move(photo[:384, :512], "pan", 10)
    pipe = VideoColorizationPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    results = evaluate_clip(pipe, clip, DEFAULT_METHODS)
    video, per_frame = results[VIDEO].scores, results[PER_FRAME].scores
    assert video["warping_error"] < 0.5 * per_frame["warping_error"]
    assert 0.8 < video["colorfulness"] / per_frame["colorfulness"] < 1.25
    assert results[VIDEO].seconds < results[PER_FRAME].seconds


def test_the_demo_video_tab_colorizes_a_clip_and_refuses_bad_ones_with_a_message(tmp_path, pan_clip, monkeypatch):
    import gradio as gr

    from colorize import demo

    pipe = make_tiny_pipeline()
    source = write_clip(tmp_path / "clip.mp4", pan_clip)
    counts = []
    output = demo.colorize_clip(pipe, str(source), 3, max_upload_mb=20, on_frame=counts.append)
    info = open_video(output)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (8, 72, 54, True) and counts == list(range(1, 9))
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    with pytest.raises(gr.Error, match="not a readable video") as error:
        demo.colorize_clip(pipe, str(fake), 0, max_upload_mb=20)
    assert str(tmp_path) not in str(error.value)
    monkeypatch.setattr(demo, "MAX_VIDEO_FRAMES", 4)
    with pytest.raises(gr.Error, match="8 frames; the limit is 4"):
        demo.colorize_clip(pipe, str(source), 0, max_upload_mb=20)
    with pytest.raises(gr.Error, match="Upload a clip first"):
        demo.colorize_clip(pipe, None, 0, max_upload_mb=20)
