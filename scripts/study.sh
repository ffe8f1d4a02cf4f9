#!/usr/bin/env bash
# The longer study behind the README's "does anatomy help?" question (projected at about 3.5 hours
# on 2 CPU cores after `make demo`; minutes on a GPU). Reuses the demo's phantom, LP-SAM and mask store.
# Usage: bash scripts/study.sh [DEMO_DIR] [OUT_DIR]     (make study calls it)
# Same fairness as the demo: the full method and its controls (no prediction, grid masks, whole
# frame) share the step-0 weights, seed, data, budget and downstream heads; the random reference
# is the step-0 export of the same pre-training. Every step is resumable.
set -euo pipefail
DEMO=${1:-runs/demo}
OUT=${2:-runs/study}
BIN=${VENV:-.venv}/bin
CORES=$(nproc 2>/dev/null || echo 2)
WORKERS=${STUDY_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}
SEEDS=${STUDY_SEEDS:-0,1}        # fine-tuning seeds (each cell repeated per seed)
# 30 epochs of the 240-frame store at batch 16 = 450 steps: long enough for the probe to flatten
PRETRAIN_ARGS=(--epochs ${STUDY_EPOCHS:-30} --batch-size 16 --resolution 96 --warmup-epochs 2
               --probe busi-cls,busi-seg --probe-root "$DEMO/phantom/busi" --probe-every 30)
for need in "$DEMO/phantom/phantom.json" "$DEMO/store/manifest.parquet"; do
  [ -f "$need" ] || { echo "study: $need is missing: run 'make demo' first" >&2; exit 2; }
done
mkdir -p "$OUT"
step() { printf '\n== %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }

step "1/2 pretrain: the full method, ${PRETRAIN_ARGS[1]} epochs -> $OUT/pretrain"
resume=(); [ -f "$OUT/pretrain/checkpoint.pt" ] && resume=(--resume)
"$BIN/pretrain" run --store "$DEMO/store" --out "$OUT/pretrain" "${PRETRAIN_ARGS[@]}" "${resume[@]}" \
  --threads "$CORES"
"$BIN/pretrain" export "$OUT/pretrain" --out "$OUT/pretrain/backbone.safetensors"

step "2/2 evaluate: controls at the same budget, seeds $SEEDS -> $OUT/eval"
"$BIN/evaluate" sweep --root "$DEMO/phantom" --out "$OUT/eval" --profile study --seeds "$SEEDS" \
  --workers "$WORKERS" --threads 1 \
  --checkpoint anaus="$OUT/pretrain/backbone.safetensors" --ablations --store "$DEMO/store" \
  --pretrain-args "${PRETRAIN_ARGS[*]}"
