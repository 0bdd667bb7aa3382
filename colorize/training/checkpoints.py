"""Checkpoints: a resumable state written atomically by every process, found again by name or as 'latest', and
resumed from with the run's seed and each process's stream position; the EMA of the trained models kept beside
them, in diffusers format."""

import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file

from ..image_encoder import ImageEncoder

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
RUN_FILE = "run.json"  # in each checkpoint: the run's seed
EMA_SETTINGS = ("decay", "min_decay", "optimization_step", "update_after_step", "use_ema_warmup", "inv_gamma", "power")


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints in output_dir, oldest first (half-written ``*.tmp`` folders are ignored)."""
    if not os.path.isdir(output_dir):
        return []
    names = [name for name in os.listdir(output_dir) if CHECKPOINT_PATTERN.match(name)]
    return sorted(names, key=checkpoint_step)


def checkpoint_step(path: str) -> int:
    """The training step a checkpoint folder was saved at (``checkpoint-N``)."""
    return int(CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path))).group(1))


def check_resume(resume_from_checkpoint: str | None, output_dir: str):
    """ValueError when the checkpoint named by ``--resume_from_checkpoint`` does not exist, listing those that do."""
    if resume_from_checkpoint in (None, "latest"):
        return
    path = resume_from_checkpoint
    if os.path.isdir(path) or os.path.isdir(os.path.join(output_dir, path)):
        return
    existing = list_checkpoints(output_dir)
    found = f"{output_dir} has {', '.join(existing)}" if existing else f"{output_dir} has no checkpoints"
    raise ValueError(f"--resume_from_checkpoint {path}: no such checkpoint ({found}; 'latest' picks the newest)")


def resolve_resume_path(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from (checked to exist by `check_resume`), or None: no resume asked, or 'latest'
    with none yet."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint != "latest":
        path = resume_from_checkpoint
        return path if os.path.isdir(path) else os.path.join(output_dir, path)
    checkpoints = list_checkpoints(output_dir)
    return os.path.join(output_dir, checkpoints[-1]) if checkpoints else None


def remove_partial_checkpoints(output_dir: str):
    """Delete ``checkpoint-N.tmp`` folders that a killed run was writing: never complete, never resumed from."""
    for partial in Path(output_dir).glob("checkpoint-*.tmp"):
        logger.warning(f"Removing {partial}: a checkpoint that an interrupted run did not finish writing")
        shutil.rmtree(partial, ignore_errors=True)


def save_checkpoint(accelerator, output_dir: str, global_step: int, total_limit: int | None, seed: int,
                    stream_position: dict | None = None):
    """Save a resumable state atomically: written to ``checkpoint-N.tmp``, then renamed. Called on every
    process (each saves its own random state and, streaming, where its stream stands; the main process the
    models, optimizer and scheduler)."""
    final_path = os.path.join(output_dir, f"checkpoint-{global_step}")
    temporary_path = final_path + ".tmp"
    if accelerator.is_main_process:
        if total_limit is not None:
            existing = list_checkpoints(output_dir)
            for name in existing[: max(0, len(existing) - total_limit + 1)]:
                logger.info(f"Removing old checkpoint {name}")
                shutil.rmtree(os.path.join(output_dir, name))
        shutil.rmtree(temporary_path, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary_path)
    if stream_position is not None:
        Path(temporary_path, f"stream-{accelerator.process_index}.json").write_text(json.dumps(stream_position) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        Path(temporary_path, RUN_FILE).write_text(json.dumps({"seed": seed}) + "\n")
        shutil.rmtree(final_path, ignore_errors=True)
        os.replace(temporary_path, final_path)
        logger.info(f"Saved state to {final_path}")


def choose_seed(seed: int | None, accelerator, resume_path: str | None) -> int:
    """The seed of the checkpoint resumed from (the run goes on as it began), else ``seed``, else one drawn at
    random on the main process and shared with the others (they must agree on the data order)."""
    run_file = Path(resume_path or "", RUN_FILE)
    if resume_path and run_file.is_file():
        resumed = json.loads(run_file.read_text())["seed"]
        if seed is not None and seed != resumed:
            logger.warning(f"--seed {seed} ignored: resuming the run of seed {resumed} from {resume_path}")
        return resumed
    chosen = [seed if seed is not None else int.from_bytes(os.urandom(4), "little")]
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen)
    return chosen[0]


def stream_start(resume_path: str | None, process_index: int) -> tuple[int, int]:
    """(epoch, position) where this process's stream stood at the checkpoint resumed from; (0, 0) for a new run."""
    if resume_path is None:
        return 0, 0
    state_file = Path(resume_path, f"stream-{process_index}.json")
    if not state_file.is_file():
        logger.warning(f"{resume_path} holds no stream position for process {process_index}: streaming from the start")
        return 0, 0
    state = json.loads(state_file.read_text())
    return state["epoch"], state["position"]


