"""`ColorizationPipeline`: grayscale photo in, colour photo out, by denoising its chroma."""

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from kornia.filters import gaussian_blur2d, spatial_gradient

from .chroma_prior import ChromaPrior
from .color import DEFAULT_CHROMA_SCALE, fit_chroma_to_gamut, in_row_bands, lab_to_rgb, rgb_to_lab
from .hints import check_hints, hint_map, hints_per_image
from .image_encoder import ImageEncoder
from .image_io import pil_to_tensor
from .image_processing import pick_frames, resize
from .modeling import downsample_factor
from .schedulers import clean_estimate, noise_estimate, prediction_for, signal_and_noise
from .settings import (
    check_chroma_sharpening,
    check_detail_transfer,
    check_distilled_guidance_scale,
    check_guidance_scale,
    check_num_inference_steps,
    check_sample_spread,
    check_saturation,
    check_strength,
    check_working_size,
)

# The flowers model shipped in the repository: what `from_pretrained()` and `colorize` load when no model is named.
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "flowers"

# Defaults chosen by measurement (benchmarks/README.md: "Guidance", "Saturation" and "`fast_sampling.py` — the fast
# path"): guidance scale 2 on the image encoder's features beat scale 1 on every score; stronger guidance makes colours
# more vivid but pulls each flower's hues towards one (every rose pink): a model's calibrated `saturation` (its config)
# brings the vividness instead. 4 DPM-Solver++ steps from the chroma prior at strength 0.8 run 3 of them: on the shipped
# guidance-distilled model 3 UNet passes a photo, scored like 13 steps (10 guided steps, 20 passes) on the histogram
# judge, per-class JSD, colourfulness and PSNR, in a quarter of the time; 6 steps score higher on the CNN judge.
# A model distilled to one pass (`distill_sampler.py`) saves its own step count and strength.
DEFAULT_GUIDANCE_SCALE = 2.0
DEFAULT_NUM_INFERENCE_STEPS = 4

# The unsharp mask of `ColorizationPipeline.sharpen`: a Gaussian of this sigma, in working-size pixels, and the
# lightness edge (Sobel gradient of normalised L per working-size pixel, kornia's normalised kernel) at which the
# mask is at 63 % of its amount; on flat lightness it fades to nothing (benchmarks/README.md, "Sharper colour edges").
SHARPENING_SIGMA = 1.0
SHARPENING_EDGE_SCALE = 0.05

# The lightness detail of `ColorizationPipeline.transfer_detail`: the photo's lightness finer than a Gaussian of
# DETAIL_SIGMA working-size pixels, times the local slope of the chroma on the lightness low-passed the same way,
# measured in Gaussian windows of DETAIL_WINDOW_SIGMA pixels; DETAIL_EPS (squared normalised L) keeps the slope
# small where the lightness is flat (benchmarks/README.md, "Colour detail from the lightness").
DETAIL_SIGMA = 1.0
DETAIL_WINDOW_SIGMA = 2.0
DETAIL_EPS = 1e-3

# Panoramas are squeezed to at most this aspect ratio for the model; chroma is stretched back.
MAX_ASPECT_RATIO = 4

# Integer pixel types an input may have, and the level that is white.
INTEGER_RANGES = {torch.uint8: 255.0, torch.uint16: 65535.0}


class EncodedImage(NamedTuple):
    """What `ColorizationPipeline.encode_image` computes once per photo, at the working size (h, w); None where the
    pipeline has no such part."""

    features: torch.Tensor | None = None  # (N, projection_channels, h, w): the image encoder's projected map
    image_embeds: torch.Tensor | None = None  # (N, D): its pooled term for the UNet's time embedding
    prior: torch.Tensor | None = None  # (N, 2, h, w): the chroma prior's ab, in the UNet's space


class SampledChroma(NamedTuple):
    """One output of a call before its finish: what `ColorizationPipeline.denoise_chroma` sampled for it, at the
    working size (h, w)."""

    chroma: torch.Tensor  # (1, 2, h, w): normalised ab
    steps: list[torch.Tensor]  # the kept steps' normalised noisy ab, (1, 2, h, w) each (empty unless asked for)
    lightness: torch.Tensor  # (1, 1, h, w): its photo's normalised L at the working size
    hint_weight: torch.Tensor | None  # (1, 1, h, w): how hard its hints pull (1 on a hint's pixel); None: no hints


@dataclass
class ColorizationPipelineOutput(BaseOutput):
    """
    Output of `ColorizationPipeline`.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray`, `torch.Tensor` or a list of arrays / tensors):
            The colorized images, each the size of its input. Arrays are (N, H, W, 3) and tensors (N, 3, H, W),
            in [0, 1]; when the inputs differ in size they come as a list, one entry per image.
        intermediates (`list`, *optional*):
            With ``return_intermediates=True``: one entry per denoising step kept (every step, or
            ``num_intermediates`` evenly spaced ones), each holding the images as they stand after that step
            (noisy chroma on the true L), in the same format as ``images``.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor | list
    intermediates: list | None = None


def not_cached_message(model_id: str) -> str:
    """Why a Hub model could not load offline, and how to get it into the Hugging Face cache."""
    return (
        f"'{model_id}' is not in the local Hugging Face cache and the Hub could not be reached (or HF_HUB_OFFLINE is "
        f"set). Where the Hub is reachable, `hf download {model_id}` puts it in the cache, after which it loads "
        "offline; or pass the path of a local pipeline folder."
    )


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` (N, C, h, w) blurred by a Gaussian of ``sigma`` pixels (kernel out to 3 sigma, edges replicated)."""
    radius = math.ceil(3 * sigma)
    return gaussian_blur2d(image, (2 * radius + 1,) * 2, (sigma, sigma), border_type="replicate")


