"""What a run starts from: a saved pipeline to fine-tune (its UNet, encoder, scheduler config, calibrated
saturation and chroma sharpening, chroma prior and working size), or a fresh UNet of a preset; and the pipeline a
run saves."""

import logging
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler, UNet2DModel

from ..chroma_prior import DEFAULT_STRENGTH, ChromaPrior
from ..color import DEFAULT_CHROMA_SCALE
from ..image_encoder import ImageEncoder
from ..modeling import PRESETS, add_class_embedding, add_feature_channels, build_noise_scheduler, build_unet, time_embedding_dim
from ..pipeline_colorization import DEFAULT_NUM_INFERENCE_STEPS, ColorizationPipeline
from ..schedulers import scheduler_from_name

logger = logging.getLogger(__name__)


@dataclass
class StartingPoint:
    """The models and settings a run trains from, and keeps in the pipeline it saves."""

    unet: UNet2DModel
    image_encoder: ImageEncoder | None
    noise_scheduler: DDPMScheduler
    chroma_scale: float
    saturation: float = 1.0  # a fine-tune keeps its pipeline's calibrated gain; a fresh model starts at 1
    chroma_sharpening: float = 0.0  # the same for its unsharp mask on the sampled chroma
    detail_transfer: float = 0.0  # and for its colour detail from the lightness
    chroma_prior: ChromaPrior | None = None  # untouched by UNet training, kept as it was
    working_size: int | None = None  # the calibrated working size, kept while the training resolution is
    distilled_guidance_scale: float | None = None  # --distill_guidance_scale: the saved pipeline records it


def pretrained_unet_config(pretrained_model_name_or_path: str | None, revision=None, cache_dir=None) -> dict:
    """The pretrained pipeline's UNet config (config file only, weights not read), or {} for a fresh model;
    ValueError in one line when it cannot be read."""
    if not pretrained_model_name_or_path:
        return {}
    try:
        return dict(UNet2DModel.load_config(pretrained_model_name_or_path, subfolder="unet", revision=revision,
                                            cache_dir=cache_dir))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the pipeline --pretrained_model_name_or_path {pretrained_model_name_or_path}: "
                         f"{str(error).splitlines()[0]}") from None


def choose_resolution(resolution: int | None, unet_config: dict, model_preset: str) -> int:
    """--resolution, or the pretrained UNet's sample_size (fine-tuning keeps the model's working size), else 64;
    ValueError when it is not a multiple of the UNet's downsampling factor."""
    chosen = resolution or unet_config.get("sample_size") or 64
    if resolution is None and unet_config:
        logger.info(f"--resolution {chosen}: the pretrained UNet's sample_size (its working size)")
    levels = len(unet_config.get("block_out_channels") or PRESETS[model_preset]["block_out_channels"])
    factor = 2 ** (levels - 1)
    if chosen % factor:
        lower, upper = chosen // factor * factor, (chosen // factor + 1) * factor
        raise ValueError(f"--resolution {chosen} is not a multiple of {factor}, the UNet's downsampling factor: use "
                         f"{lower or upper} or {upper}")
    return chosen


def load_starting_point(args) -> StartingPoint:
    """Fine-tune from ``args.pretrained_model_name_or_path`` (adding an encoder, fine or pooled features when asked
    for, their new weights starting at zero) or start fresh from ``args.model_preset``; ValueError in one line when
    the pipeline cannot be loaded or cannot be trained as asked."""
    if args.pretrained_model_name_or_path:
        start = load_pretrained(args)
        start.distilled_guidance_scale = getattr(args, "distill_guidance_scale", None)
    else:
        start = fresh_start(args)
    start.noise_scheduler = build_noise_scheduler(
        start.chroma_scale, dict(start.noise_scheduler.config) if start.noise_scheduler is not None else {},
        num_train_timesteps=args.ddpm_num_steps, beta_schedule=args.ddpm_beta_schedule,
        prediction_type=args.prediction_type,
    )
    return start


