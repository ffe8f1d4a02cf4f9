#!/usr/bin/env bash
# The longer study behind the README's "does anatomy help?" question: about 1.5 hours on 2 idle
# CPU cores after `make demo` (the README quotes the measured run). Reuses the demo's phantom and
# mask store (the LP-SAM of the demo made it).
# Usage: bash scripts/study.sh [DEMO_DIR] [OUT_DIR]     (make study calls it)
# Same fairness as the demo: the full method and its controls (no prediction, grid masks, whole
# frame) and the oracle (the full method on the phantom's ground-truth anatomy masks of the same
# frames) share the step-0 weights, seed, data, budget and downstream heads; the random reference
# is the step-0 export of the same pre-training. Every step is resumable: rerun to continue.
#
# What it runs (the `study` profile: the demo's downstream protocol on 100 frames a task):
#   1. the oracle store: the demo store's frames with the phantom's own anatomy (maskgen oracle);
#   2. the full method, its three controls and the oracle pre-trained 30 epochs of the 240-frame
#      store at batch 16 (450 steps, 7.5x the demo), two at a time, with online probes every 30
#      steps; then frozen-backbone segmentation and linear probes on all six tasks, seeds 0 and 1;
#   3. full fine-tuning on busi-seg at a 240-step floor (at the demo's 60 steps fine-tuning
#      measures how fast an initialisation starts to segment, not what pre-training taught it:
#      README), seed 0. STUDY_FINETUNE_PROTOCOLS=finetune,low-label adds label efficiency
#      (about twice the time of this step).
set -euo pipefail
DEMO=${1:-runs/demo}
OUT=${2:-runs/study}
BIN=${VENV:-.venv}/bin
CORES=$(nproc 2>/dev/null || echo 2)
WORKERS=${STUDY_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}
THREADS=${STUDY_THREADS:-1}
SEEDS=${STUDY_SEEDS:-0,1}                       # seeds of the frozen-backbone and linear protocols
FINETUNE_SEEDS=${STUDY_FINETUNE_SEEDS:-0}
FINETUNE_TASKS=${STUDY_FINETUNE_TASKS:-busi-seg}
FINETUNE_PROTOCOLS=${STUDY_FINETUNE_PROTOCOLS:-finetune}
PRETRAIN_ARGS=(--epochs ${STUDY_EPOCHS:-30} --batch-size 16 --resolution 96 --warmup-epochs 2
               --probe busi-cls,busi-seg --probe-root "$DEMO/phantom/busi" --probe-every 30)
for need in "$DEMO/phantom/phantom.json" "$DEMO/store/manifest.parquet"; do
  [ -f "$need" ] || { echo "study: $need is missing: run 'make demo' first" >&2; exit 2; }
done
mkdir -p "$OUT"
step() { printf '\n== %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }
sweep=("$BIN/evaluate" sweep --root "$DEMO/phantom" --out "$OUT/eval" --profile study
       --workers "$WORKERS" --threads "$THREADS" --ablations --store "$DEMO/store"
       --oracle-store "$OUT/oracle-store" --pretrain-args "${PRETRAIN_ARGS[*]}")

step "1/3 oracle: the demo store's frames with the phantom's ground-truth anatomy -> $OUT/oracle-store"
if [ -f "$OUT/oracle-store/manifest.parquet" ]; then
  echo "reusing $OUT/oracle-store"
else
  "$BIN/maskgen" oracle "$DEMO/store" --phantom "$DEMO/phantom" --out "$OUT/oracle-store"
fi

step "2/3 pretrain the full method, its controls and the oracle ($WORKERS at a time), then frozen-backbone and linear protocols, seeds $SEEDS -> $OUT/eval"
"${sweep[@]}" --protocols frozen,linear --seeds "$SEEDS"
ln -sfn eval/backbones/anaus-run "$OUT/pretrain"   # the full method's RUN_DIR (curves.png, metrics.jsonl)

step "3/3 $FINETUNE_PROTOCOLS on $FINETUNE_TASKS (>= 240 steps a cell), seeds $FINETUNE_SEEDS"
"${sweep[@]}" --protocols "$FINETUNE_PROTOCOLS" --tasks "$FINETUNE_TASKS" --seeds "$FINETUNE_SEEDS"
"$BIN/evaluate" report "$OUT/eval" --tasks all --protocols "frozen,linear,$FINETUNE_PROTOCOLS" --seeds "$SEEDS"
step "done in $(( SECONDS / 60 )) min: $OUT/eval/report.md, curves: $OUT/pretrain/curves.png"
