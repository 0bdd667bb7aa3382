#!/usr/bin/env python
"""Distil a saved ColorizationPipeline's sampler into one UNet pass and save the pipeline with the student.

    python distill_sampler.py --pretrained_model_name_or_path TEACHER \\
        --train_data_dir outputs/data/train.txt --output_dir outputs/flowers-one-pass --max_train_minutes 35

The teacher (the pipeline, frozen) samples each photo at its defaults: its chroma prior noised to its strength, then
its calibrated steps (3 UNet passes for the flowers model's teacher). The student (the same UNet, trained; or an
earlier student's, ``--student_model_name_or_path``, to continue a distillation) learns to give that result in one
pass from the same prior and noise at half the schedule (`colorize.training.loss.sampler_distillation_loss`); the
saved pipeline records ``num_inference_steps`` 2 and its prior's ``strength`` 0.5, the schedule that runs that one
pass, so its calls take a third of the teacher's UNet time. The one-pass samples
also learn, with ``--perceptual_weight``, how a frozen ImageNet network sees the true chroma
(`colorize.training.perceptual`): the shapes the colours draw, which the squared error blurs. Photos are seen whole,
at the pipeline's working size, with what its encoder gives them (computed once): the student trains on exactly
what it is called with. The image encoder and prior are kept as they are. Photos come from the same sources as
`train_colorization.py`'s, its options have the same names, a mistake stops it in one line (exit status 2) before
anything is written, and it leaves a budget record in ``--output_dir/budget`` beside the teacher's.
"""

import copy
import shutil
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from colorize import ColorizationPipeline
from colorize.color import rgb_to_lab
from colorize.image_io import open_image, pil_to_tensor
from colorize.image_processing import resize
from colorize.pipeline_colorization import DEFAULT_GUIDANCE_SCALE, EncodedImage
from colorize.training import config
from colorize.training.budget import BudgetLog, describe_hardware
from colorize.training.loss import ONE_PASS_NUM_INFERENCE_STEPS, ONE_PASS_STRENGTH, sampler_distillation_loss
from colorize.training.perceptual import ChromaPerceptualLoss
from colorize.training.sources import IMAGE_COLUMN, load_training_photos
from colorize.training.starting_point import load_saved_pipeline

SCRIPT = "distill_sampler.py"


def parse_args(argv=None):
    return config.parse_args(config.sampler_parser(__doc__.split("\n\n")[0]), argv, SCRIPT, launcher="python")


def unet_architecture(unet) -> dict:
    """A UNet's config without the bookkeeping keys (``_name_or_path``, ...): what must match to share weights."""
    return {key: value for key, value in unet.config.items() if not key.startswith("_")}


