#!/usr/bin/env bash
# The per-class held-out Dice of the tiny default adaptation over three seeds, the same Dice on a
# test phantom of other patients (`maskgen evaluate-adapt`), and its masks on the phantom datasets
# the adaptation never saw (the tables of docs/lpsam.md and docs/store.md).
# Usage: bash scripts/adapt_seeds.sh [OUT_DIR]          (make adapt-seeds calls it)
#   SCALE=full|quick  phantom size of the adaptation data (default full: camus 100 patients, so the
#                     20% held out are 20 patients; quick holds out 2, too few to measure a class)
#   SEEDS="0 1 2"     adaptation seeds (the held-out split, new weights and batch order)
#   JOBS=1            seeds adapted side by side (each seed's output then goes to OUT_DIR/seed<s>.log);
#                     JOBS=3 THREADS=1 on 2 cores: three seeds of the default (3200 + 2400 steps)
#                     adapted and scored in 93 min (phase 1 about 38 min, phase 2 about 40 min a seed)
#   THREADS=2         torch CPU threads of each job (default 2, or 1 when JOBS > 1)
#   ADAPT_ARGS="..."  extra `maskgen adapt` options, e.g. "--frozen-decoder" for a variant
#   PHASE1_FROM=DIR   start each seed from DIR/seed<s>'s phase-1 weights, so a variant of phase 2 is
#                     compared with that run from the same phase-1 weights (docs/lpsam.md: the plain BCE
#                     was SCALE=quick PHASE1_FROM=runs/seeds ADAPT_ARGS=--plain-bce ... runs/plain)
#   REAL="ddti:DIR ..." real frames none of us generated, scored like the unseen sets (all frames of
#                     DIR, K = 16) into seed<s>/real/<dataset>; default ddti:../shared/data/ddti-sample
#                     (the one genuine DDTI frame), skipped where the folder is missing; REAL= for none
# Every step is resumable: rerun to continue, finished adaptations and stores are reused.
set -euo pipefail
OUT=${1:-runs/seeds}
BIN=${VENV:-.venv}/bin
SCALE=${SCALE:-full}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-1}
if [ "$JOBS" -gt 1 ]; then THREADS=${THREADS:-1}; else THREADS=${THREADS:-2}; fi
UNSEEN=(busi udiat tn3k hmcqu)
read -r -a REAL <<< "${REAL-ddti:../shared/data/ddti-sample}"
mkdir -p "$OUT"
step() { printf '\n== %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }
# score_store DATASET ROOT ADAPT_DIR STORE [maskgen run options]: K = 16 masks a frame with that
# adaptation, scored against the anatomy-free baselines; a store already scored is kept
score_store() {
  local d=$1 root=$2 adapt=$3 store=$4
  shift 4
  [ -f "$store/score.json" ] && return 0
  "$BIN/maskgen" run --dataset "$d" --root "$root" --checkpoint "$adapt" --out "$store" --k 16 --workers 1 \
    --threads "$THREADS" --no-progress "$@"
  "$BIN/maskgen" score "$store" --root "$root" --no-progress > /dev/null
}

step "phantom: adaptation data (camus, ddti, tg3k) at scale $SCALE -> $OUT/phantom; test data (full, phantom seed 1: other patients) -> $OUT/test-data; unseen sets (quick) -> $OUT/unseen-data"
[ -f "$OUT/phantom/phantom.json" ] || "$BIN/maskgen" phantom --out "$OUT/phantom" --scale "$SCALE" \
  --dataset camus --dataset ddti --dataset tg3k --no-progress
[ -f "$OUT/test-data/phantom.json" ] || "$BIN/maskgen" phantom --out "$OUT/test-data" --scale full --seed 1 \
  --dataset camus --dataset ddti --dataset tg3k --no-progress
[ -f "$OUT/unseen-data/phantom.json" ] || "$BIN/maskgen" phantom --out "$OUT/unseen-data" --scale quick \
  $(printf -- '--dataset %s ' "${UNSEEN[@]}") --no-progress

# one_seed S: adapt seed S, score it on the test phantom, the unseen sets and the real frames
one_seed() {
  local s=$1
  step "seed $s: adapt -> $OUT/seed$s"
  if [ -n "${PHASE1_FROM:-}" ] && [ ! -f "$OUT/seed$s/checkpoints/phase1.safetensors" ]; then
    mkdir -p "$OUT/seed$s/checkpoints"
    cp "$PHASE1_FROM/seed$s/checkpoints/phase1.safetensors" "$OUT/seed$s/checkpoints/"
  fi
  # shellcheck disable=SC2086  # ADAPT_ARGS is a list of options
  "$BIN/maskgen" adapt --out "$OUT/seed$s" --phantom "$OUT/phantom" --model tiny --threads "$THREADS" \
    --seed "$s" ${ADAPT_ARGS:-}
  # the held-out split is a few patients at SCALE=quick: score 3400 frames of 100 other patients too
  [ -f "$OUT/seed$s/test.json" ] || "$BIN/maskgen" evaluate-adapt "$OUT/seed$s" --phantom "$OUT/test-data" \
    --threads "$THREADS"
  for d in "${UNSEEN[@]}"; do  # 60 frames a set
    score_store "$d" "$OUT/unseen-data/$d" "$OUT/seed$s" "$OUT/seed$s/unseen/$d" --limit 60
  done
  for spec in ${REAL[@]+"${REAL[@]}"}; do  # dataset:folder of real frames, all of them
    d=${spec%%:*} root=${spec#*:}
    [ -d "$root" ] || { echo "REAL: $root is missing, $d skipped"; continue; }
    score_store "$d" "$root" "$OUT/seed$s" "$OUT/seed$s/real/$d"
  done
}

if [ "$JOBS" -le 1 ]; then
  for s in $SEEDS; do one_seed "$s"; done
else  # at most JOBS seeds at a time, each in its own shell with its own log; fail if any failed
  pids=() failed=0
  for s in $SEEDS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || :; done   # a free slot; statuses below
    echo "seed $s -> $OUT/seed$s.log"
    ( one_seed "$s" ) > "$OUT/seed$s.log" 2>&1 &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || { echo "a seed failed: see $OUT/seed*.log" >&2; exit 1; }
fi
step "tables -> $OUT/seeds.md"
"$BIN/python" scripts/seed_table.py "$OUT"/seed*/ | tee "$OUT/seeds.md"   # seed*/: the folders, not logs beside them
