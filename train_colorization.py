#!/usr/bin/env python
"""Train, or fine-tune, a `ColorizationPipeline` on a folder of colour photos.

    accelerate launch --config_file accelerate_config.yaml train_colorization.py \
        --train_data_dir ../shared/data/flowers/train --output_dir outputs/flowers \
        --model_preset small --resolution 64 --use_ema --max_train_steps 20000

The UNet sees the L channel concatenated with noisy ab (Lab chroma, scaled by ``chroma_scale``)
and learns to predict the noise (or v) with an MSE loss. Modelled on diffusers'
examples/unconditional_image_generation/train_unconditional.py, whose flag names it keeps; the
reusable parts (options and their checks, data and crops, checkpoints, loss, validation, budget
record) live in `colorize.training`.
"""

import logging
import math
import os
import time
from pathlib import Path

import datasets
import diffusers
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm

from colorize.hub import Provenance, make_model_card, push_folder_to_hub
from colorize.training import checkpoints, config
from colorize.training.budget import BudgetLog, describe_hardware, read_budget
from colorize.training.data import TrainingBatches, load_training_data, write_split_listing
from colorize.training.loss import (
    diffusion_loss,
    feature_keep_mask,
    guidance_distillation_loss,
    project_features,
    step_generator,
    timestep_weights,
)
from colorize.training.starting_point import (
    choose_resolution,
    load_starting_point,
    load_teacher,
    make_pipeline,
    pretrained_unet_config,
)
from colorize.training.validation import logged_metrics, run_validation

logger = get_logger(__name__, log_level="INFO")
SCRIPT = "train_colorization.py"


def parse_args(argv=None):
    return config.parse_args(config.training_parser(__doc__.split("\n\n")[0]), argv, SCRIPT)


def make_accelerator(args) -> Accelerator:
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=config.resolve_mixed_precision(args.mixed_precision),
        log_with=args.logger,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    verbose = accelerator.is_local_main_process
    datasets.utils.logging.set_verbosity_warning() if verbose else datasets.utils.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_info() if verbose else diffusers.utils.logging.set_verbosity_error()
    return accelerator


