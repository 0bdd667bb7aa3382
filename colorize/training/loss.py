"""The training objective: noise the chroma, predict the noise (or v) given L and the image features, score it;
each batch's random draws (noise, timesteps, feature dropout) from its own seeded generator."""

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from ..color import rgb_to_lab
from ..pipeline_colorization import EncodedImage
from ..schedulers import clean_estimate, prediction_for
from .crops import derived_seed
from .perceptual import ChromaPerceptualLoss


def crop_features(projected: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Projected whole-photo features (N, C, fh, fw) sampled at training crops' ``grid`` (N, s, s, 2), made by
    `colorize.training.crops.feature_grids`: (N, C, s, s), aligned with the crops as resizing-then-cropping would be."""
    return F.grid_sample(projected, grid.to(projected.dtype), mode="bilinear", padding_mode="border", align_corners=False)


TIMESTEP_BIAS_STRATEGIES = ("none", "earlier", "later", "range")


def check_timestep_bias(strategy: str, multiplier: float, portion: float, begin: int, end: int,
                        num_train_timesteps: int | None = None):
    """ValueError, in one line naming the option, when the ``--timestep_bias_*`` options cannot be used (the range's
    end is checked against ``num_train_timesteps`` once the schedule is known)."""
    if strategy not in TIMESTEP_BIAS_STRATEGIES:
        raise ValueError(f"unknown timestep_bias_strategy '{strategy}'; choose one of {', '.join(TIMESTEP_BIAS_STRATEGIES)}")
    if multiplier <= 0:
        raise ValueError(f"timestep_bias_multiplier must be positive, got {multiplier}")
    if not 0 < portion < 1:
        raise ValueError(f"timestep_bias_portion must be between 0 and 1, got {portion}")
    if not 0 <= begin < end:
        raise ValueError(f"timestep_bias_begin must be at least 0 and below timestep_bias_end, got [{begin}, {end})")
    if strategy == "range" and num_train_timesteps is not None and end > num_train_timesteps:
        raise ValueError(f"the timestep bias range [{begin}, {end}) must lie within [0, {num_train_timesteps}]")


def timestep_weights(
    num_train_timesteps: int, strategy: str = "none", multiplier: float = 1.0, portion: float = 0.25,
    begin: int = 0, end: int = 1000,
) -> torch.Tensor | None:
    """Relative sampling weights (num_train_timesteps,) of the training timesteps, or None for uniform sampling.

    The options of diffusers' SDXL training script (``--timestep_bias_*``, checked by `check_timestep_bias`):
    ``later`` multiplies the weight of the noisiest ``portion`` of the timesteps by ``multiplier``, ``earlier``
    the least noisy ones, ``range`` those in [begin, end). A multiplier below 1 samples the chosen timesteps
    less often."""
    check_timestep_bias(strategy, multiplier, portion, begin, end, num_train_timesteps)
    if strategy == "none" or multiplier == 1.0:
        return None
    if strategy == "range":
        chosen = slice(begin, end)
    else:
        count = max(1, round(num_train_timesteps * portion))
        chosen = slice(num_train_timesteps - count, None) if strategy == "later" else slice(0, count)
    weights = torch.ones(num_train_timesteps)
    weights[chosen] *= multiplier
    return weights / weights.sum()


def step_generator(seed: int, batch_number: int, process_index: int, device) -> torch.Generator:
    """The random stream of one training batch (noise, timesteps, feature dropout): a function of the run's seed
    and the batch's number in the run, so a resumed run repeats it exactly."""
    return torch.Generator(device=device).manual_seed(derived_seed(seed, batch_number, process_index))


def feature_keep_mask(batch: dict, dropout: float, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Which samples of the batch see their photo's features (feature dropout hides each with probability
    ``dropout``, drawn from ``generator``), as a bool (N,); None when nothing is hidden."""
    if dropout <= 0:
        return None
    features = batch["features"]
    return torch.rand(features.shape[0], device=features.device, generator=generator) >= dropout


def project_features(encoder, batch: dict, keep: torch.Tensor | None = None):
    """The learned projections of the batch's cached whole-photo features, the samples not in ``keep`` (from
    `feature_keep_mask`) hidden (set to zero, as the pipeline's unconditional branch sees them); then sampled at
    the crops' ``feature_grid``. Returns (the projected map at the crops, the pooled time-embedding term or None)."""
    features, pooled = batch["features"], batch["pooled_features"]
    if keep is not None:
        features = features * keep.view(-1, 1, 1, 1).to(features.dtype)
        pooled = pooled * keep.view(-1, 1).to(pooled.dtype)
    projected, image_embeds = encoder(features, pooled)
    return crop_features(projected, batch["feature_grid"]), image_embeds


def sample_timesteps(num_train_timesteps: int, count: int, weights: torch.Tensor | None, device, generator=None):
    """``count`` training timesteps: uniform, or drawn with `timestep_weights`."""
    if weights is None:
        return torch.randint(0, num_train_timesteps, (count,), device=device, generator=generator)
    return torch.multinomial(weights.to(device), count, replacement=True, generator=generator)


def noised_chroma(rgb: torch.Tensor, chroma_scale: float, noise_scheduler: DDPMScheduler, generator=None,
                  timestep_weights: torch.Tensor | None = None):
    """A batch of RGB crops (N, 3, H, W) in [0, 1] as the UNet trains on them: (L, the scaled clean ab, the noise,
    the timesteps drawn (uniform, or with `timestep_weights`), the noisy ab), drawn from ``generator``."""
    lightness, chroma = rgb_to_lab(rgb)
    clean = chroma * chroma_scale
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    timesteps = sample_timesteps(
        noise_scheduler.config.num_train_timesteps, clean.shape[0], timestep_weights, clean.device, generator
    )
    return lightness, clean, noise, timesteps, noise_scheduler.add_noise(clean, noise, timesteps)


def unet_input(lightness: torch.Tensor, noisy: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """What the UNet sees: L, the noisy ab and (when there is an encoder) its projected features, stacked."""
    return torch.cat([lightness, noisy] if features is None else [lightness, noisy, features.to(noisy.dtype)], dim=1)


def diffusion_loss(
    unet,
    noise_scheduler: DDPMScheduler,
    rgb: torch.Tensor,
    chroma_scale: float,
    features: torch.Tensor | None = None,
    snr_gamma: float | None = None,
    image_embeds: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    timestep_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training objective for a batch of RGB crops (N, 3, H, W) in [0, 1]: noise the scaled ab at random
    timesteps and score the UNet's prediction of the noise (or of v) given L (and the image encoder's
    ``features`` (N, C, H, W) and pooled ``image_embeds`` (N, D), for the UNet's class embedding, when given)
    by mean squared error.

    ``snr_gamma``: Min-SNR-gamma weighting (Hang et al. 2023), each sample's loss weighted by
    min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v-prediction, as in diffusers'
    training scripts. ``timestep_weights``: sampling weights of the timesteps (`timestep_weights`); default:
    uniform. ``generator`` (on the batch's device) draws the noise and timesteps; default: the global random
    state."""
    lightness, clean, noise, timesteps, noisy = noised_chroma(rgb, chroma_scale, noise_scheduler, generator, timestep_weights)
    prediction = unet(unet_input(lightness, noisy, features), timesteps, class_labels=image_embeds).sample
    if noise_scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    snr = compute_snr(noise_scheduler, timesteps)
    weights = torch.minimum(snr, torch.full_like(snr, snr_gamma))
    weights = weights / snr if noise_scheduler.config.prediction_type == "epsilon" else weights / (snr + 1)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()


@torch.no_grad()
def guided_prediction(teacher_unet, teacher_encoder, batch: dict, lightness: torch.Tensor, noisy: torch.Tensor,
                      timesteps: torch.Tensor, guidance_scale: float, keep: torch.Tensor | None) -> torch.Tensor:
    """The teacher's classifier-free guided prediction for L and noisy ab (N, 1 / 2, H, W) as the
    pipeline computes it at ``guidance_scale`` (`ColorizationPipeline.predict`): unconditional + scale x
    (conditional - unconditional), from the teacher's own projections of the batch's features; for the samples
    not in ``keep`` (their features hidden from the student) its unconditional prediction."""
    features, image_embeds = project_features(teacher_encoder, batch)
    hidden_features, hidden_embeds = teacher_encoder.unconditional(features, image_embeds)
    both = torch.cat([unet_input(lightness, noisy, hidden_features), unet_input(lightness, noisy, features)])
    both_embeds = None if image_embeds is None else torch.cat([hidden_embeds, image_embeds])
    unconditional, conditional = teacher_unet(both, timesteps.repeat(2), class_labels=both_embeds).sample.float().chunk(2)
    guided = unconditional + guidance_scale * (conditional - unconditional)
    if keep is None:
        return guided
    return torch.where(keep.view(-1, 1, 1, 1), guided, unconditional)


def guidance_distillation_loss(
    unet,
    teacher,
    noise_scheduler: DDPMScheduler,
    batch: dict,
    chroma_scale: float,
    features: torch.Tensor,
    guidance_scale: float,
    image_embeds: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    timestep_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Guidance distillation (stage one of Meng et al. 2023, at one guidance scale): the student ``unet``, given the
    photo's features, learns the ``teacher``'s (a pipeline with ``unet`` and ``image_encoder``, frozen) classifier-
    free guided prediction at ``guidance_scale``, so sampling needs one UNet pass per step instead of two; given
    hidden features (the samples not in ``keep``) it learns the teacher's unconditional prediction, so guidance at
    other scales stays reachable. Noise and timesteps as `diffusion_loss` draws them; mean squared error."""
    lightness, _, _, timesteps, noisy = noised_chroma(batch["pixel_values"], chroma_scale, noise_scheduler, generator,
                                                      timestep_weights)
    target = guided_prediction(teacher.unet, teacher.image_encoder, batch, lightness, noisy, timesteps, guidance_scale,
                               keep)
    prediction = unet(unet_input(lightness, noisy, features), timesteps, class_labels=image_embeds).sample
    return F.mse_loss(prediction.float(), target)


# One-pass sampler distillation (`distill_sampler.py`): the student's one pass is the second step of a 2-step schedule,
# from the chroma prior noised to half the schedule (DPM-Solver++, trailing spacing: t = 499 of 1000). A quarter of
# each batch keeps learning the teacher's own prediction at timesteps at least `ONE_PASS_MARGIN` away; `NOISE_FRACTION`
# start from pure noise (a spread's "noise" samples, whose first step at t = 999 the student runs itself).
ONE_PASS_NUM_INFERENCE_STEPS = 2
NOISE_FRACTION = 3 / 16
ONE_PASS_STRENGTH = 0.5
ONE_PASS_MARGIN = 50


def other_timesteps(num_train_timesteps: int, count: int, avoid: int, device, generator=None) -> torch.Tensor:
    """``count`` uniform training timesteps, those within `ONE_PASS_MARGIN` of ``avoid`` moved half the schedule away."""
    timesteps = torch.randint(0, num_train_timesteps, (count,), device=device, generator=generator)
    near = (timesteps - avoid).abs() < ONE_PASS_MARGIN
    return torch.where(near, (timesteps + num_train_timesteps // 2) % num_train_timesteps, timesteps)


def sampler_distillation_loss(
    unet,
    teacher,
    noise_scheduler: DDPMScheduler,
    lightness: torch.Tensor,
    clean: torch.Tensor,
    encoded: EncodedImage,
    guidance_scale: float,
    generator: torch.Generator | None = None,
    perceptual: ChromaPerceptualLoss | None = None,
    perceptual_weight: float = 0.0,
    noise_fraction: float = NOISE_FRACTION,
) -> torch.Tensor:
    """One-pass sampler distillation, for a batch of photos at the working size: normalised ``lightness``
    (N, 1, h, w), their true chroma ``clean`` (N, 2, h, w, the UNet's space) and what the teacher's encoder gives
    them (``encoded``: `colorize.pipeline_colorization.EncodedImage`, features, pooled term and prior at (h, w)).

    The student ``unet`` learns to give, in one pass from the prior noised to `ONE_PASS_STRENGTH` (the last timestep
    of an `ONE_PASS_NUM_INFERENCE_STEPS`-step schedule), the clean chroma that the frozen ``teacher`` pipeline
    samples at its defaults (its calibrated steps from its prior's strength, at ``guidance_scale``) from the same
    prior and the same standard normal noise, so that a call runs one UNet pass instead of the teacher's several.
    The batch, in order: from the prior (the rest), from pure noise (``noise_fraction``, rounded down: the teacher's
    full schedule against the student's 2 steps, the first run without gradient) and the teacher's own prediction
    for the noisy true chroma at timesteps away from the one-pass one (a quarter), so that the UNet still denoises
    along other schedules.
    Mean squared error of the noise (or v) prediction; with ``perceptual``, plus ``perceptual_weight`` times its
    distance between the one-pass clean estimates and the true chroma (the shapes the colours draw, which the squared
    error blurs where the teacher's sample is uncertain). ``generator`` draws the noise and timesteps."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    count = clean.shape[0]
    regular, from_noise = count // 4, int(count * noise_fraction)
    from_prior = count - regular - from_noise
    parts = slice(0, from_prior), slice(from_prior, from_prior + from_noise), slice(from_prior + from_noise, count)

    scheduler = type(teacher.scheduler).from_config(teacher.scheduler.config)
    scheduler.set_timesteps(ONE_PASS_NUM_INFERENCE_STEPS, device=clean.device)
    first, one_pass = scheduler.timesteps[0], scheduler.timesteps[-1]
    timesteps = torch.cat([one_pass.to(clean.device).repeat(from_prior + from_noise),
                           other_timesteps(noise_scheduler.config.num_train_timesteps, regular, int(one_pass),
                                           clean.device, generator)])
    features, image_embeds, prior = encoded
    part = lambda tensor, where: None if tensor is None else tensor[where]
    with torch.no_grad():

        def sampled(where, with_prior: bool) -> torch.Tensor:  # the teacher's clean chroma, in the UNet's space
            chroma, _ = teacher.denoise_chroma(
                lightness[where], teacher.default_num_inference_steps(), guidance_scale=guidance_scale,
                encoded=EncodedImage(features[where], part(image_embeds, where), prior[where] if with_prior else None),
                strength=teacher.default_strength() if with_prior else 1.0, noise=noise[where])
            return chroma * teacher.config.chroma_scale

        samples, targets = [], []
        if from_prior:
            where = parts[0]
            samples.append(noise_scheduler.add_noise(prior[where], noise[where], timesteps[where]))
            targets.append(prediction_for(noise_scheduler, samples[-1], sampled(where, True), timesteps[where]))
        if from_noise:
            where = parts[1]
            started = noise[where] * scheduler.init_noise_sigma
            first_pass = unet(unet_input(lightness[where], started, features[where]), first,
                              class_labels=part(image_embeds, where)).sample
            samples.append(scheduler.step(first_pass, first, started).prev_sample.float())
            targets.append(prediction_for(noise_scheduler, samples[-1], sampled(where, False), timesteps[where]))
        if regular:
            where = parts[2]
            samples.append(noise_scheduler.add_noise(clean[where], noise[where], timesteps[where]))
            targets.append(teacher.predict(lightness[where], samples[-1], timesteps[where], features[where],
                                           part(image_embeds, where), guidance_scale).float())
    samples = torch.cat(samples)
    prediction = unet(unet_input(lightness, samples, features), timesteps, class_labels=image_embeds).sample
    loss = F.mse_loss(prediction.float(), torch.cat(targets))
    if perceptual is None or perceptual_weight == 0:
        return loss
    one_pass = slice(0, from_prior + from_noise)
    estimate = clean_estimate(noise_scheduler, samples[one_pass], prediction[one_pass].float(), timesteps[one_pass])
    scale = teacher.config.chroma_scale
    return loss + perceptual_weight * perceptual(estimate / scale, clean[one_pass] / scale).mean()
