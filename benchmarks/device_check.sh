#!/usr/bin/env bash
# One short run on a GPU machine that prints every throughput figure of issue 13 (at most 9 min
# on one H200: the sections' limits add up to 9 min), each with the GPU's name:
#   1. maskgen run end to end, ViT-B LP-SAM (random weights in an adaptation folder), 256 px,
#      K = 16, batch 64: --postprocess frame (per frame on the host) vs batched (on the GPU),
#      frames/s, their ratio and whether the two stores are identical; plus predict-only and
#      predict + per-frame post-processing at batch 64 (the ceiling of the first two);
#   2. pre-training at batch 192, 224 px: fp32, bf16 + channels_last, with and without
#      torch.compile, this step vs the main-branch step (before/after), pairs/s;
#   3. the loader into the GPU at batch 192 from a 256 px, K = 16 store: frames/s from disk
#      (cache none) and from RAM, against the fastest step;
#   4. the tiny LP-SAM's detail branch: a phase-1 step and latent-prompt inference with and
#      without it, batch 32, bf16 (benchmarks/bench_detail.py).
# Usage:  bash benchmarks/device_check.sh            (on the GPU machine, from the repository root)
#         TINY=1 bash benchmarks/device_check.sh     (the same sections with tiny settings on the
#                                                     CPU: checks that everything starts)
# PY selects the interpreter (default .venv/bin/python when present, else python3). Each
# section has its own time limit and a failed section does not stop the others.
set -uo pipefail
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
TINY=${TINY:-0}
export PYTHONWARNINGS=ignore
status=0
section() {  # section NAME LIMIT_S CMD...
  local name=$1 limit=$2; shift 2
  printf '\n==== %s   [%s]\n' "$name" "$(date +%H:%M:%S)"
  local tic=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  printf -- '---- %s: exit %d after %d s\n' "$name" "$rc" "$((SECONDS - tic))"
  [ "$rc" -eq 0 ] || status=1
}

printf '==== machine\n'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
'|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

if [ "$TINY" = 1 ]; then
  MASKGEN=(--skip-cpu --gpu-device cpu --gpu-model tiny --gpu-frames 8 --gpu-batch-sizes 4
           --gpu-e2e-frames 8 --gpu-e2e-batch 4)
  STEP=(--gpu-only --gpu-device cpu --gpu-batch 2 --gpu-resolution 64 --gpu-steps 1)
  LOADER=(--gpu-loader-frames 16)
  COMPILE=(--no-compile)  # inductor on a 2-core CPU takes too long for a start check
  DETAIL=(--device cpu --batch-size 2 --repeats 1)
else
  MASKGEN=(--skip-cpu --gpu-frames 256 --gpu-batch-sizes 64 --gpu-e2e-frames 1024 --gpu-e2e-batch 64)
  STEP=(--gpu-only --gpu-batch 192 --gpu-resolution 224 --gpu-steps 10)
  LOADER=(--gpu-loader-frames 768)
  COMPILE=()
  DETAIL=(--device cuda --batch-size 32 --repeats 10)
fi
section "1. maskgen: ViT-B end to end, frame vs batched post-processing" 150 \
  "$PY" benchmarks/bench_maskgen.py "${MASKGEN[@]}"
section "2. pretrain: batch 192 / 224 px step without compile, before/after, + the loader" 120 \
  "$PY" benchmarks/bench_pretrain.py "${STEP[@]}" --no-compile "${LOADER[@]}"
section "3. pretrain: the same with torch.compile rows (compile warm-up outside the timing)" 210 \
  "$PY" benchmarks/bench_pretrain.py "${STEP[@]}" "${COMPILE[@]}"
section "4. LP-SAM tiny: the detail branch's cost (phase-1 step, inference), with/without" 60 \
  "$PY" benchmarks/bench_detail.py "${DETAIL[@]}"
exit $status