def log_run(args, accelerator, start, batches, data, num_epochs, bias):
    """What the run is about to do, in the log."""
    encoder = start.image_encoder
    logger.info("***** Running training *****")
    logger.info(f"  Num training images = {batches.num_images}, validation images = {len(data.validation_images)}")
    logger.info(f"  Num epochs = {num_epochs}, total optimisation steps = {args.max_train_steps}")
    logger.info(f"  Batch size per device = {args.train_batch_size}, total (parallel x accumulation) = "
                f"{args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps}")
    logger.info(f"  UNet parameters = {sum(p.numel() for p in start.unet.parameters()) / 1e6:.2f} M, "
                f"chroma_scale = {start.chroma_scale}")
    if encoder is not None:
        pooled = f", pooled features into a {encoder.config.pooled_embedding_dim}-wide time embedding" if encoder.pooled_projection is not None else ""
        pooled += ", stride-16 features added" if encoder.fine_projection is not None else ""
        logger.info(f"  Image encoder: {encoder.config.projection_channels} projected channels{pooled}, "
                    f"feature dropout = {args.feature_dropout}")
    logger.info(f"  Device = {accelerator.device}, torch threads per process = {torch.get_num_threads()}")
    if bias is not None:
        noisiest = bias[len(bias) // 2 :].sum().item()
        logger.info(f"  Timestep bias: {args.timestep_bias_strategy} x{args.timestep_bias_multiplier} "
                    f"({noisiest:.0%} of samples in the noisier half)")
    if args.distill_guidance_scale is not None:
        logger.info(f"  Guidance distillation: target = {args.pretrained_model_name_or_path}'s guided output at scale "
                    f"{args.distill_guidance_scale} (its unguided output where the features are hidden)")
    logger.info(f"  Seed = {args.seed}")


def out_of_time(accelerator, started: float, minutes: float) -> bool:
    """Whether ``minutes`` have passed since ``started`` on any process (all processes stop at the same step)."""
    late = torch.tensor([float(time.time() - started >= 60 * minutes)], device=accelerator.device)
    return bool(accelerator.reduce(late, reduction="max").item()) if accelerator.num_processes > 1 else bool(late.item())


def check_replicas_agree(accelerator, modules):
    """Data-parallel processes must end with the same weights: compare a fingerprint of each process's (sum and
    sum of squares in float64) and say so, or warn with the fingerprints that differ."""
    parameters = [parameter.detach().double() for module in modules for parameter in module.parameters()]
    fingerprint = torch.stack([sum(p.sum() for p in parameters), sum((p * p).sum() for p in parameters)])
    fingerprints = accelerator.gather(fingerprint.to(accelerator.device)[None]).cpu()
    if (fingerprints == fingerprints[0]).all():
        logger.info(f"Weights identical on all {accelerator.num_processes} processes")
    else:
        logger.warning(f"Weights differ between processes (sum, sum of squares per process): {fingerprints.tolist()}")


def saved_pipeline(accelerator, trained: dict, start, args):
    """The pipeline as it will be saved: the current (unwrapped) weights, sampling with --inference_scheduler."""
    encoder = accelerator.unwrap_model(trained["image_encoder"]) if "image_encoder" in trained else None
    return make_pipeline(start, accelerator.unwrap_model(trained["unet"]), encoder, args.inference_scheduler)


def push_pipeline(args, global_step: int, validation_summary: dict | None):
    """Write the model card (the same writer as `colorize publish`) into output_dir and upload the pipeline."""
    repo_id = args.hub_model_id or Path(args.output_dir).name
    provenance = Provenance(
        title=repo_id,
        description=f"A colorization diffusion model trained with `{SCRIPT}` for {global_step} steps at "
        f"{args.resolution} px.",
        dataset=args.dataset_name,
    )
    card = make_model_card(repo_id, provenance, metrics=validation_summary, runs=read_budget(args.output_dir),
                           base_model=args.pretrained_model_name_or_path)
    card.save(os.path.join(args.output_dir, "README.md"))
    push_folder_to_hub(args.output_dir, repo_id, token=args.hub_token, private=args.hub_private_repo,
                       commit_message=f"Training step {global_step}")


def main(args):
    accelerator = make_accelerator(args)
    # A failed start exits in one line and leaves --output_dir as it was (not even created).
    validating = bool(args.validation_steps)
    num_validation_images = max(args.num_validation_images, args.num_scored_validation_images) if validating else 0
    try:
        config.check_start(args)
        args.resolution = choose_resolution(args.resolution, pretrained_unet_config(
            args.pretrained_model_name_or_path, args.revision, args.cache_dir), args.model_preset)
        resume_path = checkpoints.resolve_resume_path(args.resume_from_checkpoint, args.output_dir)
        args.seed = checkpoints.choose_seed(args.seed, accelerator, resume_path)
        set_seed(args.seed)
        data = load_training_data(args, accelerator, num_validation_images)
        start = load_starting_point(args)
        teacher = load_teacher(args, accelerator.device) if args.distill_guidance_scale is not None else None
        bias = timestep_weights(
            start.noise_scheduler.config.num_train_timesteps, args.timestep_bias_strategy,
            args.timestep_bias_multiplier, args.timestep_bias_portion, args.timestep_bias_begin, args.timestep_bias_end,
        )
    except ValueError as error:
        config.exit_on_mistake(SCRIPT, error)
    if bias is not None:
        bias = bias.to(accelerator.device)  # once, not a host-to-device copy every step
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        checkpoints.remove_partial_checkpoints(args.output_dir)
        if data.validation is not None:
            write_split_listing(data.validation, Path(args.output_dir) / "validation_split.txt")

    trained = {"unet": start.unet} if start.image_encoder is None else {"unet": start.unet, "image_encoder": start.image_encoder}
    ema_models = checkpoints.make_ema_models(trained, args.ema_max_decay, args.ema_inv_gamma, args.ema_power) if args.use_ema else {}
    checkpoints.register_checkpoint_hooks(accelerator, ema_models)
    batches = TrainingBatches(args, accelerator, data, start.image_encoder,
                              checkpoints.stream_start(resume_path, accelerator.process_index))
    if args.max_train_steps is None:
        args.max_train_steps = args.num_epochs * math.ceil(batches.batches_per_process / args.gradient_accumulation_steps)
    args.lr_warmup_steps = config.warmup_steps(args.lr_warmup_steps, args.max_train_steps, args.learning_rate, logger)

    optimizer = torch.optim.AdamW(
        [parameter for module in trained.values() for parameter in module.parameters() if parameter.requires_grad],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    if batches.prepared_by_accelerate:
        *prepared, optimizer, batches.loader, lr_scheduler = accelerator.prepare(
            *trained.values(), optimizer, batches.loader, lr_scheduler
        )
    else:  # each process cuts its own batches
        *prepared, optimizer, lr_scheduler = accelerator.prepare(*trained.values(), optimizer, lr_scheduler)
    trained = dict(zip(trained, prepared))
    model = trained["unet"]
    trainable_parameters = [p for module in trained.values() for p in module.parameters() if p.requires_grad]
    for ema_model in ema_models.values():
        ema_model.to(accelerator.device)
    steps_per_epoch = batches.steps_per_epoch(args.gradient_accumulation_steps)
    num_epochs = math.ceil(args.max_train_steps / steps_per_epoch) if steps_per_epoch else "streamed"
    if accelerator.is_main_process:
        tracker_config = {key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))}
        accelerator.init_trackers("train_colorization", config=tracker_config)
    log_run(args, accelerator, start, batches, data, num_epochs, bias)

    global_step, first_epoch, batches_to_skip = 0, 0, 0
    if args.resume_from_checkpoint and resume_path is None:
        accelerator.print(f"No checkpoint found in {args.output_dir}; starting a new training run.")
    elif resume_path is not None:
        accelerator.load_state(resume_path)
        global_step = checkpoints.checkpoint_step(resume_path)
        accelerator.print(f"Resuming from checkpoint {resume_path} at step {global_step}")
        if steps_per_epoch:  # a stream resumes at the position its checkpoint recorded (`stream_start`)
            first_epoch = global_step // steps_per_epoch
            batches_to_skip = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    validation_summary = None
    budget = BudgetLog(args.output_dir, args.training_command, describe_hardware(accelerator.device, accelerator.num_processes),
                       accelerator.mixed_precision, global_step,
                       args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps)
    progress_bar = tqdm(total=args.max_train_steps, initial=global_step, desc="Steps",
                        disable=not accelerator.is_local_main_process)
    model.train()
    stream_position, started = None, time.time()
    epochs = batches.epochs(first_epoch, num_epochs if steps_per_epoch else None, batches_to_skip)
    for batch_number, (epoch, batch) in enumerate(epochs, start=global_step * args.gradient_accumulation_steps):
        if global_step >= args.max_train_steps:
            break
        generator = step_generator(args.seed, batch_number, accelerator.process_index, accelerator.device)
        if args.streaming:
            stream_position = {"epoch": int(batch["epoch"][-1]), "position": int(batch["position"][-1]) + 1}
        with accelerator.accumulate(*trained.values()):
            features = image_embeds = None
            if "image_encoder" in trained:
                keep = feature_keep_mask(batch, args.feature_dropout, generator)
                features, image_embeds = project_features(trained["image_encoder"], batch, keep)
            if teacher is not None:
                loss = guidance_distillation_loss(
                    model, teacher, start.noise_scheduler, batch, start.chroma_scale, features, args.distill_guidance_scale,
                    image_embeds=image_embeds, keep=keep, generator=generator, timestep_weights=bias,
                )
            else:
                loss = diffusion_loss(
                    model, start.noise_scheduler, batch["pixel_values"], start.chroma_scale, features=features,
                    snr_gamma=args.snr_gamma, image_embeds=image_embeds, generator=generator, timestep_weights=bias,
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainable_parameters, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue

        for name, ema_model in ema_models.items():
            ema_model.step(trained[name].parameters())
        global_step += 1
        progress_bar.update(1)
        logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "epoch": epoch}
        if ema_models:
            logs["ema_decay"] = ema_models["unet"].cur_decay_value
        progress_bar.set_postfix(loss=logs["loss"], lr=logs["lr"])
        accelerator.log(logs, step=global_step)
        if args.max_train_minutes is not None and out_of_time(accelerator, started, args.max_train_minutes):
            logger.info(f"--max_train_minutes {args.max_train_minutes} reached: stopping at step {global_step}")
            args.max_train_steps = global_step  # this step is the last: validate, checkpoint, save
        last_step = global_step == args.max_train_steps
        # Validation runs on the main process alone, on the unwrapped models (no collective operation the
        # other processes would wait for); checkpoints are saved by every process together.
        if accelerator.is_main_process and validating and (global_step % args.validation_steps == 0 or last_step):
            with checkpoints.ema_weights(accelerator, trained, ema_models):
                validation_summary = run_validation(
                    saved_pipeline(accelerator, trained, start, args), data.validation_images, accelerator, global_step, args.output_dir,
                    args.num_inference_steps, args.num_validation_images, args.seed,
                )
        if global_step % args.checkpointing_steps == 0 or last_step:
            checkpoints.save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit,
                                        args.seed, stream_position)
            if accelerator.is_main_process:
                budget.write(global_step, logged_metrics(validation_summary))  # after validation: this step's
    progress_bar.close()

    if accelerator.num_processes > 1:
        check_replicas_agree(accelerator, trained.values())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with checkpoints.ema_weights(accelerator, trained, ema_models):
            saved_pipeline(accelerator, trained, start, args).save_pretrained(args.output_dir)
        budget.write(global_step, logged_metrics(validation_summary))
        logger.info(f"Saved the pipeline to {args.output_dir}")
        if args.push_to_hub:
            push_pipeline(args, global_step, validation_summary)
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
