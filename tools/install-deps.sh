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
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
