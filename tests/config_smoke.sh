#!/usr/bin/env bash
# Smoke-runs one shipped config: it must validate, and its resolved form must print and parse back.
set -euo pipefail
qexp=$1 config=$2 out=$3
"$qexp" validate "$config"
"$qexp" run "$config" --dry-run > /dev/null
