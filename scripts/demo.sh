#!/usr/bin/env bash
# The whole pipeline on the embedded phantom. Usage: bash scripts/demo.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/demo}
BIN=${VENV:-.venv}/bin
mkdir -p "$OUT"
"$BIN/maskgen" phantom --out "$OUT/phantom" --scale quick
