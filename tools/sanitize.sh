#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of qexp (preset `sanitize`: build-sanitize/,
# -O1 -g1, QEXP_SANITIZE=ON) and the whole ctest suite under it. Exits non-zero on a failed test or
# on any sanitizer report, from a test binary or from any qexp process a test starts (the CLI, the
# plugins it loads). Prints how long the build and the test run took. Slower job of CI.
#   tools/sanitize.sh [CTEST_ARG]...        e.g. tools/sanitize.sh -R int8_gemm
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build-sanitize
supp=$src/tests/sanitizer
reports=$build/sanitizer-reports

# Every report also goes to a file of its own (log_path: one per process), which this script
# counts at the end: a report in a qexp process that a test expects to fail (exit 1, 3, 5) would
# otherwise hide behind that expected exit code, and stderr is kept clean for the tests that read
# it. A report still ends its process at once (halt_on_error, -fno-sanitize-recover) with exit 66.
# The same settings hold for the build: gtest discovery runs the test binaries at build time.
# LeakSanitizer is on; tests/sanitizer/lsan.supp names the third-party leaks it tolerates.
# intercept_tls_get_addr=0: with it on, LeakSanitizer's tracer in GCC 12's runtime crashes at exit
# ("Tracer caught signal 11", a fatal error, not a leak) walking the dynamic TLS of dlopen'ed
# libraries; reproducible here in plugin_conformance_test's onednn-int8 s8 cases, depending only on
# memory layout (the length of the gtest filter moves it). Off, dynamic TLS blocks are not scanned
# as roots: that can add a false leak report, never hide a leak.
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66:abort_on_error=0:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:intercept_tls_get_addr=0:log_path=$reports/asan:log_exe_name=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=66:log_path=$reports/ubsan:log_exe_name=1:suppressions=$supp/ubsan.supp"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"

start=$(date +%s)
nice_cmd=()
[[ ${QEXP_SANITIZE_NICE:-1} == 0 ]] || nice_cmd=(nice -n 5)
"${nice_cmd[@]}" cmake --preset sanitize
"${nice_cmd[@]}" cmake --build --preset sanitize -j "$(nproc)"
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"

# No test is excluded. The programs tests start that are not qexp's (/usr/bin/python3 with
# Debian's torch in seed_baseline, the Slurm daemons of slurm_e2e, headless Chromium) are not
# instrumented and load nothing of qexp, so they need no LD_PRELOAD of the runtime and ignore the
# *SAN_OPTIONS they inherit; the qexp processes they start (e2e_bench, qexp in Slurm jobs) are
# checked like the rest. No test asserts a speed that ASan's slowdown could break.
rc=0
"${nice_cmd[@]}" ctest --preset sanitize "$@" || rc=$?
tested=$(date +%s)
echo "sanitize: test run took $((tested - built)) s (build $((built - start)) s, total $((tested - start)) s)"

shopt -s nullglob
found=("$reports"/*)
if ((${#found[@]})); then
  echo "sanitize: ${#found[@]} sanitizer report(s) in $reports:" >&2
  for f in "${found[@]}"; do
    echo "----- $f" >&2
    cat "$f" >&2
  done
  rc=1
fi
((rc == 0)) && echo "sanitize: clean (no sanitizer report, every test passed)"
exit "$rc"
