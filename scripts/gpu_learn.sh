#!/usr/bin/env bash
# The training stage of `openvla-ros learn` on a GPU machine, for runs recorded elsewhere.
#
# Each RUN directory holds what `openvla-ros learn ... --stop-after base` left (learn.json,
# dataset/ and base/, the model to train, its ViTs pretrained on simulator views here when the
# run asked for a vision stage; the bags are not needed; without base/ the GPU machine builds
# it, rendering those views itself). Every run
# trains at once on the one GPU (`learn
# --stop-after train --device cuda`, the run's own settings read from its learn.json), then its
# progress files go into OUT/<run name>.tar and each kept selection candidate (a bf16 checkpoint
# directory train/export_step_N) into OUT/<run name>-export_step_N.tar. Unpack every tar into its
# run directory on the recording machine and run the same `learn` command again (with the
# --steps, --batch-size, --lr and --save-every used here): it selects and evaluates there.
#
#   scripts/gpu_learn.sh [--steps N] [--batch-size B] [--lr LR] [--save-every K]
#                        [--keep K] [--minutes M] [--python PY] [--out DIR] -- RUN [RUN ...]
#   scripts/gpu_learn.sh --cpu-rehearsal ... -- RUN      # here: same steps on the CPU
#
# --keep: how many of the newest exports go into each tar (files back from a lent GPU machine
# are limited). --minutes: wall-clock limit per training; on expiry the newest step checkpoint
# is exported anyway, so a run that was too slow still brings something back.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-/tmp/gpu_learn_out}"
PY=""
DEVICE=cuda
STEPS=8000 BATCH=64 LR=1e-3 SAVE=4000 KEEP=2 MINUTES=8
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift ;;
    --batch-size) BATCH="$2"; shift ;;
    --lr) LR="$2"; shift ;;
    --save-every) SAVE="$2"; shift ;;
    --keep) KEEP="$2"; shift ;;
    --minutes) MINUTES="$2"; shift ;;
    --python) PY="$2"; shift ;;
    --out) OUT_DIR="$2"; shift ;;
    --cpu-rehearsal) DEVICE=cpu ;;
    --) shift; break ;;
    *) echo "gpu_learn.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -gt 0 ] || { echo 'gpu_learn.sh: name at least one RUN directory after --' >&2; exit 2; }
if [ -z "$PY" ]; then
  if [ "$DEVICE" = cpu ] && [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT_DIR"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L || true

pids=()
for run in "$@"; do
  [ -f "$run/learn.json" ] && [ -f "$run/dataset/dataset.json" ] \
    || { echo "gpu_learn.sh: $run holds no learn.json + dataset/" >&2; exit 2; }
  mapfile -t args < <("$PY" -m openvla_ros.finetune.learn_args "$run" --steps "$STEPS" \
    --batch-size "$BATCH" --lr "$LR" --save-every "$SAVE" --device "$DEVICE")
  name="$(basename "$run")"
  echo "gpu_learn.sh: $name: openvla-ros ${args[*]}"
  timeout --signal=INT "$((MINUTES * 60))" "$PY" -m openvla_ros.cli.main "${args[@]}" \
    >"$OUT_DIR/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done

for run in "$@"; do
  name="$(basename "$run")"
  "$PY" -m openvla_ros.finetune.learn_args "$run" --export-latest >>"$OUT_DIR/$name.log" 2>&1 || status=1
  cp "$OUT_DIR/$name.log" "$run/gpu_learn.log"
  files=()
  for f in learn.json train/finetune.json gpu_learn.log; do [ -e "$run/$f" ] && files+=("$f"); done
  tar -C "$run" -cf "$OUT_DIR/$name.tar" "${files[@]}"
  while IFS= read -r export; do  # one tar per export: a file back is at most 16 MiB
    tar -C "$run" -cf "$OUT_DIR/$name-$(basename "$export").tar" "$export"
    echo "gpu_learn.sh: $name: packed $export"
  done < <(cd "$run" && ls -d train/export_step_* 2>/dev/null | sort | tail -n "$KEEP")
  tail -n 3 "$OUT_DIR/$name.log" || true
done
exit "$status"
