#!/usr/bin/env bash
# Downloads the real assets qexp experiments use, on a machine with network access, and checks
# every file against a pinned sha256:
#   DEST/distilbert-base-uncased-finetuned-sst-2-english/  config.json model.safetensors
#                                                          vocab.txt tokenizer_config.json
#   DEST/sst2/                                             dev.tsv train.tsv (GLUE SST-2)
#
# Usage: tools/fetch-assets.sh [DEST]      (DEST defaults to ./assets)
# Environment: QEXP_HF_REVISION (hub revision, default the pinned commit below),
#              QEXP_CONNECT_TIMEOUT (seconds, default 10).
# Files already present with the right hash are kept. No test needs this script; without network
# it stops within a few seconds and says so.
set -euo pipefail

dest="${1:-./assets}"
model_id="distilbert-base-uncased-finetuned-sst-2-english"
revision="${QEXP_HF_REVISION:-714eb0fa89d2f80546fda750413ed43d93601a13}"
hub="https://huggingface.co/${model_id}/resolve/${revision}"
glue_zip="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
connect_timeout="${QEXP_CONNECT_TIMEOUT:-10}"

# sha256 pins: model.safetensors from the hub's LFS pointer at that revision; config.json and
# vocab.txt as in ../shared/data/README.md; SST-2 as the official GLUE files (GLUE's Git-LFS
# pointers). tokenizer_config.json has no published pin: it is checked to be JSON with
# do_lower_case true instead.
declare -A sha256=(
  [model.safetensors]=7c3919835e442510166d267fe7cbe847e0c51cd26d9ba07b89a57b952b49b8aa
  [config.json]=582122c8f414793d131e10022ce9ba04e3811a9da6389137ee2f18665b4f4d15
  [vocab.txt]=07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
  [dev.tsv]=54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0
  [train.tsv]=48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1
)

die() { echo "fetch-assets: $*" >&2; exit 1; }

for tool in curl sha256sum unzip; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done

hash_ok() {  # file expected_sha256
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

# Fail fast without network: one short probe per host before any large download.
probe() {
  curl -sSfI --connect-timeout "$connect_timeout" --max-time $((connect_timeout * 2)) "$1" -o /dev/null 2>/dev/null ||
    die "cannot reach $(echo "$1" | cut -d/ -f1-3) within ${connect_timeout}s (no network access?). Run this on a connected machine and copy '$dest' here."
}

download() {  # url output
  local tmp="$2.part"
  curl -sSfL --connect-timeout "$connect_timeout" --retry 2 -o "$tmp" "$1" ||
    { rm -f "$tmp"; die "download failed: $1"; }
  mv "$tmp" "$2"
}

check() {  # file name
  local actual
  actual="$(sha256sum "$1" | cut -d' ' -f1)"
  [[ "$actual" == "${sha256[$2]}" ]] ||
    die "$1: sha256 $actual, expected ${sha256[$2]} (corrupt download or a different revision)"
  echo "ok  $1"
}

model_dir="$dest/$model_id"
mkdir -p "$model_dir" "$dest/sst2"

need_model=0
for f in config.json model.safetensors vocab.txt; do
  hash_ok "$model_dir/$f" "${sha256[$f]}" || need_model=1
done
[[ -f "$model_dir/tokenizer_config.json" ]] || need_model=1
need_glue=0
for f in dev.tsv train.tsv; do hash_ok "$dest/sst2/$f" "${sha256[$f]}" || need_glue=1; done

if (( need_model )); then
  probe "$hub/config.json"
  for f in config.json vocab.txt tokenizer_config.json model.safetensors; do
    if [[ -n "${sha256[$f]:-}" ]] && hash_ok "$model_dir/$f" "${sha256[$f]}"; then
      echo "ok  $model_dir/$f (already present)"; continue
    fi
    echo "get $hub/$f"
    download "$hub/$f" "$model_dir/$f"
    if [[ -n "${sha256[$f]:-}" ]]; then check "$model_dir/$f" "$f"; fi
  done
  grep -q '"do_lower_case": *true' "$model_dir/tokenizer_config.json" ||
    die "$model_dir/tokenizer_config.json: expected \"do_lower_case\": true"
  echo "ok  $model_dir/tokenizer_config.json (do_lower_case true)"
else
  echo "ok  $model_dir (already complete)"
fi

if (( need_glue )); then
  probe "$glue_zip"
  tmp_dir="$(mktemp -d)"
  trap 'rm -rf "$tmp_dir"' EXIT
  echo "get $glue_zip"
  download "$glue_zip" "$tmp_dir/SST-2.zip"
  unzip -q -o "$tmp_dir/SST-2.zip" -d "$tmp_dir" || die "$glue_zip: not a valid zip archive"
  for f in dev.tsv train.tsv; do
    [[ -f "$tmp_dir/SST-2/$f" ]] || die "$glue_zip: SST-2/$f missing from the archive"
    check "$tmp_dir/SST-2/$f" "$f"
    mv "$tmp_dir/SST-2/$f" "$dest/sst2/$f"
  done
else
  echo "ok  $dest/sst2 (already complete)"
fi

echo "assets ready in $dest (model folder: $model_dir; point QEXP_DATA_PATH at $dest for SST-2)"