def image_to_rgb(image) -> torch.Tensor:
    """One input image as an RGB float tensor (3, H, W) in [0, 1]: a PIL image (any mode), an array (H, W, 3) or
    (H, W), a tensor (3, H, W) or (1, H, W). Integer arrays and tensors are read as 8-bit (uint8) or 16-bit
    (uint16) levels; float ones must already be in [0, 1]. ValueError (TypeError for other types) in one line
    for anything else: a wrong shape or dtype, NaN or infinite values, floats outside [0, 1]."""
    if isinstance(image, PIL.Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        array = image[..., None].repeat(3, axis=-1) if image.ndim == 2 else image
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"Expected an array (H, W, 3) or (H, W), got shape {image.shape}.")
        if array.dtype in (np.uint8, np.uint16):
            array = array / (255.0 if array.dtype == np.uint8 else 65535.0)
        rgb = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        rgb = image.expand(3, -1, -1) if image.ndim == 3 and image.shape[0] == 1 else image
        if rgb.ndim != 3 or rgb.shape[0] != 3:
            raise ValueError(f"Expected a tensor (3, H, W) or (1, H, W) (a batch: a list, or one (N, C, H, W) "
                             f"tensor), got shape {tuple(image.shape)}.")
    else:
        raise TypeError(f"Expected a PIL image, a numpy array or a tensor, got {type(image).__name__}.")
    if rgb.dtype in INTEGER_RANGES:
        return rgb.float() / INTEGER_RANGES[rgb.dtype]
    if not rgb.is_floating_point():
        raise ValueError(f"Expected uint8, uint16 or float pixels, got {rgb.dtype}.")
    rgb = rgb.float()
    if not torch.isfinite(rgb).all():
        raise ValueError("The image has NaN or infinite pixel values.")
    if rgb.min() < 0 or rgb.max() > 1:
        raise ValueError(f"Float pixels must be in [0, 1], got values from {rgb.min().item():g} to "
                         f"{rgb.max().item():g} (uint8 arrays are read as 0..255).")
    return rgb


