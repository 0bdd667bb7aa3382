"""The samplers a pipeline can use, by the short names the commands take."""

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