def load_student(args, teacher: ColorizationPipeline):
    """The UNet the student starts from: the teacher's, or ``--student_model_name_or_path``'s (ValueError in one line
    when that is not a one-pass student of the same architecture)."""
    name = args.student_model_name_or_path
    if name is None:
        return copy.deepcopy(teacher.unet)
    try:  # --revision is the teacher's
        student = ColorizationPipeline.from_pretrained(name, cache_dir=args.cache_dir, use_safetensors=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load --student_model_name_or_path {name}: {str(error).splitlines()[0]}") from None
    if student.config.get("num_inference_steps") != ONE_PASS_NUM_INFERENCE_STEPS:
        raise ValueError(f"--student_model_name_or_path {name} is not a one-pass student (distill_sampler.py's output)")
    if unet_architecture(student.unet) != unet_architecture(teacher.unet):
        raise ValueError(f"--student_model_name_or_path {name} has another UNet architecture than the teacher")
    return student.unet.to(device=teacher.device, dtype=teacher.unet.dtype)


def load_teacher(args) -> ColorizationPipeline:
    """The pipeline to distil; ValueError in one line when there is none or it has no chroma prior to start from."""
    if args.pretrained_model_name_or_path is None:
        raise ValueError("--pretrained_model_name_or_path is required: the pipeline whose sampler is distilled")
    teacher = load_saved_pipeline(args)
    if teacher.chroma_prior is None:
        raise ValueError("the pipeline has no chroma prior: the one pass starts from its colours")
    if teacher.config.get("num_inference_steps") is not None:
        raise ValueError("the pipeline's sampler is already distilled; distil its teacher")
    if args.working_size is not None:  # the teacher samples, and the student learns and is saved, at this size
        teacher.register_to_config(working_size=args.working_size)
    for module in (teacher.unet, teacher.image_encoder, teacher.chroma_prior):
        module.requires_grad_(False).eval()
    teacher.set_progress_bar_config(disable=True)
    return teacher.to(args.device)


@torch.no_grad()
def encode_photos(teacher: ColorizationPipeline, dataset, device) -> dict[tuple, list[dict]]:
    """Working-size shape -> the photos of that shape, each as what the pipeline computes for it: normalised L, true
    chroma (the UNet's space), features, pooled term and prior (`ColorizationPipeline.encode_image`), on the CPU."""
    by_shape = {}
    for value in tqdm(dataset[IMAGE_COLUMN], desc="Encoding photos", unit="photo"):
        full_lightness, full_chroma = rgb_to_lab(pil_to_tensor(open_image(value))[None])
        size = teacher.model_size_for(*full_lightness.shape[-2:])
        encoded = teacher.encode_image(full_lightness.to(device), size, with_prior=True)
        photo = {"lightness": resize(full_lightness, size), "clean": resize(full_chroma, size) * teacher.config.chroma_scale}
        photo.update({name: None if part is None else part.cpu() for name, part in encoded._asdict().items()})
        by_shape.setdefault(tuple(size), []).append(photo)
    return by_shape


def draw_batch(by_shape: dict, batch_size: int, flip: bool, device, generator: torch.Generator):
    """A batch of photos of one shape (the shape drawn in proportion to its photos), flipped at random:
    (lightness, clean chroma, `EncodedImage`)."""
    shapes = list(by_shape)
    weights = torch.tensor([len(by_shape[shape]) for shape in shapes], dtype=torch.float)
    photos = by_shape[shapes[torch.multinomial(weights, 1, generator=generator).item()]]
    chosen = [photos[i] for i in torch.randint(len(photos), (batch_size,), generator=generator)]
    flips = torch.rand(batch_size, generator=generator) < 0.5 if flip else torch.zeros(batch_size, dtype=torch.bool)

    def stack(name):
        if chosen[0][name] is None:
            return None
        tensor = torch.cat([photo[name] for photo in chosen]).to(device, torch.float32)
        return torch.where(flips.to(device).view(-1, *[1] * (tensor.dim() - 1)), tensor.flip(-1), tensor) if tensor.dim() == 4 else tensor

    return stack("lightness"), stack("clean"), EncodedImage(stack("features"), stack("image_embeds"), stack("prior"))


def save_student(teacher: ColorizationPipeline, student, ema: EMAModel, output_dir: str, guidance_scale: float):
    """The teacher's pipeline with the student's EMA weights, recording the schedule that runs its one pass."""
    unet = copy.deepcopy(student)
    ema.copy_to(unet.parameters())
    prior = copy.deepcopy(teacher.chroma_prior)
    prior.register_to_config(strength=ONE_PASS_STRENGTH)
    kept = ("chroma_scale", "saturation", "working_size", "sample_spread", "chroma_sharpening", "detail_transfer")
    pipeline = ColorizationPipeline(
        unet=unet.eval().cpu(), scheduler=teacher.scheduler, image_encoder=copy.deepcopy(teacher.image_encoder).cpu(),
        chroma_prior=prior.cpu(), distilled_guidance_scale=guidance_scale,
        num_inference_steps=ONE_PASS_NUM_INFERENCE_STEPS, **{name: teacher.config.get(name) for name in kept},
    )
    pipeline.save_pretrained(output_dir, safe_serialization=True)


def main(args):
    try:
        config.check_start(args, output_must_be_empty=True)
        if args.max_train_steps < 1:
            raise ValueError("--max_train_steps must be at least 1")
        if args.perceptual_weight < 0:
            raise ValueError(f"--perceptual_weight must be 0 or more, got {args.perceptual_weight}")
        if not 0 <= args.noise_fraction <= 0.75:
            raise ValueError(f"--noise_fraction must be between 0 and 0.75 (a quarter keeps the teacher's predictions), "
                             f"got {args.noise_fraction}")
        teacher = load_teacher(args)
        student = load_student(args, teacher)
        photos = load_training_photos(args)
        perceptual = (ChromaPerceptualLoss.from_imagenet(args.perceptual_weights_file).to(args.device)
                      if args.perceptual_weight > 0 else None)
    except ValueError as error:
        config.exit_on_mistake(SCRIPT, error)
    precision = config.resolve_mixed_precision(args.mixed_precision)
    budget = BudgetLog(args.output_dir, args.training_command, describe_hardware(args.device), precision, 0,
                       args.train_batch_size)
    by_shape = encode_photos(teacher, photos, args.device)
    guidance_scale = DEFAULT_GUIDANCE_SCALE  # the teacher's default calls: one pass a step on a guidance-distilled UNet
    noise_scheduler = DDPMScheduler.from_config(teacher.scheduler.config)

    student = student.train().requires_grad_(True)
    ema = EMAModel(student.parameters(), decay=args.ema_max_decay, use_ema_warmup=True, power=2 / 3)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay)
    lr_scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=args.lr_warmup_steps,
                                 num_training_steps=args.max_train_steps)
    generator = torch.Generator().manual_seed(args.seed)  # the batches; the noise and timesteps: on the device
    noise_generator = torch.Generator(device=args.device).manual_seed(args.seed)
    device_type = torch.device(args.device).type
    started, step = time.time(), 0
    progress = tqdm(total=args.max_train_steps, desc="Steps")
    while step < args.max_train_steps:
        lightness, clean, encoded = draw_batch(by_shape, args.train_batch_size, args.random_flip, args.device, generator)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sampler_distillation_loss(student, teacher, noise_scheduler, lightness, clean, encoded, guidance_scale,
                                             generator=noise_generator, perceptual=perceptual,
                                             perceptual_weight=args.perceptual_weight,
                                             noise_fraction=args.noise_fraction)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        ema.step(student.parameters())
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        last = args.max_train_minutes is not None and time.time() - started >= 60 * args.max_train_minutes
        if step % args.checkpointing_steps == 0 or last or step == args.max_train_steps:
            save_student(teacher, student, ema, args.output_dir, guidance_scale)
            budget.write(step)
        if last:
            progress.write(f"--max_train_minutes {args.max_train_minutes} reached: stopped at step {step}")
            break
    progress.close()
    teacher_budget = Path(args.pretrained_model_name_or_path, "budget")
    if teacher_budget.is_dir():  # the teacher's runs stay on the record of the pipeline that ships its student
        shutil.copytree(teacher_budget, Path(args.output_dir, "budget"), dirs_exist_ok=True)
    print(f"final loss {loss.item():.4f}; saved the one-pass pipeline to {args.output_dir}")


if __name__ == "__main__":
    main(parse_args())