def make_ema_models(trained: dict[str, torch.nn.Module], max_decay: float, inv_gamma: float, power: float) -> dict:
    """An `EMAModel` (with warm-up) of each trained module, by the same name."""
    return {
        name: EMAModel(module.parameters(), decay=max_decay, use_ema_warmup=True, inv_gamma=inv_gamma, power=power,
                       model_cls=type(module), model_config=module.config, foreach=True)
        for name, module in trained.items()
    }


def load_ema(ema_model: EMAModel, folder: str, module: torch.nn.Module):
    """Restore ``ema_model`` (the EMA of ``module``) from the folder `EMAModel.save_pretrained` wrote: its shadow
    weights and its settings and step counter. Done by hand because `EMAModel.from_pretrained` warns twice (it
    passes the folder to ``from_config`` and the EMA settings to the model's constructor)."""
    config = type(module).load_config(folder)
    weights = load_file(os.path.join(folder, SAFETENSORS_WEIGHTS_NAME))
    shadow = [weights[name] for name, _ in module.named_parameters()]
    ema_model.load_state_dict({**{key: config[key] for key in EMA_SETTINGS if key in config}, "shadow_params": shadow})


@contextmanager
def ema_weights(accelerator, trained: dict[str, torch.nn.Module], ema_models: dict[str, EMAModel]):
    """Within the block, the unwrapped trained models hold their EMA weights (when there is an EMA); restored after."""
    unwrapped = {name: accelerator.unwrap_model(module) for name, module in trained.items()}
    for name, ema_model in ema_models.items():
        ema_model.store(unwrapped[name].parameters())
        ema_model.copy_to(unwrapped[name].parameters())
    try:
        yield
    finally:
        for name, ema_model in ema_models.items():
            ema_model.restore(unwrapped[name].parameters())


def register_checkpoint_hooks(accelerator, ema_models: dict[str, EMAModel]):
    """Make `accelerate.save_state` / `load_state` keep the UNet and the image encoder (and their EMAs) in
    diffusers format, with safetensors, beside accelerate's optimizer, scheduler and RNG state."""
    classes = {"unet": UNet2DModel, "image_encoder": ImageEncoder}

    def name_of(model) -> str:
        return "image_encoder" if isinstance(accelerator.unwrap_model(model), ImageEncoder) else "unet"

    def save_model_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for name, ema_model in ema_models.items():
                ema_model.save_pretrained(os.path.join(output_dir, f"{name}_ema"))
            for model in models:
                accelerator.unwrap_model(model).save_pretrained(os.path.join(output_dir, name_of(model)))
                weights.pop()

    def load_model_hook(models, input_dir):
        while models:
            model = models.pop()
            name, unwrapped = name_of(model), accelerator.unwrap_model(model)
            loaded = classes[name].from_pretrained(input_dir, subfolder=name)
            unwrapped.register_to_config(**loaded.config)
            unwrapped.load_state_dict(loaded.state_dict())
            if name in ema_models:
                load_ema(ema_models[name], os.path.join(input_dir, f"{name}_ema"), unwrapped)
                ema_models[name].to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)
