#!/usr/bin/env bash
# Smoke-runs one shipped config: it must validate, its resolved form must print and parse back to
# itself, and a ptq, sensitivity or autotune experiment must run end to end on a few sentences.
set -euo pipefail
qexp=$1 config=$2 out=$3
name=$(basename "$config" .yaml)
mkdir -p "$out"

# A sweep file is an experiment plus a `sweep:` section: expanding it resolves every point through
# the schema; running its points is the sweep tests' job (tests/sweep_test.cpp, tests/slurm_e2e_test.sh).
if grep -q '^sweep:' "$config"; then
  "$qexp" sweep "$config" --list > "$out/$name.points.txt"
  grep -q '^  [0-9a-f]\{10\}  ' "$out/$name.points.txt" || { echo "config_smoke: $config lists no points" >&2; exit 1; }
  exit 0
fi

# A config naming a plugin this CPU cannot run (onednn-int8 needs AVX-512 VNNI) cannot even validate
# here: the quantizer is refused up front. Skipped (exit 77, ctest's SKIP_RETURN_CODE) with the
# reason, instead of failing on a machine that is not the one it was written for.
unsupported=$("$qexp" plugins --json | python3 -c 'import json, sys
for p in json.load(sys.stdin):
    if not p["supported"]: print(p["id"])')
for id in $unsupported; do
  if grep -Eq "plugin: *$id([^a-z0-9-]|\$)" "$config"; then
    echo "config_smoke: $config uses plugin '$id', which cannot run on this CPU; skipped" >&2
    exit 77
  fi
done

# A config whose model is not in the repository names it (`# smoke-requires: PATH`) and the stand-in
# the smoke run uses when it is missing (`# smoke-stand-in: golden-tiny | init-model`).
overrides=()
required=$(sed -n 's/^# smoke-requires: //p' "$config")
if [[ -n $required && ! -e $(dirname "$config")/$required ]]; then
  case $(sed -n 's/^# smoke-stand-in: \([a-z-]*\).*/\1/p' "$config") in
    golden-tiny) stand_in=${QEXP_SHARED_DIR:?}/golden/distilbert-tiny-random ;;
    init-model)
      stand_in=$out/stand-in/distilbert-base-random
      [[ -f $stand_in/model.safetensors ]] || "$qexp" init-model --preset distilbert-base --seed 0 --out "$stand_in" ;;
    *) echo "config_smoke: $config needs $required and names no smoke-stand-in" >&2; exit 1 ;;
  esac
  echo "config_smoke: $required is missing; using the stand-in $stand_in"
  overrides=(--set "model.path=$stand_in")
fi

"$qexp" validate "$config" "${overrides[@]}"
"$qexp" run "$config" "${overrides[@]}" --dry-run > "$out/$name.resolved.yaml"
"$qexp" run "$out/$name.resolved.yaml" --dry-run > "$out/$name.resolved-again.yaml"
cmp "$out/$name.resolved.yaml" "$out/$name.resolved-again.yaml"

kind=$(sed -n 's/^kind: //p' "$out/$name.resolved.yaml")
if [[ $kind == ptq ]]; then
  # A few sentences and iterations: this checks the whole pipeline, not the numbers.
  "$qexp" run "$config" "${overrides[@]}" --out "$out/runs" --set data.limit=24 --set measure.latency.warmup=1 \
    --set measure.latency.iterations=3 --set measure.latency.dataset_sentences=4 \
    --set measure.layer_error.batches=1
  latest=$(ls -td "$out/runs/$name"/*/ | head -1)
  for f in results.json results.csv summary.md report.html config.yaml; do
    [[ -s $latest/$f ]] || { echo "config_smoke: $latest$f missing or empty" >&2; exit 1; }
  done
  if grep -q '"status": "failed"' "$latest/results.json"; then
    echo "config_smoke: a quantizer failed in $latest/results.json" >&2; exit 1
  fi
elif [[ $kind == autotune ]]; then
  # Few sentences and trials: the search, the chosen recipe and its final run, not the numbers.
  "$qexp" run "$config" "${overrides[@]}" --out "$out/runs" --set data.limit=32 --set calibration.sentences=16 \
    --set autotune.tuning.sentences=16 --set autotune.max_trials=4 --set final.latency_iterations=2 \
    --set final.latency_sentences=2 || [[ $? == 1 ]]  # 1: no recipe met the constraint in 4 trials
  latest=$(ls -td "$out/runs/$name"/*/ | head -1)
  for f in results.json summary.md report.html config.yaml chosen_recipe.yaml trials.jsonl heldout.tsv final/results.json; do
    [[ -s $latest/$f ]] || { echo "config_smoke: $latest$f missing or empty" >&2; exit 1; }
  done
  "$qexp" validate "$latest/chosen_recipe.yaml"
elif [[ $kind == sensitivity ]]; then
  # A few sentences: every site is still measured in every mode the config asks for.
  "$qexp" run "$config" "${overrides[@]}" --out "$out/runs" --set data.limit=16 --set calibration.sentences=16 \
    --set measure.layer_error.batches=1
  latest=$(ls -td "$out/runs/$name"/*/ | head -1)
  for f in results.json summary.md report.html config.yaml; do
    [[ -s $latest/$f ]] || { echo "config_smoke: $latest$f missing or empty" >&2; exit 1; }
  done
  python3 - "$latest/results.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
sites = doc["sensitivity"]["sites"]
assert sites and all("error" not in s for s in sites), "a site failed or none was measured"
assert [s["rank"] for s in sites] == list(range(1, len(sites) + 1)), "sites are not ranked"
PY
fi