def to_uint8(array: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] as 8-bit levels (rounded to nearest), with one full-size temporary instead of two."""
    scaled = array * 255
    return np.round(scaled, out=scaled).astype(np.uint8)


def is_batch(image) -> bool:
    """True for several images in one array (N, H, W, 3) or tensor (N, C, H, W)."""
    return isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 4


class ColorizationPipeline(DiffusionPipeline):
    r"""
    Pipeline for colorizing grayscale images with a diffusion model on the Lab chroma channels.

    The image's L channel is kept at full resolution. The UNet sees L (resized to its working
    resolution) concatenated with noisy ab and, when the pipeline has an image encoder, with the
    encoder's projected features of the whole gray photo (computed once per photo, not per step); it
    predicts the noise (or v). The denoised ab is upsampled to the input's size and recombined with its
    own L, so the output has the input's exact size and luminance.

    This model inherits from [`DiffusionPipeline`]: see its documentation for the generic methods
    (downloading, saving, running on a particular device, etc.).

    Parameters:
        unet ([`UNet2DModel`]):
            Denoiser with 3 input channels (L + noisy ab), plus the image encoder's projection channels when
            there is one, and 2 output channels.
        scheduler ([`SchedulerMixin`]):
            [`DDPMScheduler`] as trained; [`DDIMScheduler`] or [`DPMSolverMultistepScheduler`] can be swapped in
            with ``from_config(pipe.scheduler.config)`` for fast sampling.
        image_encoder ([`ImageEncoder`], *optional*):
            Frozen pretrained features of the gray photo, projected for the UNet (see `colorize.image_encoder`).
            Pipelines saved without one (the first flowers models) work as before.
        chroma_prior ([`ChromaPrior`], *optional*):
            The colours predicted from the encoder's maps (needs ``image_encoder``): sampling starts from them,
            noised to ``strength`` of the schedule, instead of from pure noise (predict-and-refine, see
            `colorize.chroma_prior`). Pipelines saved without one sample from noise.
        chroma_scale (`float`):
            Factor between normalised ab (about [-1, 1]) and the model's space, saved in `model_index.json`.
        saturation (`float`, defaults to 1):
            The model's calibrated chroma gain, saved in `model_index.json`: the default of the call's
            ``saturation``. Measured per model (`colorize evaluate --saturation`), set with `colorize publish
            --saturation`; pipelines saved without one use 1 (the sampled colours as they are).
        working_size (`int`, *optional*):
            The model's calibrated working size, saved in `model_index.json`: the shorter side (px) of the grid
            the UNet denoises on, the default of the call's ``working_size``. Set with `colorize publish
            --working-size` when measured better than the UNet's training resolution; None (pipelines saved
            without one) uses ``unet.config.sample_size``.
        distilled_guidance_scale (`float`, *optional*):
            Set on a guidance-distilled UNet (`train_colorization.py --distill_guidance_scale`, Meng et al. 2023):
            its output given the features is already the teacher's classifier-free guided output at this scale, and
            given hidden features the teacher's unguided one. A call at this ``guidance_scale`` runs one UNet pass
            per step; any other scale two, guiding between the UNet's two outputs so that the scale means what it
            means for the teacher. None (pipelines saved without one): a plain conditional UNet.
        chroma_sharpening (`float`, defaults to 0):
            The model's calibrated unsharp mask on the sampled chroma, saved in `model_index.json`: the default of the
            call's ``chroma_sharpening``. The few-step sampler draws each colour as a soft blob; the sampled ab plus
            this amount times its difference from a Gaussian blur of it (sigma `SHARPENING_SIGMA` working-size
            pixels), where the photo's lightness has an edge (`sharpen`), gives the blobs back the edges a judge of
            the colours' shapes reads (benchmarks/README.md). Set with `colorize publish --chroma-sharpening`;
            pipelines saved without one use 0 (none).
        detail_transfer (`float`, defaults to 0):
            The model's calibrated colour detail from the lightness, saved in `model_index.json`: the default of the
            call's ``detail_transfer``. The few-step sampler's chroma is softer than a photo's at the working size;
            where the chroma varies with the lightness (a petal lighter and paler than its shadow), the same local
            relation carried down to the lightness's finer detail (`transfer_detail`) gives the colours the fine
            shapes a judge of them reads (benchmarks/README.md). Set with `colorize publish --detail-transfer`;
            pipelines saved without one use 0 (none).
        num_inference_steps (`int`, *optional*):
            The model's calibrated number of denoising steps, saved in `model_index.json`: the default of the call's
            ``num_inference_steps``. A UNet distilled to give its teacher's few-step result in one pass
            (`distill_sampler.py`) saves the schedule that runs that one pass (2 steps, with
            its prior's ``strength`` 0.5); None (pipelines saved without one): `DEFAULT_NUM_INFERENCE_STEPS`.
        sample_spread (`list`, *optional*):
            How the images of one input differ when a call asks for several (``num_images_per_prompt`` > 1), saved
            in `model_index.json`: image k takes pair k (cycling) of (start, gain): ``"prior"`` starts from the
            chroma prior noised to ``strength`` (the model's best guess), ``"noise"`` from pure noise (a fresh draw
            of the UNet's own, which differs where the photo cannot tell the colours), a number from the prior
            noised that far (`lead_in`: a draw that keeps the prior's colours in part), ``"mean"`` the mean of the
            input's drawn images (`mean_of_drawn`: their consensus, muted where they disagree, no UNet pass of its
            own; never first); ``gain`` multiplies the call's ``saturation``. Chosen by measurement, set with
            `colorize publish --sample-spread`; None (pipelines saved without one): every image from the prior at
            gain 1.
    """

    model_cpu_offload_seq = "image_encoder->chroma_prior->unet"
    _optional_components = ["image_encoder", "chroma_prior"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        image_encoder: ImageEncoder | None = None,
        chroma_scale: float = DEFAULT_CHROMA_SCALE,
        saturation: float = 1.0,
        chroma_prior: ChromaPrior | None = None,
        working_size: int | None = None,
        distilled_guidance_scale: float | None = None,
        sample_spread: list | None = None,
        chroma_sharpening: float = 0.0,
        num_inference_steps: int | None = None,
        detail_transfer: float = 0.0,
    ):
        super().__init__()
        if chroma_prior is not None and image_encoder is None:
            raise ValueError("A chroma_prior needs an image_encoder: it predicts the colours from its maps.")
        self.register_modules(unet=unet, scheduler=scheduler, image_encoder=image_encoder, chroma_prior=chroma_prior)
        self.register_to_config(
            chroma_scale=chroma_scale, saturation=check_saturation(saturation), working_size=check_working_size(working_size),
            distilled_guidance_scale=check_distilled_guidance_scale(distilled_guidance_scale),
            sample_spread=check_sample_spread(sample_spread),
            chroma_sharpening=check_chroma_sharpening(chroma_sharpening),
            num_inference_steps=check_num_inference_steps(num_inference_steps),
            detail_transfer=check_detail_transfer(detail_transfer),
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, **kwargs):
        """[`DiffusionPipeline.from_pretrained`]; with no model named, the shipped flowers model (`DEFAULT_MODEL`).

        Weights load from safetensors only, unless ``use_safetensors=False`` is passed: a pickled ``.bin`` can run
        code when it is loaded, so a folder that has only pickles is an OSError saying how to opt in."""
        safe_only = kwargs.setdefault("use_safetensors", True)
        if pretrained_model_name_or_path is None:
            if not DEFAULT_MODEL.is_dir():
                raise FileNotFoundError(
                    f"No model named and no default model at {DEFAULT_MODEL} (it ships with a clone of the "
                    "repository, installed with `pip install -e .`): pass a folder or a Hub id."
                )
            pretrained_model_name_or_path = DEFAULT_MODEL
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except OSError as error:
            if "not fully cached locally" in str(error):
                raise OSError(not_cached_message(str(pretrained_model_name_or_path))) from None
            if safe_only and ".safetensors" in str(error):
                raise OSError(
                    f"{str(error).splitlines()[0]} Only safetensors weights are loaded by default: a pickled .bin "
                    "can run code when loaded. If you trust its source, pass use_safetensors=False."
                ) from None
            raise

    def default_working_size(self, working_size: int | None = None) -> int:
        """The shorter side a call denoises at: the one given (checked), else the model's calibrated
        ``config.working_size``, else the UNet's training resolution ``unet.config.sample_size``."""
        working_size = check_working_size(working_size)
        if working_size is None:
            working_size = self.config.working_size
        if working_size is None:
            base = self.unet.config.sample_size
            working_size = base if isinstance(base, int) else min(base)
        return working_size

    def model_size_for(self, height: int, width: int, working_size: int | None = None) -> tuple[int, int]:
        """Working (height, width) for an input: shorter side = `default_working_size` (``working_size`` or the
        model's), rounded to the UNet's multiple, aspect kept."""
        base = self.default_working_size(working_size)
        multiple = downsample_factor(self.unet)
        short, long = sorted((height, width))
        long_side = min(base * long / short, base * MAX_ASPECT_RATIO)
        long_side = max(multiple, round(long_side / multiple) * multiple)
        short_side = max(multiple, round(base / multiple) * multiple)
        return (short_side, long_side) if height <= width else (long_side, short_side)

    def _prepare_lightness(self, image) -> torch.Tensor:
        """One input image as normalised L, (1, 1, H, W), at full resolution (`image_to_rgb` checks it)."""
        lightness = in_row_bands(lambda rgb: rgb_to_lab(rgb)[0], image_to_rgb(image)[None])
        return lightness.to(self._execution_device)

    def check_inputs(self, images: list, num_images_per_prompt: int, generator, output_type: str, guidance_scale: float,
                     callback_on_step_end_tensor_inputs: list[str]):
        """ValueError for a call that cannot run: no image, an unknown ``output_type``, a tensor the callback
        cannot get, a generator list of the wrong length, a negative guidance scale. (The images themselves are
        checked as they are read, the hints against each image's size, the settings by `colorize.settings`.)"""
        if not images:
            raise ValueError("No image given.")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got '{output_type}'.")
        for name in callback_on_step_end_tensor_inputs:
            if name not in self._callback_tensor_inputs:
                raise ValueError(f"callback_on_step_end_tensor_inputs may hold {self._callback_tensor_inputs}, not '{name}'.")
        num_outputs = len(images) * num_images_per_prompt
        if isinstance(generator, list) and len(generator) != num_outputs:
            raise ValueError(f"Got {len(generator)} generators for {num_outputs} output images.")
        check_guidance_scale(guidance_scale)

    def encode_image(self, lightness: torch.Tensor, size, with_prior: bool = False) -> EncodedImage:
        """The `EncodedImage` of one full-resolution L (1, 1, H, W) at working ``size`` (h, w), from one backbone
        pass: the image encoder's projected features, its pooled time-embedding term and, ``with_prior``, the chroma
        prior's ab; each None where the pipeline has no such part (or no prior was asked for)."""
        if self.image_encoder is None:
            return EncodedImage()
        encoder = self.image_encoder
        maps = encoder.backbone_maps(lightness.to(encoder.device))
        projected, image_embeds = encoder(encoder.projection_input(maps))
        features = F.interpolate(projected, size=tuple(size), mode="bilinear", align_corners=False)
        if not with_prior:
            return EncodedImage(features, image_embeds)
        prior = self.chroma_prior(maps.stacked().to(self.chroma_prior.device)).float()
        return EncodedImage(features, image_embeds, F.interpolate(prior, size=tuple(size), mode="bilinear", align_corners=False))

    def encode_photos(self, lightness: list[torch.Tensor], photos: list[int], size, with_prior: bool,
                      cache: dict | None = None) -> EncodedImage:
        """The `EncodedImage` of a batch of outputs: ``photos`` holds each output's input photo (an index into
        ``lightness``, full-resolution L per photo); each photo is encoded once, whatever its number of samples, and
        once a call when the call's batches share a ``cache`` ({(photo, size): EncodedImage}, all encoded alike)."""
        cache = {} if cache is None else cache
        for photo in dict.fromkeys(photos):
            if (photo, tuple(size)) not in cache:
                cache[(photo, tuple(size))] = self.encode_image(lightness[photo], size, with_prior)
        encoded = [cache[(photo, tuple(size))] for photo in photos]
        return EncodedImage(*(None if encoded[0][part] is None else torch.cat([e[part] for e in encoded])
                              for part in range(len(EncodedImage._fields))))

    def default_saturation(self, saturation: float | None = None) -> float:
        """The ``saturation`` a call runs with: the one given (checked), else the model's calibrated
        ``config.saturation``."""
        return self.config.saturation if saturation is None else check_saturation(saturation)

    def default_chroma_sharpening(self, chroma_sharpening: float | None = None) -> float:
        """The ``chroma_sharpening`` a call runs with: the one given (checked), else the model's calibrated one (0 for
        pipelines saved without one)."""
        if chroma_sharpening is None:
            return self.config.get("chroma_sharpening", 0.0)
        return check_chroma_sharpening(chroma_sharpening)

    def default_detail_transfer(self, detail_transfer: float | None = None) -> float:
        """The ``detail_transfer`` a call runs with: the one given (checked), else the model's calibrated one (0 for
        pipelines saved without one)."""
        if detail_transfer is None:
            return self.config.get("detail_transfer", 0.0)
        return check_detail_transfer(detail_transfer)

    def default_num_inference_steps(self, num_inference_steps: int | None = None) -> int:
        """The ``num_inference_steps`` a call runs with: the one given (checked), else the model's calibrated one,
        else `DEFAULT_NUM_INFERENCE_STEPS`."""
        if num_inference_steps is None:
            return self.config.get("num_inference_steps") or DEFAULT_NUM_INFERENCE_STEPS
        return check_num_inference_steps(num_inference_steps)

    def default_strength(self, strength: float | None = None) -> float:
        """The ``strength`` a call runs with: the one given (checked), else the prior's calibrated
        ``config.strength``, else 1 (no prior: from pure noise)."""
        if strength is None:
            strength = self.chroma_prior.config.strength if self.chroma_prior is not None else 1.0
        return check_strength(strength)

    def default_sample_spread(self, sample_spread: list | None = None) -> list[tuple[str, float]]:
        """The (start, gain) pairs a call gives its images (image k of each input: pair k, cycling): the ones given
        (checked), else the model's calibrated ``config.sample_spread``, else every image from the prior at gain 1."""
        spread = check_sample_spread(sample_spread)
        if spread is None:
            spread = check_sample_spread(self.config.get("sample_spread"))
        return spread or [("prior", 1.0)]

    def get_timesteps(self, num_inference_steps: int, strength: float, device) -> torch.Tensor:
        """The timesteps a call runs, after ``set_timesteps(num_inference_steps)``: every one, or with ``strength``
        < 1 (sampling from the chroma prior) those from ``strength`` of the way from the end of the schedule on
        (at least the last), with the scheduler told where it begins (as diffusers' img2img pipelines)."""
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if strength >= 1.0:
            return timesteps
        start = min(round(len(timesteps) * (1.0 - strength)), len(timesteps) - 1)
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * self.scheduler.order)
        return timesteps[start:]

    def prepare_extra_step_kwargs(self, generator) -> dict:
        """The keyword arguments the scheduler's ``step`` takes beyond the sample: the ``generator`` for those that
        draw noise (DDPM, DPM-Solver++'s SDE variants), nothing for those that take none (UniPC)."""
        return {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}

    def prepare_latents(self, shape, dtype, device, generator, prior: torch.Tensor | None = None,
                        timestep: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The starting latents (N, 2, h, w): pure noise scaled to the scheduler's ``init_noise_sigma``, or, with a
        ``prior`` (N, 2, h, w, the UNet's space), the prior noised to ``timestep`` (SDEdit); the noise drawn from
        ``generator``, or the standard normal ``noise`` given (sampler distillation gives its student the same)."""
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        noise = noise.to(device=device, dtype=dtype)
        if prior is None:
            return noise * self.scheduler.init_noise_sigma
        return self.scheduler.add_noise(prior.to(device=device, dtype=dtype), noise, timestep.repeat(shape[0]))

    def predict(self, lightness, latents, t, features, image_embeds, guidance_scale: float) -> torch.Tensor:
        """The UNet's prediction for scaled noisy ab ``latents`` at step ``t`` (or one step per sample, (N,), as
        training's targets have) given the encoder's ``features`` (and pooled ``image_embeds``, fed to the UNet's
        class embedding); with features and ``guidance_scale`` != 1, classifier-free guided: uncond + scale *
        (cond - uncond), uncond being what the UNet saw when training hid the features. A guidance-distilled UNet
        (``config.distilled_guidance_scale`` d) gives uncond + d * (cond - uncond) in its conditional pass, so the
        scale is taken relative to d: at d, one pass."""
        model_input = torch.cat([lightness, self.scheduler.scale_model_input(latents, t)], dim=1)
        if features is None:
            return self.unet(model_input, t).sample
        guidance_scale = guidance_scale / self.one_pass_guidance_scale
        if guidance_scale == 1.0:
            return self.unet(torch.cat([model_input, features], dim=1), t, class_labels=image_embeds).sample
        unconditional_features, unconditional_embeds = self.image_encoder.unconditional(features, image_embeds)
        both = torch.cat([torch.cat([model_input, unconditional_features], dim=1), torch.cat([model_input, features], dim=1)])
        both_embeds = None if image_embeds is None else torch.cat([unconditional_embeds, image_embeds])
        both_t = t.repeat(2) if torch.is_tensor(t) and t.dim() == 1 else t  # one timestep per sample (training)
        unconditional, conditional = self.unet(both, both_t, class_labels=both_embeds).sample.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    @property
    def one_pass_guidance_scale(self) -> float:
        """The guidance scale one UNet pass a step gives: the model's ``distilled_guidance_scale``, else 1."""
        return self.config.get("distilled_guidance_scale") or 1.0

    def pull_towards_hints(self, model_output, latents, t, hinted, weight) -> torch.Tensor:
        """``model_output`` (noise or v) changed so that the clean chroma it implies moves towards ``hinted`` (the
        hints' scaled chroma) by ``weight`` (1 on a hint's pixel): the model's estimate of the final colours
        honours the hints at every step, and the sampler carries that into the next one."""
        current = latents.float()
        clean = clean_estimate(self.scheduler, current, model_output.float(), t)
        clean = clean + weight * (hinted - clean)
        return prediction_for(self.scheduler, current, clean, t).to(model_output.dtype)

    @staticmethod
    def conditioning(encoded: EncodedImage, device, dtype) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The ``encoded`` photos' features and pooled embeddings (None where there are none) on ``device`` in
        ``dtype``, as `predict` takes them."""
        return tuple(None if x is None else x.to(device=device, dtype=dtype) for x in (encoded.features, encoded.image_embeds))

    def predict_with_hints(self, lightness, latents, t, features, image_embeds, guidance_scale: float,
                           hints: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """`predict`, pulled towards ``hints`` (normalised hinted chroma (N, 2, h, w) and its weight (N, 1, h, w), as
        `prepare_hints` gives them; None: as predicted) by `pull_towards_hints`."""
        model_output = self.predict(lightness, latents, t, features, image_embeds, guidance_scale)
        if hints is None:
            return model_output
        hinted, weight = hints
        return self.pull_towards_hints(model_output, latents, t, hinted * self.config.chroma_scale, weight)

    @staticmethod
    def start_strength(start: str | float, strength: float, with_prior: bool) -> float:
        """Where a ``sample_spread`` ``start`` begins, as a strength (1: pure noise): "prior" at the call's
        ``strength``, a number at itself but never below ``strength`` (1 is pure noise), "noise" (or any start
        without a prior) at 1."""
        if not with_prior or start == "noise":
            return 1.0
        return strength if start == "prior" else max(float(start), strength)

    def lead_in(self, lightness, encoded: EncodedImage, start: float, strength: float, generator,
                guidance_scale: float, hints=None) -> tuple[EncodedImage, torch.Tensor]:
        """One UNet pass from the ``encoded`` prior noised to ``start`` (further than the call's ``strength``, with
        noise drawn from ``generator``), honouring ``hints``: its clean estimate becomes the prior and the noise that
        pass implies the noise that the call's steps from ``strength`` start with. The same as the scheduler's
        first-order (DDIM) step from the start to the call's first timestep, for any scheduler: a draw whose
        colours differ more than the prior's (more noise) but keep them in part (benchmarks/README.md). It is not one
        of the call's steps (no callback, no intermediate image)."""
        device, dtype = lightness.device, self.unet.dtype
        timestep = torch.tensor(round(start * self.scheduler.config.num_train_timesteps) - 1, device=device)
        prior = encoded.prior.to(device=device, dtype=torch.float32)
        signal, noise = signal_and_noise(self.scheduler, prior, timestep)  # the training schedule's, at any timestep
        drawn = randn_tensor(prior.shape, generator=generator, device=device, dtype=torch.float32)
        latents = (signal * prior + noise * drawn).to(dtype)
        features, image_embeds = self.conditioning(encoded, device, dtype)
        model_output = self.predict_with_hints(lightness.to(dtype), latents, timestep, features, image_embeds,
                                               guidance_scale, hints)
        clean = clean_estimate(self.scheduler, latents.float(), model_output.float(), timestep)
        return encoded._replace(prior=clean), noise_estimate(self.scheduler, latents.float(), clean, timestep)

    def denoise_chroma(
        self,
        lightness: torch.Tensor,
        num_inference_steps: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        return_steps: bool = False,
        encoded: EncodedImage = EncodedImage(),
        guidance_scale: float = 1.0,
        hints: tuple[torch.Tensor, torch.Tensor] | None = None,
        strength: float = 1.0,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Sample normalised ab (N, 2, h, w) for working-resolution L (N, 1, h, w) and the ``encoded`` photos
        (`EncodedImage`, batched like ``lightness``), honouring ``hints`` (normalised hinted chroma (N, 2, h, w)
        and its weight (N, 1, h, w), from `colorize.hints.hint_map`), starting from the encoded chroma prior noised
        to ``strength`` when there is one (`get_timesteps`, `prepare_latents`, which draws the starting ``noise``
        unless it is given); with ``return_steps`` also the normalised noisy ab after every step run (else [])."""
        dtype, device = self.unet.dtype, lightness.device
        prior = encoded.prior if strength < 1.0 else None
        timesteps = self.get_timesteps(num_inference_steps, strength if prior is not None else 1.0, device)
        shape = (lightness.shape[0], 2, *lightness.shape[2:])
        latents = self.prepare_latents(shape, dtype, device, generator, prior, timesteps[:1], noise)
        lightness = lightness.to(dtype)
        features, image_embeds = self.conditioning(encoded, device, dtype)
        steps, extra_step_kwargs = [], self.prepare_extra_step_kwargs(generator)
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_output = self.predict_with_hints(lightness, latents, t, features, image_embeds, guidance_scale, hints)
            latents = self.scheduler.step(model_output, t, latents, **extra_step_kwargs).prev_sample
            if callback_on_step_end is not None:
                callback_kwargs = {}
                for name in callback_on_step_end_tensor_inputs:
                    callback_kwargs[name] = locals()[name]
                callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                latents = callback_outputs.pop("latents", latents)
            if return_steps:
                steps.append(latents.float() / self.config.chroma_scale)
        return latents.float() / self.config.chroma_scale, steps

    @staticmethod
    def mean_of_drawn(drawn: list[SampledChroma]) -> SampledChroma:
        """A ``sample_spread`` "mean" output: the mean of its photo's ``drawn`` outputs' chroma (and of their kept
        steps, brought to the fewest), on their lightness and hints. A consensus of their colours, muted where they
        disagree: no draw of its own, and closer to the photo than any one draw where its colours are uncertain
        (benchmarks/README.md)."""
        fewest = min(len(sample.steps) for sample in drawn)
        steps = [torch.stack(frames).mean(0) for frames in zip(*(pick_frames(sample.steps, fewest) for sample in drawn))]
        return SampledChroma(torch.stack([sample.chroma for sample in drawn]).mean(0), steps, drawn[0].lightness,
                             drawn[0].hint_weight)

    def prepare_hints(self, checked_hints: list[list], photos: list[int], lightness: list[torch.Tensor],
                      small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The hinted chroma and weight maps (N, 2, h, w), (N, 1, h, w) of a batch of outputs at the working
        resolution of ``small`` (their L, (N, 1, h, w)); ``photos``: each output's input photo, whose checked hints
        (``checked_hints``) are spread once over its full-resolution ``lightness``. None when no photo has hints."""
        if not any(checked_hints[photo] for photo in photos):
            return None
        maps = {}
        for position, photo in enumerate(photos):
            if photo not in maps:
                maps[photo] = self.hint_maps(checked_hints[photo], lightness[photo], small[position : position + 1])
        return tuple(torch.cat(parts).to(small.device) for parts in zip(*(maps[photo] for photo in photos)))

    @staticmethod
    def hint_maps(checked: list, full: torch.Tensor, small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One output's hinted chroma and weight maps at the working resolution (zeros: no hints)."""
        if not checked:
            return small.new_zeros(1, 2, *small.shape[-2:]), small.new_zeros(1, 1, *small.shape[-2:])
        return hint_map(checked, tuple(full.shape[-2:]), small)

    @staticmethod
    def saturate(chroma: torch.Tensor, saturation: float | torch.Tensor, hint_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sampled normalised ab (N, 2, h, w) times ``saturation`` (a number, or one per image (N, 1, 1, 1)); where
        hints pull (``hint_weight``, (N, 1, h, w), 1 on a hint's pixel) the gain fades out, so hinted colours stay
        the user's."""
        if isinstance(saturation, float) and saturation == 1.0:
            return chroma
        if hint_weight is None:
            return chroma * saturation
        return chroma * (1 + (saturation - 1) * (1 - hint_weight.to(chroma)))

    @staticmethod
    def sharpen(chroma: torch.Tensor, amount: float, lightness: torch.Tensor,
                hint_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sampled normalised ab (N, 2, h, w) plus ``amount`` times its detail (its difference from a Gaussian blur
        of it, sigma `SHARPENING_SIGMA`) where the ``lightness`` at the same size (N, 1, h, w) has an edge: an unsharp
        mask weighted by 1 - exp(-|grad L| / `SHARPENING_EDGE_SCALE`), so the colours' edges sharpen where the photo
        has them and a flat sky's soft blotches are not turned into speckle. Where hints pull (``hint_weight``,
        (N, 1, h, w)) the detail is not amplified, so hinted colours stay the user's."""
        if amount == 0:
            return chroma
        blurred = gaussian_blur(chroma, SHARPENING_SIGMA)
        edges = spatial_gradient(lightness.to(chroma)).norm(dim=2)
        detail = (chroma - blurred) * (1 - torch.exp(-edges / SHARPENING_EDGE_SCALE))
        if hint_weight is not None:
            detail = detail * (1 - hint_weight.to(chroma))
        return chroma + amount * detail

    @staticmethod
    def transfer_detail(chroma: torch.Tensor, amount: float, lightness: torch.Tensor,
                        hint_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sampled normalised ab (N, 2, h, w) plus ``amount`` times the lightness's fine detail carried into the
        chroma: the ``lightness`` at the same size (N, 1, h, w) minus its Gaussian blur (sigma `DETAIL_SIGMA`), times
        the local slope of each chroma channel on that blurred lightness (the guided filter's local linear model,
        He et al. 2013, in windows of `DETAIL_WINDOW_SIGMA`, regularised by `DETAIL_EPS`). Where the colours do not
        change with the lightness the slope is 0 and nothing is added; hinted pixels (``hint_weight``) get no
        detail, so they stay the user's."""
        if amount == 0:
            return chroma
        lightness = lightness.to(chroma)
        coarse = gaussian_blur(lightness, DETAIL_SIGMA)
        mean_lightness, mean_chroma = gaussian_blur(coarse, DETAIL_WINDOW_SIGMA), gaussian_blur(chroma, DETAIL_WINDOW_SIGMA)
        covariance = gaussian_blur(coarse * chroma, DETAIL_WINDOW_SIGMA) - mean_lightness * mean_chroma
        variance = gaussian_blur(coarse * coarse, DETAIL_WINDOW_SIGMA) - mean_lightness * mean_lightness
        detail = covariance / (variance + DETAIL_EPS) * (lightness - coarse)
        if hint_weight is not None:
            detail = detail * (1 - hint_weight.to(chroma))
        return chroma + amount * detail

    def finish_chroma(self, chroma: torch.Tensor, lightness: torch.Tensor, sharpening: float,
                      saturation: float | torch.Tensor, hint_weight: torch.Tensor | None = None,
                      detail: float = 0.0) -> torch.Tensor:
        """Sampled normalised ab (N, 2, h, w) on its ``lightness`` (N, 1, h, w) with the call's calibrations, in
        their order: `sharpen`, `transfer_detail` (``detail``), then `saturate` (hinted pixels keep their colour
        through all three)."""
        chroma = self.transfer_detail(self.sharpen(chroma, sharpening, lightness, hint_weight), detail, lightness,
                                      hint_weight)
        return self.saturate(chroma, saturation, hint_weight)

    @staticmethod
    def compose(lightness: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
        """Full-resolution L (N, 1, H, W) + low-resolution ab (N, 2, h, w) -> RGB (N, 3, H, W) in [0, 1].

        Out-of-gamut pixels lose chroma rather than lightness, so the output keeps the input's L. Computed in bands
        of rows (`colorize.color.in_row_bands`), so a large photo needs little memory beyond its own."""
        chroma = resize(chroma, lightness.shape[-2:])
        return in_row_bands(lambda light, ab: lab_to_rgb(light, fit_chroma_to_gamut(light, ab)), lightness, chroma)

    def decode_latents(self, latents: torch.Tensor, lightness: torch.Tensor, saturation: float | None = None,
                       chroma_sharpening: float | None = None, detail_transfer: float | None = None) -> torch.Tensor:
        """RGB (N, 3, H, W) in [0, 1] of scaled ab ``latents`` (N, 2, h, w: noisy or clean, as
        ``callback_on_step_end`` receives them) on normalised ``lightness`` (N, 1, H, W) of any size, with
        ``chroma_sharpening``, ``detail_transfer`` and ``saturation`` (None: the model's own) as the call applies
        them (without the fade towards hints): e.g. a small picture of every step of one sample."""
        saturation = self.default_saturation(saturation)
        chroma = latents.float().to(lightness.device) / self.config.chroma_scale
        sharpening = self.default_chroma_sharpening(chroma_sharpening)
        detail = self.default_detail_transfer(detail_transfer)
        return self.compose(lightness, self.finish_chroma(chroma, resize(lightness, chroma.shape[-2:]), sharpening,
                                                          saturation, detail=detail))

    @staticmethod
    def _format(rgb_images: list[torch.Tensor], output_type: str):
        if output_type == "pt":
            same_size = len({tuple(image.shape) for image in rgb_images}) == 1
            return torch.cat(rgb_images) if same_size else [image[0] for image in rgb_images]
        arrays = [image[0].permute(1, 2, 0).cpu().numpy() for image in rgb_images]
        if output_type == "pil":
            return [PIL.Image.fromarray(to_uint8(array)) for array in arrays]
        same_size = len({array.shape for array in arrays}) == 1
        return np.stack(arrays) if same_size else arrays

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray | torch.Tensor | list,
        num_inference_steps: int | None = None,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_images_per_prompt: int = 1,
        output_type: str = "pil",
        return_dict: bool = True,
        return_intermediates: bool = False,
        num_intermediates: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        hints: list | None = None,
        saturation: float | None = None,
        strength: float | None = None,
        working_size: int | None = None,
        sample_spread: list | None = None,
        chroma_sharpening: float | None = None,
        detail_transfer: float | None = None,
    ) -> ColorizationPipelineOutput | tuple:
        r"""
        Colorize one image or a list of images.

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                Images of any size and aspect ratio. Colour inputs are turned gray first (only their L is used).
                Arrays are (H, W, 3) or (H, W), in [0, 1] (or uint8 in 0..255); tensors (3, H, W) or (1, H, W) in [0, 1].
            num_inference_steps (`int`, *optional*):
                The number of denoising steps of the schedule (with the prior, ``strength`` of them run). Default:
                the model's calibrated ``config.num_inference_steps`` (2 for a one-pass distilled model: one UNet
                pass), else `DEFAULT_NUM_INFERENCE_STEPS` (4).
            guidance_scale (`float`, *optional*, defaults to `DEFAULT_GUIDANCE_SCALE` (2)):
                Classifier-free guidance on the image encoder's features: 1 uses them as trained; above 1
                pushes the colours further towards what the encoder recognises (more vivid, at one extra UNet
                pass per step); 0 ignores them. On a guidance-distilled model, its ``distilled_guidance_scale``
                costs one UNet pass per step and any other scale two. No effect for a pipeline without an image
                encoder.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic. A list needs one generator per output image, in output order. The
                commands seed sample k of every photo with ``seed + k`` (`colorize.seeding.sample_generators`), so
                ``generator=torch.Generator().manual_seed(seed)`` on one photo gives the colours of ``colorize
                photo.jpg --seed seed``.
            num_images_per_prompt (`int`, *optional*, defaults to 1):
                How many different colorizations to make of each input; ``sample_spread`` says how they differ.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, *optional*, defaults to `True`):
                Return a [`ColorizationPipelineOutput`] instead of a plain tuple.
            return_intermediates (`bool`, *optional*, defaults to `False`):
                Also return the images as they stand after denoising steps (the "watch it colorize" view).
            num_intermediates (`int`, *optional*):
                With ``return_intermediates``: keep only this many steps, evenly spaced and ending with the
                last one (each is composed at full resolution). Default: every step (of the shortest run, when
                images started from the prior and from noise run different numbers of steps).
            callback_on_step_end (`Callable`, *optional*):
                Called as ``callback_on_step_end(pipe, step_index, timestep, callback_kwargs)`` after each step;
                may return a dict with a replacement ``"latents"`` (noisy scaled ab at the working resolution).
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*):
                Tensors passed in ``callback_kwargs`` (default: all there are); only ``"latents"`` is available.
            hints (`list`, *optional*):
                Colours the user knows: ``[(x, y, color), ...]`` for one image, or one such list per image.
                ``(x, y)`` are pixel coordinates in the input image, ``color`` an RGB tuple (0-255), ``"#rrggbb"``
                or a colour name. Each hint's chroma is carried over the region around it of similar lightness,
                and the model colours the rest to match (`colorize.hints`). None or empty lists: no hints, the
                same output as without the argument.
            saturation (`float`, *optional*):
                Multiplies the sampled chroma (a, b) before it is recombined with L: above 1 more saturated,
                below 1 paler, 0 gray; hues and lightness are kept (colours pushed out of the sRGB gamut lose
                chroma, not lightness), and hinted pixels keep their hint's colour. Default: the model's
                calibrated ``config.saturation`` (chosen by measurement at the default ``guidance_scale``: it brings the
                colours to the real photos' vividness without the hue collapse that stronger guidance brings; 1 for
                pipelines saved without one).
            chroma_sharpening (`float`, *optional*):
                An unsharp mask on the sampled chroma (`sharpen`): its ab plus this amount times its difference from
                a blur of it where the lightness has an edge, before the saturation gain; 0 none. Default: the
                model's calibrated ``config.chroma_sharpening`` (0 for pipelines saved without one).
            detail_transfer (`float`, *optional*):
                Colour detail from the lightness (`transfer_detail`): the chroma plus this amount times the
                photo's fine lightness detail scaled by how the chroma locally varies with the lightness, after the
                unsharp mask and before the saturation gain; 0 none. Default: the model's calibrated
                ``config.detail_transfer`` (0 for pipelines saved without one).
            strength (`float`, *optional*):
                With a ``chroma_prior``: how much of the noise schedule the prior's colours are noised to before
                the diffusion refines them (diffusers' img2img name): 1 samples from pure noise (the prior unused),
                lower keeps more of the prior and runs fewer of the ``num_inference_steps``. Default: the
                prior's calibrated ``config.strength``. No effect without a prior.
            working_size (`int`, *optional*):
                The shorter side, in pixels, of the grid the UNet denoises the chroma on (rounded to the UNet's
                multiple; the output keeps the input's size and its own full-resolution L either way). Larger
                places colours more finely (a daisy's white petals apart from its yellow heart) at about the
                square of the ratio in time. Default: the model's calibrated ``config.working_size`` (chosen by
                measurement), else its training resolution ``unet.config.sample_size``.
            sample_spread (`list`, *optional*):
                (start, gain) pairs, as ``[("prior", 1.0), ("noise", 1.3), (0.75, 0.7)]`` or ``["prior:1",
                "noise:1.3", "0.75:0.7"]``: image k of each input takes pair k (cycling). ``"prior"`` starts from the
                chroma prior at ``strength`` (the model's best guess), ``"noise"`` from pure noise (a fresh draw,
                running every step: different hues where the photo is ambiguous, the same where it is not), a number
                above ``strength`` from the prior noised that far, led into the call's steps by one UNet pass
                (`lead_in`: a draw between the two; at or below ``strength``, the same as ``"prior"``; 1, pure
                noise), ``"mean"`` the mean of the input's other (drawn) images' colours (`mean_of_drawn`: no draw
                of its own; not the first pair); ``gain`` multiplies ``saturation``. With ``strength`` 1 or no prior
                every image starts from noise. Default: the model's calibrated ``config.sample_spread``, else every
                image from the prior at gain 1.

        Returns:
            [`ColorizationPipelineOutput`] or `tuple`: the images (and intermediates, or `None`), in input order,
            ``num_images_per_prompt`` consecutive outputs per input.
        """
        images = image if isinstance(image, list) else list(image) if is_batch(image) else [image]
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = self._callback_tensor_inputs
        self.check_inputs(images, num_images_per_prompt, generator, output_type, guidance_scale,
                          callback_on_step_end_tensor_inputs)
        num_outputs = len(images) * num_images_per_prompt
        photo_of = [index // num_images_per_prompt for index in range(num_outputs)]  # each output's input photo

        lightness = [self._prepare_lightness(item) for item in images]  # full resolution, once per photo
        num_inference_steps = self.default_num_inference_steps(num_inference_steps)
        saturation = self.default_saturation(saturation)
        sharpening = self.default_chroma_sharpening(chroma_sharpening)
        detail = self.default_detail_transfer(detail_transfer)
        strength = self.default_strength(strength)
        working_size = self.default_working_size(working_size)
        with_prior = self.chroma_prior is not None and strength < 1.0
        checked_hints = [check_hints(photo_hints, width=full.shape[-1], height=full.shape[-2])
                         for photo_hints, full in zip(hints_per_image(hints, len(images)), lightness)]

        # Outputs whose working size and start (the strength their prior is noised to; 1: pure noise) are the same
        # are denoised together; a "mean" output is not drawn but takes the mean of its photo's drawn ones.
        spread = self.default_sample_spread(sample_spread)
        starts, gains = zip(*(spread[index % num_images_per_prompt % len(spread)] for index in range(num_outputs)))
        groups: dict[tuple[tuple[int, int], float], list[int]] = {}
        drawn_of: dict[int, list[int]] = {}  # each photo's drawn outputs
        for index, photo in enumerate(photo_of):
            if starts[index] != "mean":
                size = self.model_size_for(*lightness[photo].shape[-2:], working_size)
                groups.setdefault((size, self.start_strength(starts[index], strength, with_prior)), []).append(index)
                drawn_of.setdefault(photo, []).append(index)

        # each output's sampled chroma and kept steps (normalised ab at the working size), its working-size
        # lightness and the weight of its hints, finished and composed once all are drawn
        sampled: list[SampledChroma | None] = [None] * num_outputs
        encoded_photos = {}
        for (size, start), indices in groups.items():
            photos = [photo_of[index] for index in indices]
            small = torch.cat([resize(lightness[photo], size) for photo in photos])
            group_hints = self.prepare_hints(checked_hints, photos, lightness, small)
            group_generator = [generator[index] for index in indices] if isinstance(generator, list) else generator
            encoded = self.encode_photos(lightness, photos, size, with_prior, cache=encoded_photos)
            noise = None
            if strength < start < 1.0:  # further than the call's strength, short of pure noise
                encoded, noise = self.lead_in(small, encoded, start, strength, group_generator, guidance_scale, group_hints)
            chroma, steps = self.denoise_chroma(
                small,
                num_inference_steps,
                generator=group_generator,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                return_steps=return_intermediates,
                encoded=encoded,
                guidance_scale=guidance_scale,
                hints=group_hints,
                strength=1.0 if start >= 1.0 else strength,
                noise=noise,
            )
            kept = steps if num_intermediates is None else pick_frames(steps, num_intermediates)
            for position, index in enumerate(indices):
                row = slice(position, position + 1)
                sampled[index] = SampledChroma(chroma[row], [step[row] for step in kept], small[row],
                                               None if group_hints is None else group_hints[1][row])
        for index in range(num_outputs):
            if sampled[index] is None:  # a "mean" output
                sampled[index] = self.mean_of_drawn([sampled[drawn] for drawn in drawn_of[photo_of[index]]])

        rgb_images: list[torch.Tensor] = []
        step_images: list[list[torch.Tensor]] = []
        for index, (chroma, kept, small, hint_weight) in enumerate(sampled):
            full, gain = lightness[photo_of[index]], saturation * gains[index]
            rgb_images.append(self.compose(full, self.finish_chroma(chroma, small, sharpening, gain, hint_weight, detail)))
            step_images.append([self.compose(full, self.finish_chroma(step, small, sharpening, gain, hint_weight, detail))
                                for step in kept])

        output = self._format(rgb_images, output_type)
        intermediates = None
        if return_intermediates:
            shortest = min(len(frames) for frames in step_images)
            step_images = [pick_frames(frames, shortest) for frames in step_images]
            intermediates = [self._format(list(step), output_type) for step in zip(*step_images)]
        self.maybe_free_model_hooks()

        if not return_dict:
            return (output, intermediates)
        return ColorizationPipelineOutput(images=output, intermediates=intermediates)
