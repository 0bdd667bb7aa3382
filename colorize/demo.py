"""The web demo that `colorize demo` serves: a Gradio app (`build_demo`). Upload a photo (or pick a bundled
example) and see it colorized beside its gray version at full resolution, with several samples as a gallery and
the denoising steps as a strip. Click on the gray photo to pin a colour there (a hint, `colorize.hints`); the
hints are listed and can be cleared. A second tab colorizes a short clip without flicker
(`VideoColorizationPipeline`), keeping its frame rate and audio.

Needs the ``demo`` extra (``pip install -e ".[demo]"``). Uploads over ``max_upload_mb`` or `MAX_PIXELS`, settings
outside the page's ranges (checked on the server, whether they come from the page or the API) and requests over
the budget (`MAX_OUTPUT_PIXELS`) are refused with a one-line message; the server keeps serving.
"""

import math
import os
import tempfile
from pathlib import Path

from PIL import Image

from .color import rgb_to_lab
from .hints import parse_color
from .image_io import find_images, open_image, pil_to_tensor
from .image_processing import pick_frames
from .pipeline_colorization import DEFAULT_GUIDANCE_SCALE, DEFAULT_MODEL
from .pipeline_video_colorization import VideoColorizationPipeline
from .seeding import sample_generators
from .video_files import colorize_video_file
from .video_io import VideoError, open_video
from .visualize import STRIP_FRAMES, gray_picture, make_grid, tensor_to_pil

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MAX_PIXELS = 40_000_000  # 40 MP: bigger photos are refused with a message, not run out of memory
# A request's budget: what it composes at full resolution (photo pixels x samples) and what it denoises (steps x
# samples on the model's working grid) are capped, so that the largest request inside the limits fits in memory
# (tests/test_demo.py measures its peak) and holds the single-worker queue for a bounded time.
MAX_OUTPUT_PIXELS = 40_000_000
MAX_SAMPLES = 8
MAX_STEPS = 100
MAX_GUIDANCE_SCALE = 5.0
MAX_SATURATION = 2.0
MAX_HINTS = 64
MAX_SEED = 2**31 - 1
STRIP_HEIGHT = 128  # the denoising strip is composed at this height, for the first sample only
# A clip's budget: about three minutes of a CPU's time at 1080p or less (benchmarks/README.md: 0.5-0.8 s a frame).
MAX_VIDEO_FRAMES = 300
MAX_VIDEO_FRAME_PIXELS = 1920 * 1088


def without_server_paths(error: Exception, path: str) -> str:
    """``error``'s message with the upload's server path named "the upload" and its folder left out."""
    return str(error).replace(str(path), "the upload").replace(os.path.dirname(str(path)), "")


def check_upload(path: str | None, max_upload_mb: float, missing: str) -> None:
    """``gradio.Error`` with the message ``missing`` when there is no upload, or when it is over ``max_upload_mb``."""
    import gradio as gr

    if path is None:
        raise gr.Error(missing)
    size_mb = os.path.getsize(path) / 2**20
    if size_mb > max_upload_mb:
        raise gr.Error(f"This file is {size_mb:.1f} MB; the limit is {max_upload_mb:g} MB.")


def read_upload(path: str | None, max_upload_mb: float):
    """The uploaded photo as a PIL image; ``gradio.Error`` with a message for the user when it cannot be used
    (never naming the server's own files)."""
    import gradio as gr

    check_upload(path, max_upload_mb, "Upload a photo first (or click one of the examples).")
    try:
        width, height = _header_size(path)
        if width * height > MAX_PIXELS:
            raise gr.Error(f"This photo is {width} x {height} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels.")
        image = open_image(path)
    except gr.Error:
        raise
    except Exception as error:  # PIL raises many types for unreadable files
        reason = without_server_paths(error, path)
        raise gr.Error(f"Cannot read this file as an image ({type(error).__name__}: {reason}).") from error
    return image


