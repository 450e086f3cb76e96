#!/usr/bin/env bash
# Builds qexp (Release) and runs the whole test suite. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release
cmake --build --preset release -j "$(nproc)"
ctest --preset release
