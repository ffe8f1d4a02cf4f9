#!/usr/bin/env bash
# The whole ANAUS pipeline on the embedded phantom, on a CPU.
# Usage: bash scripts/demo.sh [OUT_DIR]      (make demo calls it with runs/demo)
# Every step is resumable: running the demo again continues or reuses what is finished.
set -euo pipefail
OUT=${1:-runs/demo}
BIN=${VENV:-.venv}/bin
THREADS=${DEMO_THREADS:-1}   # on 2 shared cores one torch thread per process is fastest
CORES=$(nproc 2>/dev/null || echo 2)
WORKERS=${DEMO_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}   # evaluation cells run in parallel
# one pre-training budget for the method and its controls (a fair comparison): 4 epochs of the
# 240-frame store at batch 16 = 60 steps, the small-batch recipe (--recipe auto picks it below a
# global batch of 128), and online probes of the frozen backbone on the phantom's BUSI every 15 steps
# (a kNN on its classes and a dense linear probe on its lesion masks). make study trains longer.
PRETRAIN_ARGS=(--epochs 4 --batch-size 16 --resolution 96 --warmup-epochs 1
               --probe busi-cls,busi-seg --probe-root "$OUT/phantom/busi" --probe-every 15)
# the tasks of the second pass (fine-tuning and label efficiency, about 9 min on 2 cores for
# busi-seg); DEMO_FINETUNE_TASKS=all runs the six tasks (about 45 min more on 2 cores)
FINETUNE_TASKS=${DEMO_FINETUNE_TASKS:-busi-seg}
mkdir -p "$OUT"
step() { printf '\n== %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }

step "1/7 phantom: synthetic ultrasound in the nine native layouts -> $OUT/phantom"
if [ -f "$OUT/phantom/phantom.json" ]; then
  echo "reusing $OUT/phantom (delete it to regenerate)"
else
  "$BIN/maskgen" phantom --out "$OUT/phantom" --scale quick --preview "$OUT/phantom/preview.png"
fi
"$BIN/maskgen" datasets show phantom --root "$OUT/phantom" --preview "$OUT/phantom/datasets_preview.png"

step "2/7 adapt: one-time LP-SAM adaptation (tiny, on a full-scale phantom's camus/ddti/tg3k) -> $OUT/lpsam"
if [ -f "$OUT/lpsam/lpsam.safetensors" ] && [ -f "$OUT/lpsam/report.md" ]; then
  echo "reusing the finished adaptation in $OUT/lpsam (delete it to adapt again)"
else  # an interrupted adaptation continues from its phase checkpoints
  # the adaptation data: 100 CAMUS patients, 400 DDTI images, 30 TG3K videos (about 40 s to make;
  # the adaptation's cost is its step budget, not its data). The quick phantom's 10 patients, 40
  # images and 3 videos left the nodule and the gland far under 0.80 on other patients (docs/lpsam.md)
  [ -f "$OUT/adapt-data/phantom.json" ] || "$BIN/maskgen" phantom --out "$OUT/adapt-data" --scale full \
    --dataset camus --dataset ddti --dataset tg3k --no-progress
  "$BIN/maskgen" adapt --out "$OUT/lpsam" --phantom "$OUT/adapt-data" --model tiny --threads "$THREADS"
fi

step "2b/7 evaluate-adapt: the adaptation on other patients (a phantom with --seed 1) -> $OUT/lpsam/test.md"
# the held-out split above is 20 CAMUS patients, 80 DDTI images and 3 TG3K blocks of the same
# phantom; these are 10 other patients, 40 images and 3 videos, none of them trained on (about 20 s;
# make adapt-seeds scores 100 patients, 400 images and 30 videos)
[ -f "$OUT/test-phantom/phantom.json" ] || "$BIN/maskgen" phantom --out "$OUT/test-phantom" --scale quick --seed 1 \
  --dataset camus --dataset ddti --dataset tg3k --no-progress
[ -f "$OUT/lpsam/test.json" ] || "$BIN/maskgen" evaluate-adapt "$OUT/lpsam" --phantom "$OUT/test-phantom" \
  --threads "$THREADS"

step "3/7 maskgen run: K anatomy masks per butus frame -> $OUT/store"
"$BIN/maskgen" run --dataset butus --root "$OUT/phantom/butus" --checkpoint "$OUT/lpsam" \
  --out "$OUT/store" --k 16 --workers 1 --threads "$THREADS"

step "4/7 verify + inspect the store"
"$BIN/maskgen" verify "$OUT/store"
"$BIN/maskgen" inspect "$OUT/store" --out "$OUT/store/contact_sheet.png"

step "4b/7 score: LP-SAM vs anatomy-free masks on phantom datasets the adaptation never saw -> $OUT/unseen"
for d in busi udiat tn3k hmcqu; do  # small stores (60 frames each), scored against their masks
  "$BIN/maskgen" run --dataset "$d" --root "$OUT/phantom/$d" --checkpoint "$OUT/lpsam" --out "$OUT/unseen/$d" \
    --k 16 --limit 60 --workers 1 --threads "$THREADS" --no-progress
  "$BIN/maskgen" score "$OUT/unseen/$d" --root "$OUT/phantom/$d" --no-progress
  "$BIN/maskgen" inspect "$OUT/unseen/$d" --frames 12 > /dev/null
done

step "5/7 pretrain: the full method and its three controls, two at a time (SAM never loaded) -> $OUT/eval/backbones"
# evaluate sweep --ablations runs `pretrain run` + `pretrain export` for the full method (anaus)
# and the controls (whole frame, grid, no prediction) with the same budget, seed and step-0
# weights, $WORKERS at a time, then evaluates all five methods. The first pass runs the
# protocols that cost seconds a cell (frozen-backbone segmentation, linear probe) on all six
# tasks; finished cells and backbones are reused, and each pass rewrites report.md.
sweep=("$BIN/evaluate" sweep --root "$OUT/phantom" --out "$OUT/eval" --profile quick
       --workers "$WORKERS" --threads "$THREADS" --ablations --store "$OUT/store"
       --pretrain-args "${PRETRAIN_ARGS[*]}")
"${sweep[@]}" --protocols frozen,linear
if [ -d "$OUT/pretrain" ] && [ ! -L "$OUT/pretrain" ]; then   # a demo of an earlier version trained here
  echo "moving the earlier demo's $OUT/pretrain aside to $OUT/pretrain.previous"
  rm -rf "$OUT/pretrain.previous" && mv "$OUT/pretrain" "$OUT/pretrain.previous"
fi
ln -sfn eval/backbones/anaus-run "$OUT/pretrain"   # the full method's RUN_DIR, where users look for it
echo "curves: $OUT/pretrain/curves.png, views: $OUT/pretrain/view_pair.png"

step "6/7 export the backbone (timm / torchvision loadable)"
"$BIN/pretrain" export "$OUT/pretrain" --out "$OUT/pretrain/backbone.safetensors"

step "7/7 evaluate: fine-tuning and label efficiency on $FINETUNE_TASKS, all five methods -> $OUT/eval"
# about 20 CPU s a cell at the quick profile's 60-step floor
"${sweep[@]}" --protocols finetune,low-label --tasks "$FINETUNE_TASKS"
"$BIN/evaluate" report "$OUT/eval" --tasks all --protocols finetune,linear,frozen,low-label   # both passes
step "done in $(( SECONDS / 60 )) min: $OUT/eval/report.md"
