#!/usr/bin/env bash
# Installs qexp into a temporary prefix, builds both out-of-tree example plugins
# (docs/examples/weight-only-intk, docs/examples/static-int8) against it with find_package(qexp) in
# Release, runs the conformance suite (`qexp check-plugin`) on each from its build folder, installs
# them, and checks the installed host lists them and runs them in an experiment.
#   tools/check-example-plugin.sh [BUILD_DIR]      (default: build, the release preset's folder)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
prefix="$root/prefix"

cmake --install "${1:-build}" --prefix "$prefix" > "$root/install.log"
qexp="$prefix/bin/qexp"

# example folder -> plugin id
examples=("weight-only-intk:weight-only-intk" "static-int8:static-int8-example")
for entry in "${examples[@]}"; do
  folder=${entry%%:*} id=${entry#*:}
  build="$root/build-$folder"
  cmake -S "docs/examples/$folder" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" > "$root/configure-$folder.log"
  cmake --build "$build"
  # The plugin straight from its build folder, judged by the budgets it declares; exit 1 on a
  # failed check. Only that folder and the installed plugins: nothing from the build tree leaks in.
  env -u QEXP_PLUGIN_PATH "$qexp" check-plugin "$id" --plugin-path "$build" | tee "$root/check-$folder.txt"
  grep -Eq '^[0-9]+ passed, 0 failed' "$root/check-$folder.txt"
  cmake --install "$build" > /dev/null
done

# Only the installed plugin folder: the build tree's plugins must not leak into this check.
env -u QEXP_PLUGIN_PATH "$qexp" plugins | tee "$root/plugins.txt"
grep -q '^weight-only-intk 1.0.0' "$root/plugins.txt"
grep -q '^static-int8-example 1.0.0' "$root/plugins.txt"
grep -q '^fp32 ' "$root/plugins.txt"
# Appended as the fourth and fifth schemes of the main experiment and run on a few sentences; the
# static example calibrates on 16 sentences of sst2/train.tsv.
env -u QEXP_PLUGIN_PATH "$qexp" run configs/ptq_int8.yaml --results-dir "$root/run" \
  --set quantizers.3.plugin=weight-only-intk --set quantizers.3.options.bits=3 \
  --set quantizers.4.plugin=static-int8-example --set 'quantizers.4.layers.exclude=["*classifier"]' \
  --set calibration.sentences=16 \
  --set data.limit=16 --set measure.latency.iterations=2 --set measure.latency.dataset_sentences=2 \
  --set measure.layer_error.batches=1
grep -q '"plugin": "weight-only-intk"' "$root/run/results.json"
grep -q '"plugin": "static-int8-example"' "$root/run/results.json"
[[ $(grep -c '"status": "ok"' "$root/run/results.json") -eq 6 ]]
echo "example plugins: built out of tree, conformant, installed, listed and run by the installed qexp"
