#!/usr/bin/env bash
# Fills the GPU table of docs/benchmarks.md in one run (about 3-5 minutes on one H100/H200):
# bf16 reference / fast / CUDA-graph paths, int8 and int4 weight-only, batched throughput at
# 1, 4, 8, 16 through predict_batch, kernel timings; every check against the bf16 reference.
#
#   scripts/gpu_bench.sh                      # on the GPU machine (python3 with torch + CUDA)
#   scripts/gpu_bench.sh --cpu-rehearsal      # here: tiny model on the CPU, same phases/checks
#   options: --out DIR (default: $OUT, else /tmp/gpu_bench_out)  --wheels DIR (default: .whl)
#            --python PY  and after `--`, arguments for `python -m openvla_ros.metrics.gpu_bench`
#
# Carried wheels: every *.whl in the wheel folder is installed with the device README's recipe
# (pip --no-index --no-deps --target a scratch folder, put first on PYTHONPATH) before the bench
# starts. The int4/int8 kernels are core PyTorch ops, so the GPU run needs none; the step stays
# for packages a future bench needs and is rehearsed by the tests with a throw-away wheel.
# Writes gpu_bench.json (after each phase), gpu_bench.md, gpu_bench.log, nvidia_smi.txt; exits 1
# when a check failed (the outputs are written first).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${OUT:-/tmp/gpu_bench_out}"
WHEELS="$ROOT/.whl"
REHEARSAL=0
PY=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-rehearsal) REHEARSAL=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    --wheels) WHEELS="$2"; shift ;;
    --python) PY="$2"; shift ;;
    --) shift; EXTRA+=("$@"); break ;;
    *) echo "gpu_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$PY" ]; then
  if [ "$REHEARSAL" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
mkdir -p "$OUT_DIR"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/gpu_bench.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  echo "gpu_bench.sh: installing ${#wheels[@]} carried wheel(s) into $SCRATCH/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SCRATCH/site" "${wheels[@]}"
  export PYTHONPATH="$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}"
  export OPENVLA_BENCH_SITE="$SCRATCH/site"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,driver_version \
    --format=csv >"$OUT_DIR/nvidia_smi.txt" 2>&1 || true
fi
args=(--out "$OUT_DIR")
[ "$REHEARSAL" = 1 ] && args+=(--cpu-rehearsal)
set +e
"$PY" -m openvla_ros.metrics.gpu_bench "${args[@]}" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee "$OUT_DIR/gpu_bench.log"
code=${PIPESTATUS[0]}
set -e
exit "$code"
