"""`VideoColorizationPipeline`: a clip in, a colour clip out, whose colours stay put from frame to frame.

A per-frame colorizer flickers: every frame's colours are sampled afresh. This pipeline uses no video training;
it carries each frame's colours to the next along optical flow and lets the diffusion model only refine them:

1. **Keyframes** (the first frame, every scene cut, every ``keyframe_interval`` frames) are colorized as photos
   are: sampled from the chroma prior noised to ``strength`` (`ColorizationPipeline.denoise_chroma`).
2. **Every other frame** starts from the previous frame's chroma (working resolution, before the saturation gain,
   so the gain never compounds) warped along the optical flow of the gray frames (`colorize.optical_flow`: DIS
   flow, a forward-backward check marks pixels that are occluded or new). Where the flow is trusted the warped
   colours are the start; elsewhere the frame's own chroma prior is. That start is noised only to
   ``propagation_strength`` of the schedule (SDEdit), so the model repairs the seams of the warp in a few
   unguided steps, and each step's estimate of the clean chroma is pulled towards the warped colours by
   ``propagation_weight`` times the flow's confidence (the hints mechanism, `ColorizationPipeline.pull_towards_hints`).
   What the frame hands on is the warped colours where the flow is trusted and the refined ones elsewhere: the
   model's small changes (its gain, the residue of the noise) then never compound over the clip.
3. Every frame uses the same starting noise (the generator's state is replayed), and keeps its own full-resolution
   lightness exactly.

A scene cut is a frame where too little of the previous frame can be tracked (`SCENE_CUT_TRACKED`): it is
sampled afresh, as a keyframe. Hints given for a frame move with the content to the following frames.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput

from .hints import check_hints, hint_map
from .image_processing import resize
from .optical_flow import flow_with_confidence, resize_flow, warp
from .pipeline_colorization import (
    DEFAULT_GUIDANCE_SCALE,
    ColorizationPipeline,
    to_uint8,
)
from .settings import check_guidance_scale, check_strength

# Chosen by measurement (benchmarks/README.md, "Video without flicker").
DEFAULT_PROPAGATION_STRENGTH = 0.2
DEFAULT_PROPAGATION_WEIGHT = 0.8
# Clips keep 13 steps, the setting their flicker was measured at (keyframes run the last 10; a propagated frame at
# strength 0.2 the last 3): photos default to fewer (`DEFAULT_NUM_INFERENCE_STEPS`).
DEFAULT_VIDEO_NUM_INFERENCE_STEPS = 13
DEFAULT_KEYFRAME_INTERVAL = None  # only the first frame and scene cuts
# Frames after a keyframe take their colours from it (guided); their refinement runs at the guidance scale of one UNet
# pass a step (`one_pass_guidance_scale`: 1, or a guidance-distilled model's own scale): unguided refinement measured
# as steady and as colourful as guided, in 0.77x the time.

# Optical flow runs on the gray frames shrunk to at most this shorter side: enough to place the working
# resolution's chroma (48 px) to a fraction of its pixel, and a few milliseconds a frame on a CPU.
FLOW_SHORT_SIDE = 192
# A pixel is tracked when the forward-backward check passes and its gray level, warped, is within this many
# 8-bit levels of the frame's; a frame where less than SCENE_CUT_TRACKED of the pixels are tracked is a scene cut.
TRACKED_GRAY_LEVELS = 24
SCENE_CUT_TRACKED = 0.4


@dataclass
class VideoColorizationPipelineOutput(BaseOutput):
    """
    Output of `VideoColorizationPipeline`.

    Args:
        frames (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The colorized frames, in order, each the size of its input frame: PIL images, an array (T, H, W, 3) or
            a tensor (T, 3, H, W) in [0, 1].
        keyframes (`list[int]`):
            The frames sampled afresh (the first, scene cuts, every ``keyframe_interval``); the others carry the
            colours along.
    """

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    keyframes: list[int]


@dataclass
class CarriedColours:
    """What one frame hands to the next: its gray frame on the flow grid, its chroma and its hints."""

    gray: np.ndarray  # (H', W') uint8, the frame's L on the flow grid
    size: tuple[int, int]  # the working size (h, w)
    chroma: torch.Tensor  # (1, 2, H', W') normalised ab on the flow grid, before the saturation gain
    hints: tuple[torch.Tensor, torch.Tensor] | None  # hinted chroma (1, 2, h, w) and weight (1, 1, h, w)
    since_keyframe: int


class MovedColours(NamedTuple):
    """The previous frame's colours moved along the flow onto this frame (`VideoColorizationPipeline.follow`)."""

    chroma_fine: torch.Tensor  # (1, 2, H', W') on the flow grid
    tracked: torch.Tensor  # (1, 1, H', W'): 1 where the flow is trusted
    chroma: torch.Tensor  # (1, 2, h, w) at the working size
    confidence: torch.Tensor  # (1, 1, h, w) in [0, 1]: the tracked fraction of each working pixel
    hints: tuple[torch.Tensor, torch.Tensor] | None  # the carried hint maps, moved


def frames_of(video) -> Iterable:
    """The frames of a clip given as a list (or any iterable) of images, an array (T, H, W, 3) or (T, H, W), or a
    tensor (T, H, W, 3) (torchvision's `read_video` layout) or (T, H, W)."""
    if isinstance(video, np.ndarray) and video.ndim in (3, 4):
        return video
    if isinstance(video, torch.Tensor) and video.ndim in (3, 4):
        return (frame.permute(2, 0, 1) if frame.ndim == 3 else frame[None] for frame in video)
    if isinstance(video, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        raise ValueError("Expected a clip: a list of frames, an array (T, H, W, 3) or a tensor (T, H, W, 3).")
    return video


def flow_grid_gray(lightness: torch.Tensor) -> np.ndarray:
    """Normalised L (1, 1, H, W) as an 8-bit gray frame whose shorter side is at most `FLOW_SHORT_SIDE`."""
    height, width = lightness.shape[-2:]
    scale = min(1.0, FLOW_SHORT_SIDE / min(height, width))
    if scale < 1.0:
        lightness = resize(lightness, (max(1, round(height * scale)), max(1, round(width * scale))))
    return ((lightness[0, 0].float().cpu().numpy() + 1) * 127.5).clip(0, 255).round().astype(np.uint8)


def tracking(gray: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (H', W', 2) of ``gray`` from ``previous`` and where it is tracked (H', W') bool: consistent
    both ways and the warped gray level close to the frame's."""
    flow, consistent = flow_with_confidence(gray, previous)
    warped = warp(torch.from_numpy(previous)[None, None].float(), torch.from_numpy(flow).permute(2, 0, 1)[None])
    close = np.abs(warped[0, 0].numpy() - gray.astype(np.float32)) <= TRACKED_GRAY_LEVELS
    return flow, consistent & close


def merge_pulls(hints, moved: MovedColours | None, propagation_weight: float):
    """One (target chroma, weight) pair for `pull_towards_hints` from the user's ``hints`` (target, weight) and the
    ``moved`` colours weighted by ``propagation_weight`` x their confidence: hints win where they reach. None if
    neither."""
    if moved is None or propagation_weight == 0:
        return hints
    warped, pull = moved.chroma, propagation_weight * moved.confidence
    if hints is None:
        return warped, pull
    hinted, hint_weight = hints
    pull = pull * (1 - hint_weight)
    weight = hint_weight + pull
    target = (hint_weight * hinted + pull * warped) / weight.clamp(min=1e-6)
    return target, weight


class VideoColorizationPipeline(ColorizationPipeline):
    r"""
    Pipeline for colorizing grayscale video clips without flicker, with the components of a
    [`ColorizationPipeline`] (make one from a loaded photo pipeline with ``VideoColorizationPipeline.from_pipe(pipe)``,
    or load a pipeline folder with ``from_pretrained``). See the module's docstring for the method.

    Frames are colorized one after another: `colorize_frames` takes any iterable of frames and yields each colour
    frame as soon as it is done (memory does not grow with the clip's length); calling the pipeline collects them.
    """

    def check_video_inputs(self, output_type, guidance_scale, propagation_strength, propagation_weight, keyframe_interval):
        """ValueError for settings a clip cannot be colorized with."""
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got '{output_type}'.")
        check_guidance_scale(guidance_scale)
        check_strength(propagation_strength)
        if not 0 <= propagation_weight <= 1:
            raise ValueError(f"propagation_weight must be in [0, 1], got {propagation_weight}.")
        if keyframe_interval is not None and (not isinstance(keyframe_interval, int) or keyframe_interval < 1):
            raise ValueError(f"keyframe_interval must be a positive integer or None, got {keyframe_interval!r}.")

    @staticmethod
    def hints_by_frame(hints) -> dict[int, list]:
        """``hints`` as {frame index: hints}: a list of (x, y, colour) is the first frame's."""
        if not hints:
            return {}
        if isinstance(hints, dict):
            return {int(index): frame_hints for index, frame_hints in hints.items()}
        return {0: hints}

    def frame_hints(self, raw_hints, lightness, small, carried):
        """The frame's hint maps: its own hints (if any) over those carried from the previous frame."""
        own = None
        if raw_hints:
            checked = check_hints(raw_hints, width=lightness.shape[-1], height=lightness.shape[-2])
            own = tuple(part.to(small.device) for part in hint_map(checked, tuple(lightness.shape[-2:]), small))
        if carried is None:
            return own
        if own is None:
            return carried
        newer = own[1] >= carried[1]
        return torch.where(newer, own[0], carried[0]), torch.maximum(own[1], carried[1])

    @torch.no_grad()
    def colorize_frames(
        self,
        frames: Iterable,
        num_inference_steps: int = DEFAULT_VIDEO_NUM_INFERENCE_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        generator: torch.Generator | None = None,
        hints: list | dict | None = None,
        saturation: float | None = None,
        strength: float | None = None,
        working_size: int | None = None,
        propagation_strength: float = DEFAULT_PROPAGATION_STRENGTH,
        propagation_weight: float = DEFAULT_PROPAGATION_WEIGHT,
        keyframe_interval: int | None = DEFAULT_KEYFRAME_INTERVAL,
        on_keyframe: Callable[[int], None] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Colorize ``frames`` one at a time, yielding each as RGB (1, 3, H, W) in [0, 1] as soon as it is done (the
        arguments are `__call__`'s). ``on_keyframe(index)`` is called for each frame sampled afresh."""
        self.check_video_inputs("pt", guidance_scale, propagation_strength, propagation_weight, keyframe_interval)
        saturation = self.default_saturation(saturation)
        sharpening = self.default_chroma_sharpening()  # the model's calibrated unsharp mask, as for its photos
        detail = self.default_detail_transfer()  # and its colour detail from the lightness
        strength = self.default_strength(strength)
        working_size = self.default_working_size(working_size)
        with_prior = self.chroma_prior is not None
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        noise_state = generator.get_state()  # every frame starts from the same noise
        hints = self.hints_by_frame(hints)
        carried = None
        for index, frame in enumerate(frames):
            lightness = self._prepare_lightness(frame)
            size = tuple(self.model_size_for(*lightness.shape[-2:], working_size))
            small = resize(lightness, size)
            gray = flow_grid_gray(lightness)
            due = keyframe_interval is not None and carried is not None and carried.since_keyframe + 1 >= keyframe_interval
            moved = None if due else self.follow(carried, gray, size)
            frame_hints = self.frame_hints(hints.get(index), lightness, small, None if moved is None else moved.hints)
            encoded = self.encode_image(lightness, size, with_prior)
            if moved is None:  # a keyframe: colorized as a photo is
                run_strength, run_guidance, since_keyframe = strength, guidance_scale, 0
                if on_keyframe is not None:
                    on_keyframe(index)
            else:
                start = moved.chroma
                if encoded.prior is not None:  # untracked pixels start from the frame's own prior
                    start = moved.confidence * start + (1 - moved.confidence) * encoded.prior / self.config.chroma_scale
                encoded = encoded._replace(prior=start * self.config.chroma_scale)
                run_strength, run_guidance = propagation_strength, self.one_pass_guidance_scale
                since_keyframe = carried.since_keyframe + 1
            chroma, _ = self.denoise_chroma(
                small,
                num_inference_steps,
                generator=torch.Generator(generator.device).set_state(noise_state),
                encoded=encoded,
                guidance_scale=run_guidance,
                hints=merge_pulls(frame_hints, moved, propagation_weight),
                strength=run_strength,
            )
            # Tracked pixels hand on the warped colours, not the refined ones: the model's small changes (its
            # saturation gain, the residue of the same noise) would otherwise compound frame after frame. They are
            # carried on the flow's finer grid, so that warping them again and again does not blur them.
            chroma_fine = resize(chroma, gray.shape)
            if moved is not None:
                chroma_fine = moved.tracked * moved.chroma_fine + (1 - moved.tracked) * chroma_fine
            carried = CarriedColours(gray, size, chroma_fine, frame_hints, since_keyframe)
            hint_weight = None if frame_hints is None else frame_hints[1]
            yield self.compose(lightness, self.finish_chroma(chroma, small, sharpening, saturation, hint_weight, detail))

    @staticmethod
    def follow(carried: CarriedColours | None, gray: np.ndarray, size: tuple[int, int]) -> "MovedColours | None":
        """The carried colours (and hints) moved along the optical flow onto the frame ``gray`` (flow grid) at
        working ``size``; None when the frame must be a keyframe: the first, another size, or a scene cut."""
        if carried is None or carried.size != size or carried.gray.shape != gray.shape:
            return None
        flow, tracked = tracking(gray, carried.gray)
        if tracked.mean() < SCENE_CUT_TRACKED:
            return None
        device = carried.chroma.device
        tracked = torch.from_numpy(tracked).float()[None, None].to(device)
        chroma_fine = warp(carried.chroma, torch.from_numpy(flow).permute(2, 0, 1)[None].to(device))
        confidence = resize(tracked, size).clamp(0, 1)
        hints = None
        if carried.hints is not None:
            small_flow = resize_flow(flow, size).to(device)
            hints = (warp(carried.hints[0], small_flow), warp(carried.hints[1], small_flow) * confidence)
        return MovedColours(chroma_fine, tracked, resize(chroma_fine, size), confidence, hints)

    @torch.no_grad()
    def __call__(
        self,
        video,
        num_inference_steps: int = DEFAULT_VIDEO_NUM_INFERENCE_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        hints: list | dict | None = None,
        saturation: float | None = None,
        strength: float | None = None,
        working_size: int | None = None,
        propagation_strength: float = DEFAULT_PROPAGATION_STRENGTH,
        propagation_weight: float = DEFAULT_PROPAGATION_WEIGHT,
        keyframe_interval: int | None = DEFAULT_KEYFRAME_INTERVAL,
    ) -> VideoColorizationPipelineOutput | tuple:
        r"""
        Colorize a clip.

        Args:
            video (`list` of frames, `np.ndarray` or `torch.Tensor`):
                The frames in order: a list (or any iterable) of PIL images, arrays (H, W, 3) / (H, W) or tensors
                (3, H, W) / (1, H, W), as `ColorizationPipeline` takes photos; or one array or tensor (T, H, W, 3)
                or (T, H, W) (uint8 in 0..255, or floats in [0, 1]). Colour frames are turned gray first.
            num_inference_steps (`int`, *optional*, defaults to 13):
                Denoising steps of a full sample; a keyframe runs ``strength`` of them, the other frames
                ``propagation_strength`` of them.
            guidance_scale (`float`, *optional*, defaults to 2):
                Classifier-free guidance on the image encoder's features, as for photos.
            generator (`torch.Generator`, *optional*):
                Its state gives the starting noise of every frame (the same for all: the colours do not jump where
                the model is unsure). ``torch.Generator().manual_seed(seed)`` colours the first frame as
                ``ColorizationPipeline`` colours that photo with the same generator.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"` (a list of images), `"np"` (an array (T, H, W, 3)) or `"pt"` (a tensor (T, 3, H, W)).
            return_dict (`bool`, *optional*, defaults to `True`):
                Return a [`VideoColorizationPipelineOutput`] instead of a plain tuple (frames, keyframes).
            hints (`list` or `dict`, *optional*):
                Colours the user knows, ``[(x, y, color), ...]`` in the first frame's pixels, or ``{frame_index:
                [(x, y, color), ...], ...}``; each hint's colour moves with the content through the clip.
            saturation, strength, working_size (*optional*):
                As for `ColorizationPipeline` (defaults: the model's calibrated values); ``strength`` applies to
                keyframes.
            propagation_strength (`float`, *optional*, defaults to 0.2):
                How far along the noise schedule a frame's warped colours are noised before the model refines
                them: lower keeps the colours steadier and costs fewer UNet passes; 1 samples each frame afresh.
            propagation_weight (`float`, *optional*, defaults to 0.8):
                How strongly every denoising step's estimate is pulled towards the warped colours where the flow
                is trusted (0: not at all, 1: onto them).
            keyframe_interval (`int`, *optional*):
                Sample a frame afresh every this many frames as well as at scene cuts (1: every frame, the
                per-frame colorizer with one fixed seed). Default: only the first frame and scene cuts.

        Returns:
            [`VideoColorizationPipelineOutput`] or `tuple`: the frames, and the indices of the keyframes.
        """
        self.check_video_inputs(output_type, guidance_scale, propagation_strength, propagation_weight, keyframe_interval)
        frames = list(frames_of(video))
        if not frames:
            raise ValueError("The clip has no frames.")
        keyframes = []
        bar = self.progress_bar(total=len(frames))
        config = dict(getattr(self, "_progress_bar_config", {}))
        self.set_progress_bar_config(**{**config, "disable": True})  # no bar per frame's denoising loop
        try:
            outputs = []
            for rgb in self.colorize_frames(
                frames, num_inference_steps, guidance_scale, generator, hints, saturation, strength, working_size,
                propagation_strength, propagation_weight, keyframe_interval, on_keyframe=keyframes.append,
            ):
                outputs.append(rgb)
                bar.update()
        finally:
            self._progress_bar_config = config
            bar.close()
        if output_type == "pt":
            result = torch.cat(outputs)
        else:
            arrays = np.stack([rgb[0].permute(1, 2, 0).cpu().numpy() for rgb in outputs])
            result = [PIL.Image.fromarray(to_uint8(array)) for array in arrays] if output_type == "pil" else arrays
        self.maybe_free_model_hooks()
        if not return_dict:
            return result, keyframes
        return VideoColorizationPipelineOutput(frames=result, keyframes=keyframes)

