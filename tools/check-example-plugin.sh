#!/usr/bin/env bash
# Installs qexp into a temporary prefix, builds docs/examples/weight-only-intk against it with
# find_package(qexp), installs that plugin, and checks the installed host lists and accepts it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
prefix="$root/prefix"

cmake --install build --prefix "$prefix" > "$root/install.log"
cmake -S docs/examples/weight-only-intk -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > "$root/configure.log"
cmake --build "$root/build"
cmake --install "$root/build" > /dev/null

qexp="$prefix/bin/qexp"
# Only the installed plugin folder: the build tree's plugins must not leak into this check.
env -u QEXP_PLUGIN_PATH "$qexp" plugins | tee "$root/plugins.txt"
grep -q '^weight-only-intk 1.0.0' "$root/plugins.txt"
grep -q '^fp32 ' "$root/plugins.txt"
# Appended as a fourth scheme of the main experiment and run on a few sentences.
env -u QEXP_PLUGIN_PATH "$qexp" run configs/ptq_int8.yaml --results-dir "$root/run" \
  --set quantizers.3.plugin=weight-only-intk --set quantizers.3.options.bits=3 \
  --set data.limit=16 --set measure.latency.iterations=2 --set measure.latency.dataset_sentences=2 \
  --set measure.layer_error.batches=1
grep -q '"plugin": "weight-only-intk"' "$root/run/results.json"
[[ $(grep -c '"status": "ok"' "$root/run/results.json") -eq 5 ]]
echo "example plugin: built out of tree, installed, listed and run by the installed qexp"