def checked_number(value, name: str, low: float, high: float, whole: bool = False) -> float | int:
    """``value`` as a number from ``low`` to ``high`` (a whole one with ``whole``); ``gradio.Error`` naming the
    setting otherwise. Requests through the API skip the page's sliders: every setting is checked here."""
    import gradio as gr

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not low <= number <= high or (whole and number != int(number)):
        kind, bounds = ("a whole number", (int(low), int(high))) if whole else ("a number", (f"{low:g}", f"{high:g}"))
        raise gr.Error(f"{name} must be {kind} from {bounds[0]} to {bounds[1]}, got {value!r}.")
    return int(number) if whole else number


def check_budget(image, samples: int):
    """``gradio.Error`` when a request would compose more than `MAX_OUTPUT_PIXELS` at full resolution."""
    import gradio as gr

    pixels = image.width * image.height
    if pixels * samples > MAX_OUTPUT_PIXELS:
        most = max(1, MAX_OUTPUT_PIXELS // pixels)
        raise gr.Error(f"{samples} samples of a {pixels / 1e6:.1f}-megapixel photo is over this demo's "
                       f"{MAX_OUTPUT_PIXELS / 1e6:.0f} megapixels per request: ask for at most {most}.")


class StepRecorder:
    """A ``callback_on_step_end`` keeping the first sample's latents after each step (the small working grid)."""

    def __init__(self):
        self.latents = []

    def __call__(self, pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        self.latents.append(callback_kwargs["latents"][:1].float().cpu().clone())
        return callback_kwargs


def denoising_picture(pipeline, image, latents: list, saturation: float | None):
    """The strip of `STRIP_FRAMES` steps of the first sample, composed at `STRIP_HEIGHT` (not at full size)."""
    small = image.resize((max(1, round(image.width * STRIP_HEIGHT / image.height)), STRIP_HEIGHT),
                         Image.Resampling.BICUBIC)
    lightness, _ = rgb_to_lab(pil_to_tensor(small)[None])
    frames = [tensor_to_pil(pipeline.decode_latents(step, lightness, saturation)[0])
              for step in pick_frames(latents, STRIP_FRAMES)]
    return make_grid([frames], height=STRIP_HEIGHT)


def colorize_photo(pipeline, path: str | None, steps, seed, samples, max_upload_mb: float,
                   guidance_scale=DEFAULT_GUIDANCE_SCALE, hints: list | None = None, saturation=None,
                   strength: float | None = None):
    """(gray input, first colorization, every colorization, denoising strip) for the photo at ``path``, with the
    colour ``hints`` [(x, y, "#rrggbb"), ...] placed on it; ``saturation`` and ``strength`` None: the model's own.

    Raises ``gradio.Error`` with a message for the user when the upload or a setting cannot be used."""
    import gradio as gr

    steps = checked_number(steps, "Denoising steps", 1, MAX_STEPS, whole=True)
    seed = checked_number(seed, "Seed", 0, MAX_SEED, whole=True)
    samples = checked_number(samples, "Samples", 1, MAX_SAMPLES, whole=True)
    guidance_scale = checked_number(guidance_scale, "Guidance scale", 0, MAX_GUIDANCE_SCALE)
    if saturation is not None:
        saturation = checked_number(saturation, "Saturation", 0, MAX_SATURATION)
    hints = hints or []
    if not isinstance(hints, list) or len(hints) > MAX_HINTS:
        raise gr.Error(f"Hints must be a list of at most {MAX_HINTS} [x, y, colour].")
    image = read_upload(path, max_upload_mb)
    check_budget(image, samples)
    recorder = StepRecorder()
    try:
        output = pipeline(image, num_inference_steps=steps, guidance_scale=guidance_scale,
                          generator=sample_generators(seed, 1, samples), num_images_per_prompt=samples,
                          callback_on_step_end=recorder, hints=[tuple(hint) for hint in hints],
                          saturation=saturation, strength=strength)
    except ValueError as error:  # a hint that does not fit this photo
        raise gr.Error(str(error).splitlines()[0]) from error
    strip = denoising_picture(pipeline, image, recorder.latents, saturation)
    return gray_picture(image), output.images[0], output.images, strip


def read_clip(path: str | None, max_upload_mb: float):
    """The uploaded clip's `VideoInfo`; ``gradio.Error`` with a message for the user when it cannot be used (not a
    video, too large, too long, frames too big), never naming the server's own files."""
    import gradio as gr

    check_upload(path, max_upload_mb, "Upload a clip first.")
    try:
        info = open_video(path)
    except VideoError as error:
        raise gr.Error(without_server_paths(error, path)) from None
    if info.width * info.height > MAX_VIDEO_FRAME_PIXELS:
        raise gr.Error(f"This clip's frames are {info.width} x {info.height}; the limit is 1920 x 1080.")
    num_frames = max(info.num_frames, round(info.duration * float(info.fps)))
    if num_frames == 0:
        raise gr.Error("This clip does not say how long it is; re-encode it (e.g. to MP4) and upload it again.")
    if num_frames > MAX_VIDEO_FRAMES:
        raise gr.Error(f"This clip has {num_frames} frames; the limit is {MAX_VIDEO_FRAMES} (cut it shorter).")
    return info


def colorize_clip(pipeline, path: str | None, seed, max_upload_mb: float, on_frame=None) -> str:
    """The path of the colorized clip (an MP4 in a new temporary folder) of the clip at ``path``, by
    `VideoColorizationPipeline.from_pipe(pipeline)` at its defaults from ``seed``; ``on_frame(count)`` after each
    frame. Raises ``gradio.Error`` with a message for the user when the upload or the seed cannot be used."""
    import gradio as gr
    import torch

    seed = checked_number(seed, "Seed", 0, MAX_SEED, whole=True)
    info = read_clip(path, max_upload_mb)
    output = Path(tempfile.mkdtemp(prefix="colorize-")) / f"{Path(path).stem}_colour.mp4"
    pipe = VideoColorizationPipeline.from_pipe(pipeline)
    pipe.set_progress_bar_config(disable=True)
    try:
        colorize_video_file(pipe, info, output, on_frame=on_frame, generator=torch.Generator().manual_seed(seed))
    except VideoError as error:  # e.g. a clip that ends before its container says
        raise gr.Error(without_server_paths(error, path)) from None
    return str(output)


def _header_size(path: str) -> tuple[int, int]:
    """The pixel size an image file announces, read from its header only (PIL's bomb guard applies)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def add_hint(hints: list, colour: str, x: int, y: int) -> list:
    """``hints`` with one more, at pixel (x, y) of the photo, in ``colour`` as a ``#rrggbb`` string."""
    import gradio as gr

    try:
        rgb = parse_color(colour)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return [*hints, [int(x), int(y), "#{:02x}{:02x}{:02x}".format(*rgb)]]


def model_display_name(model: str) -> str:
    """How the page names the model: the shipped one in words, a local folder by its name, a Hub id as it is."""
    path = Path(model).expanduser()
    if path.resolve() == DEFAULT_MODEL.resolve():
        return "the shipped flowers model"
    return path.name if path.is_dir() else model


def example_photos() -> list[str]:
    return [str(file.path) for file in find_images(SAMPLES)] if SAMPLES.is_dir() else []


def build_demo(pipeline, model_name: str, max_upload_mb: float = 20, default_steps: int | None = None,
               default_guidance_scale: float = DEFAULT_GUIDANCE_SCALE, default_saturation: float | None = None,
               strength: float | None = None):
    import gradio as gr

    def upload_path(photo):
        # preprocess=False: the upload arrives as file data, unopened, so that an unreadable file gets our
        # message instead of Gradio's generic error.
        return photo.get("path") if isinstance(photo, dict) else photo

    if default_saturation is None:
        default_saturation = pipeline.config.saturation
    if default_steps is None:
        default_steps = pipeline.default_num_inference_steps()

    def run(photo, steps, seed, samples, guidance_scale=default_guidance_scale, hints=None, saturation=default_saturation):
        return colorize_photo(pipeline, upload_path(photo), steps, seed, samples, max_upload_mb, guidance_scale, hints,
                              saturation, strength)

    def run_clip(clip, seed, progress=gr.Progress()):
        def on_frame(count):
            progress((count, None), desc="Colorizing frames", unit="frames")

        return colorize_clip(pipeline, upload_path(clip), seed, max_upload_mb, on_frame)

    def show_gray(photo):  # a new photo: its gray version to click on, and no hints yet
        path = upload_path(photo)
        return (None if path is None else gray_picture(read_upload(path, max_upload_mb))), [], []

    def place_hint(hints, colour, event: gr.SelectData):
        hints = add_hint(hints, colour, *event.index)
        return hints, hints

    with gr.Blocks(title="colorize") as demo:
        gr.Markdown(
            f"# colorize\nUpload a photo (or a clip, in the Video tab), colour or gray: it is turned gray and colorized by {model_name} at its "
            f"own resolution. Uploads up to {max_upload_mb:g} MB and {MAX_PIXELS / 1e6:.0f} megapixels (photo "
            f"times samples: at most {MAX_OUTPUT_PIXELS / 1e6:.0f} megapixels a request). Know a "
            "colour? Pick it and click on the gray photo where it belongs: the model carries it through that region."
        )
        with gr.Tabs():
            with gr.Tab("Photo", elem_id="photo-tab"):
                with gr.Row():
                    photo = gr.Image(type="filepath", label="Photo", sources=["upload", "clipboard"], elem_id="photo")
                    gray = gr.Image(type="pil", label="Gray input", format="png", interactive=False, elem_id="gray")
                    colorized = gr.Image(type="pil", label="Colorized", format="png", interactive=False, elem_id="colorized")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=default_steps, step=1, label="Denoising steps")
                    seed = gr.Slider(0, 10_000, value=0, step=1, label="Seed")
                    samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples")
                    guidance = gr.Slider(
                        0, MAX_GUIDANCE_SCALE, value=default_guidance_scale, step=0.25, label="Colour strength (guidance scale)",
                        info="Above 1: more vivid colours of what the model recognises; 0: ignore what it recognises.",
                        visible=pipeline.image_encoder is not None,
                    )
                    saturation = gr.Slider(
                        0, MAX_SATURATION, value=default_saturation, step=0.02, label="Saturation",
                        info="Chroma gain on the result: above 1 more saturated, below 1 paler, 0 gray. Starts at the "
                        "model's calibrated value.",
                    )
                with gr.Row():
                    hint_colour = gr.ColorPicker(value="#d02020", label="Hint colour (then click on the gray photo)",
                                                 elem_id="hint-colour")
                    hint_list = gr.Dataframe(headers=["x", "y", "colour"], value=[], label="Hints", interactive=False,
                                             elem_id="hints")
                    clear = gr.Button("Clear hints", elem_id="clear-hints")
                hints = gr.State([])
                button = gr.Button("Colorize", variant="primary", elem_id="colorize-button")
                gallery = gr.Gallery(label="Samples", columns=4, fit_columns=False, height=240, object_fit="contain",
                                     format="png", elem_id="samples")
                strip = gr.Image(type="pil", label="Denoising, noisiest first", format="png", interactive=False, elem_id="denoising")
                examples = example_photos()
                if examples:
                    gr.Examples(examples=examples, inputs=photo)
            with gr.Tab("Video", elem_id="video-tab"):
                gr.Markdown(
                    f"A clip up to {MAX_VIDEO_FRAMES} frames and 1920 x 1080: the first frame (and each scene cut) is "
                    "colorized as a photo is, and the colours are carried along the motion to the next frames, so "
                    "they do not flicker. The frame rate and the audio are kept."
                )
                with gr.Row():
                    clip = gr.Video(label="Clip", sources=["upload"], elem_id="clip")
                    colour_clip = gr.Video(label="Colorized", interactive=False, elem_id="colour-clip")
                clip_seed = gr.Slider(0, 10_000, value=0, step=1, label="Seed")
                clip_button = gr.Button("Colorize clip", variant="primary", elem_id="colorize-clip-button")
        button.click(run, [photo, steps, seed, samples, guidance, hints, saturation], [gray, colorized, gallery, strip],
                     api_name="colorize", preprocess=False)
        photo.change(show_gray, photo, [gray, hints, hint_list], preprocess=False, api_name=False)
        clip_button.click(run_clip, [clip, clip_seed], colour_clip, api_name="colorize_clip")
        gray.select(place_hint, [hints, hint_colour], [hints, hint_list], api_name=False)
        clear.click(lambda: ([], []), None, [hints, hint_list], api_name=False)
    return demo
