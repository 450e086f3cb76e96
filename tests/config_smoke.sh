#!/usr/bin/env bash
# Smoke-runs one shipped config: it must validate, its resolved form must print and parse back to
# itself, and a ptq experiment must run end to end on a few sentences.
set -euo pipefail
qexp=$1 config=$2 out=$3
name=$(basename "$config" .yaml)
mkdir -p "$out"

"$qexp" validate "$config"
"$qexp" run "$config" --dry-run > "$out/$name.resolved.yaml"
"$qexp" run "$out/$name.resolved.yaml" --dry-run > "$out/$name.resolved-again.yaml"
cmp "$out/$name.resolved.yaml" "$out/$name.resolved-again.yaml"

kind=$(sed -n 's/^kind: //p' "$out/$name.resolved.yaml")
if [[ $kind == ptq ]]; then
  # A few sentences and iterations: this checks the whole pipeline, not the numbers.
  "$qexp" run "$config" --out "$out/runs" --set data.limit=24 --set measure.latency.warmup=1 \
    --set measure.latency.iterations=3 --set measure.latency.dataset_sentences=4 \
    --set measure.layer_error.batches=1
  latest=$(ls -td "$out/runs/$name"/*/ | head -1)
  for f in results.json results.csv summary.md report.html config.yaml; do
    [[ -s $latest/$f ]] || { echo "config_smoke: $latest$f missing or empty" >&2; exit 1; }
  done
  if grep -q '"status": "failed"' "$latest/results.json"; then
    echo "config_smoke: a quantizer failed in $latest/results.json" >&2; exit 1
  fi
fi
