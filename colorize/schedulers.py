"""The samplers a pipeline can use, by the short names the commands take."""

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

SCHEDULERS = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm": DPMSolverMultistepScheduler,  # DPM-Solver++ (its default algorithm_type)
    "unipc": UniPCMultistepScheduler,  # UniPC (Zhao et al. 2023), bh2 with its corrector
}


def scheduler_from_name(name: str, config) -> SchedulerMixin:
    """The scheduler called ``name`` ("ddpm", "ddim", "dpm" or "unipc") built from another scheduler's config."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'; choose one of {sorted(SCHEDULERS)}.")
    return SCHEDULERS[name].from_config(config)


def scheduler_name(scheduler: SchedulerMixin) -> str:
    """The short name of ``scheduler``'s class ("dpm", ...), or the class name for another scheduler."""
    names = {cls.__name__: name for name, cls in SCHEDULERS.items()}
    return names.get(type(scheduler).__name__, type(scheduler).__name__)


def signal_and_noise(scheduler: SchedulerMixin, sample: torch.Tensor, timesteps) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(alpha_bar) and sqrt(1 - alpha_bar) of ``scheduler``'s training schedule at ``timesteps`` (one, or one per
    sample), shaped to broadcast over ``sample`` (N, C, H, W), in float32."""
    alpha_bar = scheduler.alphas_cumprod.to(sample.device)[torch.as_tensor(timesteps).long()].float().view(-1, 1, 1, 1)
    return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()


def clean_estimate(scheduler: SchedulerMixin, sample: torch.Tensor, model_output: torch.Tensor, timesteps) -> torch.Tensor:
    """The clean sample that a noise (or, for v-prediction schedulers, v) ``model_output`` implies for the noisy
    ``sample`` at ``timesteps``."""
    signal, noise = signal_and_noise(scheduler, sample, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        return signal * sample - noise * model_output
    return (sample - noise * model_output) / signal


def noise_estimate(scheduler: SchedulerMixin, sample: torch.Tensor, clean: torch.Tensor, timesteps) -> torch.Tensor:
    """The standard normal noise that, added to ``clean`` at ``timesteps``, gives the noisy ``sample``."""
    signal, noise = signal_and_noise(scheduler, sample, timesteps)
    return (sample - signal * clean) / noise


def prediction_for(scheduler: SchedulerMixin, sample: torch.Tensor, clean: torch.Tensor, timesteps) -> torch.Tensor:
    """The inverse of `clean_estimate`: the noise (or v) prediction whose clean estimate from the noisy ``sample`` at
    ``timesteps`` is ``clean``."""
    signal, noise = signal_and_noise(scheduler, sample, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        return (signal * sample - clean) / noise
    return (sample - signal * clean) / noise
