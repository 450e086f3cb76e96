#!/usr/bin/env bash
# Installs every Debian package qexp needs to build, test and benchmark. Idempotent: packages
# already present are skipped, so CI can call it on every run.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libdnnl-dev libyaml-cpp-dev libboost-dev libboost-filesystem-dev
  libgtest-dev libgmock-dev libbenchmark-dev libspdlog-dev libfmt-dev libcli11-dev
  nlohmann-json3-dev libutf8proc-dev
  # The default reference BLAS is ~1.5 GFLOP/s; fp32 baselines must use OpenBLAS.
  libopenblas0-pthread libopenblas-dev
  # Reference pipeline (tools/seed_baseline.py) and the report's browser test.
  python3-torch chromium
  # A single-node Slurm cluster for the sweep end-to-end test (tools/slurm/local-cluster.sh).
  slurmctld slurmd slurm-client munge
  # libFuzzer targets (tools/fuzz.sh) and the sanitizer runtime.
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  # Package scripts must not start daemons (munge, slurm): the tests start their own, by hand.
  # A policy-rc.d that exits 101 forbids it; an existing one is put back afterwards.
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [[ -e $policy ]] && ! grep -qx 'exit 101' "$policy"; then
    saved=$policy.qexp-saved
    $sudo_cmd mv "$policy" "$saved"
  fi
  created=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Written by qexp tools/install-deps.sh while installing packages.\nexit 101\n' |
      $sudo_cmd tee "$policy" > /dev/null
    $sudo_cmd chmod 755 "$policy"
    created=1
  fi
  restore_policy() {
    if [[ -n $created ]]; then $sudo_cmd rm -f "$policy"; fi
    if [[ -n $saved ]]; then $sudo_cmd mv "$saved" "$policy"; fi
  }
  trap restore_policy EXIT
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi

# Optional: ONNX Runtime as a peer benchmark (tools/bench/ort/run-ort.sh): python3-onnx from apt and
# onnxruntime-node from npm into tools/bench/ort/node_modules (git-ignored; its tarball carries the
# CPU library, so ONNXRUNTIME_NODE_INSTALL=skip downloads nothing else). Idempotent, and a failure
# here (no npm, registry unreachable) only warns: without them run-ort.sh exits 77 and
# run-benchmarks.sh skips that step.
install_ort_peer() {
  local sudo_cmd="" ort_dir
  [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  if ! dpkg-query -W -f='${Status}' python3-onnx 2>/dev/null | grep -q "install ok installed"; then
    echo "install-deps: installing python3-onnx (optional, ONNX Runtime peer benchmark)"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get install -y -qq --no-install-recommends python3-onnx ||
      { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq --no-install-recommends python3-onnx; } ||
      echo "install-deps: warning: python3-onnx not installed; the ONNX Runtime peer benchmark will be skipped"
  fi
  ort_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench/ort
  if (cd "$ort_dir" && node -e "require('onnxruntime-node')" > /dev/null 2>&1); then
    echo "install-deps: onnxruntime-node present"
  elif command -v npm > /dev/null; then
    echo "install-deps: installing onnxruntime-node into $ort_dir/node_modules (optional)"
    (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip timeout 300 npm install --no-save --no-package-lock \
      --no-audit --no-fund onnxruntime-node > /dev/null) ||
      echo "install-deps: warning: npm install onnxruntime-node failed; the ONNX Runtime peer benchmark will be skipped"
  else
    echo "install-deps: warning: no npm (apt-get install nodejs npm); the ONNX Runtime peer benchmark will be skipped"
  fi
  return 0
}
install_ort_peer || true
