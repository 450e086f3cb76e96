#!/usr/bin/env bash
# CI short mode of the end-to-end benchmark (tools/bench/run-benchmarks.sh --short): the tiny
# model, a few sentences, one round at 1 and 2 threads. Checks that the whole pipeline runs and that
# the seed pipeline's own PyTorch DistilBERT reads the same checkpoint and token ids as qexp (its
# fp32 logits agree with qexp's), not the timings.
#   tests/seed_baseline_test.sh BUILD_DIR
set -euo pipefail
build=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! /usr/bin/python3 -c 'import torch' 2> /dev/null; then
  echo "seed_baseline_test: /usr/bin/python3 has no torch (Debian's python3-torch); skipped" >&2
  exit 77
fi
# The seed model itself against Hugging Face's golden logits (fp32 and quantize_dynamic on onednn).
golden=${QEXP_SHARED_DIR:-$root/../shared}/golden/distilbert-tiny-random
mkdir -p "$build/e2e-bench-short"
/usr/bin/python3 "$root/tools/seed_baseline.py" --model "$golden" --ids "$golden/expected.jsonl" \
  --golden "$golden/expected.jsonl" --batch 8 --warmup 1 --out "$build/e2e-bench-short/seed-golden.json"
/usr/bin/python3 - "$build/e2e-bench-short/seed-golden.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for key in ("golden_logits_max_abs_diff", "golden_logits_dynamic_int8_onednn_max_abs_diff"):
    if not r[key] < 1e-5:
        sys.exit(f"seed_baseline_test: seed pipeline {key} = {r[key]} (expected < 1e-5)")
PY

out=$build/e2e-bench-short/benchmarks.md
rm -f "$out" "$build"/e2e-bench-short/{qexp,seed}-r*-t*.json
"$root/tools/bench/run-benchmarks.sh" --short --build "$build"

fail() { echo "seed_baseline_test: $*" >&2; exit 1; }
[[ -s $out ]] || fail "$out was not written"
# At 1 thread one process per side; at 2, one per configuration (every qexp configuration, seed
# fp32 and seed int8).
configs=$("$build/bin/e2e_bench" --list-configs | wc -l)
for side in qexp seed; do
  [[ -s $build/e2e-bench-short/$side-r1-t1.json ]] || fail "$side-r1-t1.json missing"
done
for ((i = 0; i < configs; i++)); do
  [[ -s $build/e2e-bench-short/qexp-r1-t2-c$i.json ]] || fail "qexp-r1-t2-c$i.json missing"
done
for v in fp32 int8; do
  [[ -s $build/e2e-bench-short/seed-r1-t2-$v.json ]] || fail "seed-r1-t2-$v.json missing"
done
for heading in "## 1 thread" "## 2 threads" "## Floors" "## Where the time goes" "seed int8" "qexp onednn-int8"; do
  grep -qF "$heading" "$out" || fail "$out has no '$heading'"
done
# The seed's fp32 logits must match qexp's: same weights, same ids, same operations.
/usr/bin/python3 - "$build/e2e-bench-short" <<'PY'
import glob, json, os, sys
work = sys.argv[1]
def check(seed_file, qexp_file, timed):
    seed = json.load(open(f"{work}/{seed_file}"))
    qexp = json.load(open(f"{work}/{qexp_file}"))
    diff = seed.get("fp32_logits_max_abs_diff")
    if diff is None or seed.get("fp32_logits_compared", 0) != qexp["sentences"] or not diff < 1e-4:
        sys.exit(f"seed_baseline_test: {seed_file}: seed fp32 vs qexp fp32 logits max |diff| {diff} "
                 f"over {seed.get('fp32_logits_compared')} of {qexp['sentences']} sentences (expected < 1e-4)")
    for f in timed:
        for name, v in json.load(open(f"{work}/{f}"))["variants"].items():
            if len(v["batch1_ms"]) != qexp["sentences"] or not all(x > 0 for x in v["batch1_ms"]):
                sys.exit(f"seed_baseline_test: {f}: {name}: expected {qexp['sentences']} positive batch-1 timings")

check("seed-r1-t1.json", "qexp-r1-t1.json", ["qexp-r1-t1.json", "seed-r1-t1.json"])
check("seed-r1-t2-fp32.json", "qexp-r1-t2-c0.json",
      [os.path.basename(p) for p in glob.glob(f"{work}/*-r1-t2-*.json")])
print("seed_baseline_test: fp32 logits agree; every configuration timed")
PY
