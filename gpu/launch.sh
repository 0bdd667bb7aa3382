#!/usr/bin/env bash
# Train the current best recipe on a bare GPU machine from the bundle `make gpu-bundle` wrote, time-boxed by
# wall clock, and leave the results under $OUT (docs/gpu.md gives the exact `device` call):
#   OUT=/path MINUTES=8 bash .gpu-bundle/launch.sh [more train_colorization.py flags, which win]
# $OUT gets at most 8 files, none over 16 MiB, at most 2 folders down: the fp16 pipeline (model/...),
# summary.json (budget record, throughput, validation) and train.log (without progress-bar lines).
# Settings (environment): MINUTES (8), STEPS (the schedule's length, 6000), MIXED_PRECISION (bf16),
# RESOLUTION (64), BATCH (64), PRETRAINED (models/flowers), WORK (/tmp/colorize-gpu-run),
# SITE (where the wheels go, /tmp/colorize-site), PYTHON (python3), REPO (the bundle's parent folder).
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

status=0
"$python" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no \
  --mixed_precision "${MIXED_PRECISION:-bf16}" "$repo/train_colorization.py" \
  --pretrained_model_name_or_path "${PRETRAINED:-$repo/models/flowers}" \
  --train_data_dir "$bundle/data/train" --validation_data_dir "$bundle/data/validation" \
  --output_dir "$work" --resolution "${RESOLUTION:-64}" --train_batch_size "${BATCH:-64}" \
  --data_on_device --learning_rate 2e-4 --lr_scheduler cosine \
  --max_train_steps "${STEPS:-6000}" --max_train_minutes "${MINUTES:-8}" --use_ema \
  --checkpointing_steps 1000 --checkpoints_total_limit 1 --validation_steps 2000 --num_scored_validation_images 32 \
  --mixed_precision "${MIXED_PRECISION:-bf16}" --seed 5 --resume_from_checkpoint latest "$@" \
  > "$work.log" 2>&1 || status=$?
# progress bars end in \r, and a log record can follow one on the same line: split both off, drop the bars
tr '\r' '\n' < "$work.log" | sed -E 's/([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:,]+ - )/\n\1/g' \
  | grep -v -E '^(Steps|Checking images|Encoding images|Generating|Loading|$)' > "$out/train.log" || true
if [ "$status" -ne 0 ]; then tail -n 30 "$out/train.log"; exit "$status"; fi

"$python" - "$work" "$out" <<'PY'
import json, sys
from pathlib import Path
from colorize.publish import export_pipeline
from colorize.training.budget import read_budget, throughput

work, out = Path(sys.argv[1]), Path(sys.argv[2])
export_pipeline(work, out / "model", dtype="fp16")  # 6 files: with summary.json and train.log, $OUT's 8
budget = read_budget(work)[-1]
summary = {"budget": budget, **throughput(budget)}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"{budget['end_step'] - budget['start_step']} steps, {summary['images_per_second']} img/s ({budget['hardware']}, "
      f"{budget['mixed_precision']}); results in {out}")
PY
