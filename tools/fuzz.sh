#!/usr/bin/env bash
# Builds qexp's libFuzzer targets (tests/fuzz/, clang with ASan + UBSan) in build-fuzz and runs
# each for a bounded time on a copy of its committed seed corpus (tests/fuzz/corpus/<target>/),
# so the committed corpus never grows. Prints per target the executions, exec/s and coverage
# (cov: edges, ft: features) from libFuzzer's final stats; exits non-zero on any finding (crash,
# sanitizer report, leak, timeout, out-of-memory), naming the target and the input it saved.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds each, every target
#
# Environment: QEXP_FUZZ_BUILD_DIR (default build-fuzz), QEXP_FUZZ_JOBS (build jobs, default
# nproc), QEXP_FUZZ_TIMEOUT (seconds one input may take, default 10), QEXP_FUZZ_RSS_MB (default
# 4096), QEXP_FUZZ_OUT (where the work corpus, logs and findings go; default build-fuzz/fuzz-out).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all_targets=(safetensors_fuzz model_config_fuzz experiment_config_fuzz tokenizer_fuzz results_fuzz)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: expected a positive number of seconds per target, got '$seconds'" >&2
  exit 2
fi
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " == *" $t "* ]]; then
    echo "fuzz.sh: unknown target '$t' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

build=${QEXP_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${QEXP_FUZZ_JOBS:-$(nproc)}
timeout_s=${QEXP_FUZZ_TIMEOUT:-10}
rss_mb=${QEXP_FUZZ_RSS_MB:-4096}
out=${QEXP_FUZZ_OUT:-$build/fuzz-out}

start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQEXP_BUILD_FUZZERS=ON -DQEXP_BUILD_TESTS=OFF -DQEXP_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
echo "fuzz.sh: built in $(( $(date +%s) - start )) s"

rm -rf "$out"
mkdir -p "$out"
failed=()
for t in "${targets[@]}"; do
  corpus="$out/$t/corpus"
  findings="$out/$t/findings"
  tmp="$out/$t/tmp"
  mkdir -p "$corpus" "$findings" "$tmp"
  cp -r "tests/fuzz/corpus/$t/." "$corpus/"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  log="$out/$t/fuzz.log"
  echo "fuzz.sh: $t for ${seconds} s ($(ls "$corpus" | wc -l) seeds)"
  rc=0
  # detect_leaks: a leak is a finding too. The scratch files of the target go under its tmp/.
  TMPDIR="$tmp" ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$build/fuzz/$t" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout="$timeout_s" \
    -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -print_final_stats=1 \
    -artifact_prefix="$findings/" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crash=$(ls "$findings" 2>/dev/null | head -1)
  printf 'fuzz.sh: %-24s executions %s, %s exec/s, cov: %s, ft: %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}"
  if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
    echo "fuzz.sh: FINDING in $t (exit $rc): ${crash:+$findings/$crash}; log: $log" >&2
    grep -E 'ERROR: |SUMMARY: |runtime error|qexp fuzz:|terminate called|==[0-9]+==' "$log" | head -20 >&2 || true
    failed+=("$t")
  fi
done
echo "fuzz.sh: finished in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in: ${failed[*]} (reproduce: $build/fuzz/TARGET FILE)" >&2
  exit 1
fi
