#!/usr/bin/env bash
# Train the current best recipe on a bare GPU machine from the bundle `make gpu-bundle` wrote, time-boxed by
# wall clock, then distil its sampler into one UNet pass, and leave the results under $OUT (docs/gpu.md gives the
# exact `device` call):
#   OUT=/path MINUTES=5 DISTILL_MINUTES=2.5 bash .gpu-bundle/launch.sh [more train_colorization.py flags, which win]
# $OUT gets 5 files (the device returns at most 8, none over 16 MiB, at most 2 folders down): teacher.tar (the
# fine-tuned fp16 pipeline without its image_encoder/), one-pass.tar (its one-pass student, likewise; not with
# DISTILL_MINUTES=0), image_encoder.tar (the image encoder both share: the fine-tune trains its projection, the
# distillation keeps it), summary.json (budget records, throughput, validation) and train.log (both runs' logs
# without progress-bar lines). Unpack each model with the encoder:
#   mkdir m && tar -xf teacher.tar -C m && tar -xf image_encoder.tar -C m
# Settings (environment): MINUTES (5: with the distillation, the start and the copies, about 11 of the device's
# 15 minutes), STEPS (the schedule's length, 6000), MIXED_PRECISION (bf16), RESOLUTION (64), BATCH (64),
# PRETRAINED (models/flowers), DISTILL_MINUTES (2.5; 0: no distillation), DISTILL_STEPS (3000), WORKING_SIZE (the
# student's, 56), WORK (/tmp/colorize-gpu-run), SITE (where the wheels go, /tmp/colorize-site), PYTHON (python3),
# REPO (the bundle's parent folder).
set -euo pipefail
bundle="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="${REPO:-$(cd "$bundle/.." && pwd)}"
out="${OUT:?set OUT to the folder for the results}"
python="${PYTHON:-python3}"
site="${SITE:-/tmp/colorize-site}"
work="${WORK:-/tmp/colorize-gpu-run}"
mkdir -p "$out"

if compgen -G "$bundle/wheels/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$bundle"/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo:${PYTHONPATH:-}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$python" -c "import torch, accelerate, diffusers, datasets, colorize; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| diffusers', diffusers.__version__, '| datasets', datasets.__version__)"

# progress bars end in \r, and a log record can follow one on the same line: split both off, drop the bars
clean_log() {
  tr '\r' '\n' < "$1" | sed -E 's/([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:,]+ - )/\n\1/g' \
    | grep -v -E '^(Steps|Checking images|Encoding (images|photos)|Generating|Loading|$)' || true
}

status=0
"$python" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no \
  --mixed_precision "${MIXED_PRECISION:-bf16}" "$repo/train_colorization.py" \
  --pretrained_model_name_or_path "${PRETRAINED:-$repo/models/flowers}" \
  --train_data_dir "$bundle/data/train" --validation_data_dir "$bundle/data/validation" \
  --output_dir "$work" --resolution "${RESOLUTION:-64}" --train_batch_size "${BATCH:-64}" \
  --data_on_device --learning_rate 2e-4 --lr_scheduler cosine \
  --max_train_steps "${STEPS:-6000}" --max_train_minutes "${MINUTES:-5}" --use_ema \
  --checkpointing_steps 1000 --checkpoints_total_limit 1 --validation_steps 2000 --num_scored_validation_images 32 \
  --mixed_precision "${MIXED_PRECISION:-bf16}" --seed 5 --resume_from_checkpoint latest "$@" \
  > "$work.log" 2>&1 || status=$?
clean_log "$work.log" > "$out/train.log"
if [ "$status" -ne 0 ]; then tail -n 30 "$out/train.log"; exit "$status"; fi

# export_model NAME FOLDER: the fp16 pipeline as $OUT/NAME.tar without its image_encoder/, which goes (the teacher's)
# into $OUT/image_encoder.tar; NAME's budget record and throughput into $OUT/summary.json
export_model() {
"$python" - "$1" "$2" "$out" <<'PY'
import json, sys, tarfile, tempfile
from pathlib import Path
import torch
from colorize.publish import export_pipeline
from colorize.training.budget import read_budget, throughput

LIMIT = 16 * 2**20  # the device returns no larger file
name, folder, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


def pack(folder: Path, archive: Path, encoder: bool):
    """The files of ``folder`` in (``encoder``) or outside its image_encoder/ into the tar ``archive``."""
    with tarfile.open(archive, "w") as tar:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and (relative.parts[0] == "image_encoder") == encoder:
                tar.add(path, arcname=str(relative))
    if archive.stat().st_size > LIMIT:
        raise SystemExit(f"{archive.name} is {archive.stat().st_size / 2**20:.1f} MiB, over the device's 16 MiB a file")


with tempfile.TemporaryDirectory() as exported:
    pipeline = export_pipeline(folder, exported, dtype="fp16")
    pack(Path(exported), out / f"{name}.tar", encoder=False)
    if pipeline.image_encoder is not None and not (out / "image_encoder.tar").exists():
        pack(Path(exported), out / "image_encoder.tar", encoder=True)
        torch.save(pipeline.image_encoder.state_dict(), Path(folder).parent / "image_encoder.pt")
    elif pipeline.image_encoder is not None:  # a student: its encoder is its teacher's, already packed
        packed = torch.load(Path(folder).parent / "image_encoder.pt")
        if any(not torch.equal(tensor, packed[key]) for key, tensor in pipeline.image_encoder.state_dict().items()):
            raise SystemExit(f"{name}'s image encoder is not the one in image_encoder.tar")
summary_file = out / "summary.json"
summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
budget = read_budget(folder)[-1]
summary[name] = {"budget": budget, **throughput(budget)}
summary_file.write_text(json.dumps(summary, indent=2) + "\n")
print(f"{name}: {budget['end_step'] - budget['start_step']} steps, {summary[name]['images_per_second']} img/s "
      f"({budget['hardware']}, {budget['mixed_precision']}) -> {out / (name + '.tar')}")
PY
}
export_model teacher "$work"

# the one-pass student (distill_sampler.py, the shipped student's recipe, at the working size the speed bar allows);
# the teacher is already in $OUT if this fails
if [ "${DISTILL_MINUTES:-2.5}" != "0" ]; then
  student="$work-one-pass"
  rm -rf "$student"
  perceptual=()
  if [ -f "$bundle/perceptual/efficientnet-lite1.safetensors" ]; then
    perceptual=(--perceptual_weights_file "$bundle/perceptual/efficientnet-lite1.safetensors")
  fi
  "$python" "$repo/distill_sampler.py" --pretrained_model_name_or_path "$work" --train_data_dir "$bundle/data/train" \
    --output_dir "$student" --working_size "${WORKING_SIZE:-56}" --max_train_steps "${DISTILL_STEPS:-3000}" \
    --max_train_minutes "${DISTILL_MINUTES:-2.5}" --mixed_precision "${MIXED_PRECISION:-bf16}" --seed 5 \
    ${perceptual[@]+"${perceptual[@]}"} > "$student.log" 2>&1 || status=$?
  { echo "== distill_sampler.py"; clean_log "$student.log"; } >> "$out/train.log"
  if [ "$status" -ne 0 ]; then tail -n 30 "$out/train.log"; exit "$status"; fi
  export_model one-pass "$student"
fi