def load_saved_pipeline(args) -> ColorizationPipeline:
    """``--pretrained_model_name_or_path`` (safetensors), or ValueError in one line saying why it cannot be loaded."""
    name = args.pretrained_model_name_or_path
    try:
        return ColorizationPipeline.from_pretrained(name, revision=args.revision, cache_dir=args.cache_dir,
                                                    use_safetensors=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load --pretrained_model_name_or_path {name}: {str(error).splitlines()[0]}") from None


def load_pretrained(args) -> StartingPoint:
    """The pipeline to fine-tune, with what ``args`` adds to it; its scheduler config is the run's base."""
    name = args.pretrained_model_name_or_path
    pretrained = load_saved_pipeline(args)
    unet, encoder, working_size = pretrained.unet, pretrained.image_encoder, pretrained.config.working_size
    if pretrained.config.get("distilled_guidance_scale") is not None and getattr(args, "distill_guidance_scale", None) is None:
        logger.info(f"{name} is guidance-distilled: this run trains its plain conditional output, and the saved "
                    "pipeline guides with two passes")
    if pretrained.config.get("num_inference_steps") is not None:  # `distill_sampler.py`'s one-pass schedule
        logger.info(f"{name} is sampler-distilled: this run trains its plain prediction, and the saved pipeline "
                    f"samples with {DEFAULT_NUM_INFERENCE_STEPS} steps from the prior at strength {DEFAULT_STRENGTH}")
        pretrained.chroma_prior.register_to_config(strength=DEFAULT_STRENGTH)
    if unet.config.sample_size != args.resolution:
        if working_size is not None:
            logger.info(f"working size {working_size} was measured for {unet.config.sample_size} px training: this "
                        f"model samples at its --resolution {args.resolution} (`colorize publish --working-size` to change)")
            working_size = None
        unet.register_to_config(sample_size=args.resolution)
    if encoder is None and args.image_encoder:
        encoder = ImageEncoder.from_imagenet(projection_channels=args.projection_channels)
        unet = add_feature_channels(unet, args.projection_channels)
    if encoder is not None:
        if args.fine_features and encoder.fine_projection is None:
            encoder.add_fine_projection()
        elif args.fine_features is False and encoder.fine_projection is not None:
            raise ValueError(f"{name} uses fine features: it cannot be trained without them")
        if args.pooled_features and encoder.pooled_projection is None:
            unet = add_class_embedding(unet)
            encoder.add_pooled_projection(time_embedding_dim(unet))
        elif args.pooled_features is False and encoder.pooled_projection is not None:
            raise ValueError(f"{name} uses pooled features: it cannot be trained without them")
    return StartingPoint(
        unet=unet, image_encoder=encoder, noise_scheduler=pretrained.scheduler,
        chroma_scale=args.chroma_scale or pretrained.config.chroma_scale, saturation=pretrained.config.saturation,
        chroma_sharpening=pretrained.default_chroma_sharpening(),
        detail_transfer=pretrained.default_detail_transfer(),
        chroma_prior=pretrained.chroma_prior, working_size=working_size,
    )


def load_teacher(args, device) -> ColorizationPipeline:
    """The frozen pipeline guidance distillation learns from (--pretrained_model_name_or_path, loaded once more, in
    eval mode); ValueError in one line when it has no image encoder or is itself guidance-distilled."""
    name = args.pretrained_model_name_or_path
    teacher = ColorizationPipeline.from_pretrained(name, revision=args.revision, cache_dir=args.cache_dir)
    if teacher.image_encoder is None:
        raise ValueError(f"--distill_guidance_scale: {name} has no image encoder, so no guidance to distil")
    if teacher.config.get("distilled_guidance_scale") is not None:
        raise ValueError(f"--distill_guidance_scale: {name} is already guidance-distilled; distil its teacher")
    for module in (teacher.unet, teacher.image_encoder):
        module.requires_grad_(False).eval()
    return teacher.to(device)


def fresh_start(args) -> StartingPoint:
    """A new UNet of ``args.model_preset`` at ``args.resolution`` (with a new ImageNet encoder unless
    --no-image_encoder)."""
    encoder = None
    if args.image_encoder:
        encoder = ImageEncoder.from_imagenet(projection_channels=args.projection_channels,
                                             fine_features=bool(args.fine_features))
    channels = encoder.config.projection_channels if encoder is not None else 0
    pooled = bool(args.pooled_features and encoder is not None)
    unet = build_unet(args.model_preset, args.resolution, channels, class_embedding=pooled)
    if pooled:
        encoder.add_pooled_projection(time_embedding_dim(unet))
    return StartingPoint(unet=unet, image_encoder=encoder, noise_scheduler=None,
                         chroma_scale=args.chroma_scale or DEFAULT_CHROMA_SCALE)


def make_pipeline(start: StartingPoint, unet: torch.nn.Module, image_encoder: torch.nn.Module | None,
                  inference_scheduler: str) -> ColorizationPipeline:
    """The pipeline a run saves (and validates): the trained ``unet`` and ``image_encoder`` (unwrapped), sampling
    with ``inference_scheduler`` built from the training DDPM config (so a fine-tune rebuilds the same
    DDPMScheduler), with the starting point's chroma scale, saturation, chroma sharpening, detail transfer, prior and working
    size."""
    pipeline = ColorizationPipeline(
        unet=unet,
        scheduler=scheduler_from_name(inference_scheduler, start.noise_scheduler.config),
        image_encoder=image_encoder,
        chroma_scale=start.chroma_scale,
        saturation=start.saturation,
        chroma_sharpening=start.chroma_sharpening,
        detail_transfer=start.detail_transfer,
        chroma_prior=start.chroma_prior if image_encoder is not None else None,
        working_size=start.working_size,
        distilled_guidance_scale=start.distilled_guidance_scale,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
