#!/usr/bin/env bash
# End to end on a real (single-node) Slurm cluster: starts munged, slurmctld and slurmd with
# tools/slurm/local-cluster.sh, submits the 4-point example sweep as a job array with --wait,
# checks every point, collects it, runs configs/autotune.yaml with its trials as array tasks, and
# stops every daemon it started, by pid, even on failure.
#
#   tests/slurm_e2e_test.sh QEXP_BIN SOURCE_DIR WORK_DIR
# Exits 77 (ctest: skipped) when not root or the slurm packages are missing.
set -euo pipefail
qexp=$1 src=$2 work=$3
started=$(date +%s.%N)

if [[ $(id -u) -ne 0 ]]; then echo "slurm_e2e: needs root (slurmd runs jobs as their users); skipped"; exit 77; fi
for bin in slurmctld slurmd sbatch squeue munged; do
  command -v "$bin" > /dev/null || { echo "slurm_e2e: $bin missing (tools/install-deps.sh installs it); skipped"; exit 77; }
done

rm -rf "$work"
mkdir -p "$work"
export QEXP_SLURM_STATE=$work/slurm-state
export SLURM_CONF=$QEXP_SLURM_STATE/slurm.conf
# Ports from the work folder, so that build folders testing side by side get separate clusters.
export QEXP_SLURM_PORT=${QEXP_SLURM_PORT:-$((20000 + $(printf %s "$work" | cksum | cut -d' ' -f1) % 10000 * 2))}
cluster=$src/tools/slurm/local-cluster.sh

cleanup() {
  local rc=$?
  # local-cluster.sh stop kills the pids recorded in $QEXP_SLURM_STATE/pids and waits on /proc.
  bash "$cluster" stop || rc=1
  for f in "$QEXP_SLURM_STATE"/pids/*; do
    [[ -e $f ]] || continue
    echo "slurm_e2e: $(basename "$f") (pid $(cat "$f")) still recorded after stop" >&2
    rc=1
  done
  if ((rc != 0)); then
    echo "slurm_e2e: FAILED; daemon logs:" >&2
    tail -n 30 "$QEXP_SLURM_STATE"/log/*.log >&2 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$cluster" start

config=$src/configs/sweep_int8_granularity.yaml
# Few sentences and iterations: this checks the cluster path, not the numbers.
fast=(--set sweep.slurm.cpus_per_task=1 --set data.limit=16 --set measure.latency.warmup=1 --set measure.latency.iterations=3
      --set measure.latency.dataset_sentences=4 --set measure.layer_error.batches=1)
sweep=("$qexp" sweep "$config" --out "$work/runs" "${fast[@]}")

"${sweep[@]}" --list
submit_started=$(date +%s.%N)
"${sweep[@]}" --executor slurm --wait | tee "$work/sweep.out"
submit_done=$(date +%s.%N)
grep -q "submitted Slurm job [0-9]" "$work/sweep.out" || { echo "slurm_e2e: no job id reported" >&2; exit 1; }
grep -q "4 points: 4 done, 0 running, 0 pending, 0 failed, 0 not run" "$work/sweep.out" ||
  { echo "slurm_e2e: not every point is done" >&2; exit 1; }

dir=$work/runs/int8_granularity
for point in "$dir"/*/; do
  [[ -f $point/point.yaml ]] || continue
  [[ $(cat "$point/exit_code") == 0 ]] || { echo "slurm_e2e: $point exit code $(cat "$point/exit_code")" >&2; exit 1; }
  grep -q '"complete": true' "$point/results.json" || { echo "slurm_e2e: $point results incomplete" >&2; exit 1; }
done
# Each point ran as an array task: its Slurm output names the node it ran on.
[[ $(ls "$dir"/slurm-*_*.out | wc -l) -eq 4 ]] || { echo "slurm_e2e: expected 4 array task outputs" >&2; exit 1; }

# Status agrees, and a second submission has nothing to run.
"${sweep[@]}" --status | tee "$work/status.out"
grep -q "4 points: 4 done" "$work/status.out"
"${sweep[@]}" --executor slurm | tee "$work/again.out"
grep -q "nothing to run" "$work/again.out"

# Without --wait: sbatch returns at once and --status reads squeue and the point folders.
nowait=("${sweep[@]}" --set sweep.name=int8_nowait --set data.limit=8)
"${nowait[@]}" --executor slurm | tee "$work/nowait.out"
grep -q "follow it with: qexp sweep" "$work/nowait.out"
"${nowait[@]}" --status | tee "$work/nowait-status.out"
# Just submitted: every point is pending, running or done, none "not run" (squeue knows the tasks).
grep -q "4 points: .* 0 failed, 0 not run" "$work/nowait-status.out" ||
  { echo "slurm_e2e: --status right after submission does not see the queued points" >&2; exit 1; }
for _ in $(seq 240); do
  "${nowait[@]}" --status > "$work/nowait-status.out" || true
  grep -q "4 points: 4 done" "$work/nowait-status.out" && break
  sleep 0.5
done
grep -q "4 points: 4 done" "$work/nowait-status.out" || { cat "$work/nowait-status.out"; exit 1; }

"$qexp" collect "$dir" | tee "$work/collect.out"
[[ $(grep -c ',done,0,' "$dir/points.csv") -eq 4 ]] || { echo "slurm_e2e: points.csv lacks 4 done points" >&2; exit 1; }
# Four points, each the fp32 baseline and one INT8 result: 8 rows under the header.
[[ $(($(wc -l < "$dir/results.csv") - 1)) -eq 8 ]] || { echo "slurm_e2e: expected 8 rows in results.csv" >&2; exit 1; }
[[ -s $dir/report.html && -s $dir/summary.md ]]

# Autotune with its trials on the cluster: each trial and per-site measurement one array task.
tune=$work/autotune
rm -rf "$tune"
rc=0
"$qexp" run "$src/configs/autotune.yaml" --results-dir "$tune" --set data.limit=32 --set calibration.sentences=16 \
  --set autotune.tuning.sentences=16 --set autotune.max_trials=3 --set autotune.threads=1 \
  --set autotune.executor=slurm --set final.enabled=false > "$work/autotune.out" 2>&1 || rc=$?
# 1: no recipe met the constraint in 3 trials, which is allowed here; anything else is not.
[[ $rc == 0 || $rc == 1 ]] || { cat "$work/autotune.out" >&2; echo "slurm_e2e: autotune exit $rc" >&2; exit 1; }
tasks=$(ls "$tune"/trials/slurm-*_*.out 2>/dev/null | wc -l)
points=$(ls "$tune"/trials/*/results.json 2>/dev/null | wc -l)
trials=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["autotune"]["trials"]))' "$tune/results.json")
(( tasks >= points && points >= trials && trials >= 1 )) ||
  { cat "$work/autotune.out" >&2; echo "slurm_e2e: autotune: $tasks array tasks, $points points, $trials trials" >&2; exit 1; }

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
echo "slurm_e2e: passed; sweep submit+wait $(seconds "$submit_done" "$submit_started") s," \
     "test so far $(seconds "$(date +%s.%N)" "$started") s (cluster start included, stop follows)"
