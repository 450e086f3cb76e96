#!/usr/bin/env bash
# ONNX Runtime as a peer benchmark, one command: the full-size seed-0 random DistilBERT exported to
# fp32 ONNX (export_onnx.py), quantized the way onnxruntime.quantization.quantize_dynamic does it,
# per tensor and per channel (quantize_onnx.py, checked against PyTorch and node by node), timed
# with onnxruntime-node (ort_bench.js) on the first 200 SST-2 dev sentences' token ids from
# `qexp tokenize --json`: batch 1 and padded batches of 32, at 1 and 2 threads; qexp's e2e_bench
# on the same model and ids in the same time window (ORT, then qexp at 1 thread; qexp, then ORT at
# 2). At 1 thread one process per engine alternates its variants per input; at 2 threads every
# variant runs in a process of its own (as run-benchmarks.sh does). Prints a table and writes it
# to WORK/ort-table.md (and WORK/ort-summary.json).
#
#   tools/bench/ort/run-ort.sh [--build DIR] [--work DIR] [--model DIR] [--ids FILE]
#       [--sentences 200] [--batch 32] [--warmup 10] [--threads "1 2"] [--no-qexp]
#       [--qexp-config SPEC]... [--rounds 1] [--short]
#
# --model/--ids: reuse a model folder and token ids (run-benchmarks.sh passes its own); default:
# WORK/distilbert-base-random from `qexp init-model --seed 0` and the first --sentences dev
# sentences. --short: the tiny preset, 6 sentences, batches of 4 (checks the pipeline, not the
# numbers). Default qexp configurations: fp32, onednn-int8:granularity=per_channel,
# static-int8:activations=dynamic (qexp's own INT8 kernel with per-call ranges, the scheme ORT's
# quantize_dynamic uses), static-int8 (static activations); 128 tokenized SST-2 train sentences
# are the calibration data of the schemes that calibrate. --rounds N: the whole timing N times, the
# engines' order swapped every round (this machine's memory bandwidth is shared with other tenants
# and drifts over minutes: one engine's window can be slower than the other's); medians are over
# sentences and rounds, and each round's own ratios are printed too. Before the timing,
# tools/bench/vnni_peak.cpp (built here with g++) measures this CPU's one-thread VNNI and FMA peaks
# and read bandwidth, and the table states the Linear compute floor of a sentence they imply.
# Needs: node with onnxruntime-node (tools/bench/ort/node_modules or NODE_PATH; see
# tools/install-deps.sh), /usr/bin/python3 with python3-torch and python3-onnx, DIR/bin/qexp and
# DIR/bin/e2e_bench. Exits 77 (skip) when node, onnxruntime-node or python3-onnx is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=${QEXP_BUILD_DIR:-$root/build}
work="" model="" ids="" sentences=200 batch=32 warmup=10 threads_list="1 2" with_qexp=1 short=0 rounds=1
qexp_configs=()
while (($#)); do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift ;;
    --work) work=$2; shift ;;
    --model) model=$2; shift ;;
    --ids) ids=$2; shift ;;
    --sentences) sentences=$2; shift ;;
    --batch) batch=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --threads) threads_list=$2; shift ;;
    --no-qexp) with_qexp=0 ;;
    --rounds) rounds=$2; shift ;;
    --qexp-config) qexp_configs+=("$2"); shift ;;
    --short) short=1 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "run-ort.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run-ort.sh: --rounds expects a whole number of at least 1, got '$rounds'" >&2; exit 2; }
python=/usr/bin/python3
command -v node > /dev/null || { echo "run-ort.sh: skipped: node is not installed (tools/install-deps.sh)"; exit 77; }
(cd "$here" && NODE_PATH=${NODE_PATH:-} node -e "require('onnxruntime-node')" > /dev/null 2>&1) ||
  { echo "run-ort.sh: skipped: onnxruntime-node is not installed (tools/install-deps.sh puts it in tools/bench/ort/node_modules)"; exit 77; }
"$python" -c "import onnx, torch" 2> /dev/null ||
  { echo "run-ort.sh: skipped: python3-onnx or python3-torch is missing for $python (apt-get install python3-onnx python3-torch)"; exit 77; }
qexp=$build/bin/qexp bench=$build/bin/e2e_bench
[[ -x $qexp ]] || { echo "run-ort.sh: $qexp not built" >&2; exit 1; }
((with_qexp == 0)) || [[ -x $bench ]] || { echo "run-ort.sh: $bench not built (or pass --no-qexp)" >&2; exit 1; }

preset=distilbert-base
if ((short)); then
  preset=distilbert-tiny sentences=6 batch=4 warmup=1
  work=${work:-$build/ort-bench-short}
else
  work=${work:-$build/ort-bench}
fi
((${#qexp_configs[@]})) || qexp_configs=(fp32 onednn-int8:granularity=per_channel static-int8:activations=dynamic static-int8)
shared=${QEXP_SHARED_DIR:-$root/../shared}
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [[ -z $model ]]; then
  model=$work/$preset-random
  [[ -f $model/model.safetensors ]] || "$qexp" init-model --preset "$preset" --seed 0 --out "$model" > /dev/null
fi
if [[ -z $ids ]]; then
  ids=$work/ids.jsonl
  sed -n "2,$((sentences + 1))p" "$shared/data/sst2/dev.tsv" | cut -f1 | "$qexp" tokenize --model "$model" --json > "$ids"
fi
calibration=$work/calibration-ids.jsonl
if ((with_qexp)); then
  sed -n "2,129p" "$shared/data/sst2/train.tsv" | cut -f1 | "$qexp" tokenize --model "$model" --json > "$calibration"
fi
pad_id=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1])).get('pad_token_id', 0))" "$model/config.json")

# 1. fp32 ONNX, 2. the two INT8 graphs, each checked (logits against PyTorch; every rewritten node
# recomputed from ORT's own inputs).
fp32=$work/model-fp32.onnx
if [[ ! -f $fp32 || $model/model.safetensors -nt $fp32 || $here/export_onnx.py -nt $fp32 ]]; then
  "$python" "$here/export_onnx.py" --model "$model" --out "$fp32"
fi
for g in per_tensor per_channel; do
  flag=()
  [[ $g == per_channel ]] && flag=(--per-channel)
  "$python" "$here/quantize_onnx.py" --in "$fp32" --out "$work/model-int8-$g.onnx" "${flag[@]}" \
    --check-model "$model" --check-ids "$ids" --check-sentences 8 --check-out "$work/check-$g.json"
done

# 3. Timing, ORT and qexp in the same window.
models=(--model "fp32=$fp32" --model "int8 per_tensor=$work/model-int8-per_tensor.onnx"
        --model "int8 per_channel=$work/model-int8-per_channel.onnx")
common=(--ids "$ids" --sentences "$sentences" --batch "$batch" --warmup "$warmup")
rm -f "$work"/ort-t*.json "$work"/qexp-t*.json "$work"/peak.txt
run_ort() {
  local t=$1 r=$2 i
  if ((t == 1)); then
    echo "== round $r, $t thread: ORT fp32, int8 per_tensor, int8 per_channel alternated in one process" >&2
    node "$here/ort_bench.js" "${models[@]}" "${common[@]}" --threads "$t" --pad-id "$pad_id" --out "$work/ort-t$t-r$r.json" >&2
  else
    for ((i = 1; i < ${#models[@]}; i += 2)); do
      echo "== round $r, $t threads: ORT ${models[i]%%=*}, alone" >&2
      node "$here/ort_bench.js" --model "${models[i]}" "${common[@]}" --threads "$t" --pad-id "$pad_id" --out "$work/ort-t$t-m$i-r$r.json" >&2
    done
  fi
}
run_qexp() {
  local t=$1 r=$2 i cal=(--calibration-ids "$calibration" --calibration-sentences 128)
  ((with_qexp)) || return 0
  export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t
  if ((t == 1)); then
    echo "== round $r, $t thread: qexp ${qexp_configs[*]} alternated in one process" >&2
    local specs=()
    for i in "${qexp_configs[@]}"; do specs+=(--config "$i"); done
    "$bench" --model "$model" "${common[@]}" --threads "$t" "${specs[@]}" "${cal[@]}" --out "$work/qexp-t$t-r$r.json" >&2
  else
    for i in "${!qexp_configs[@]}"; do
      echo "== round $r, $t threads: qexp ${qexp_configs[i]}, alone" >&2
      "$bench" --model "$model" "${common[@]}" --threads "$t" --config "${qexp_configs[i]}" "${cal[@]}" --out "$work/qexp-t$t-c$i-r$r.json" >&2
    done
  fi
  unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS
}
# This CPU's ceilings, measured in the same window (skipped where g++ or AVX-512 VNNI is missing).
if ((short == 0)) && grep -q avx512_vnni /proc/cpuinfo && command -v g++ > /dev/null &&
   g++ -O2 -mavx512f -mavx512vnni "$root/tools/bench/vnni_peak.cpp" -o "$work/vnni_peak"; then
  "$work/vnni_peak" | tee "$work/peak.txt" >&2
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((r = 1; r <= rounds; r++)); do
  n=$((r - 1))  # who goes first alternates across thread counts and across rounds
  for t in $threads_list; do
    if ((n++ % 2)); then run_qexp "$t" "$r"; run_ort "$t" "$r"; else run_ort "$t" "$r"; run_qexp "$t" "$r"; fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$python" - "$work" "$model" "$threads_list" "$batch" "$started" "$load_before" "$load_after" "$rounds" <<'EOF'
import glob, json, os, re, struct, sys
work, model, threads_list, batch, started, load_before, load_after, rounds = sys.argv[1:]
threads, rounds = [int(t) for t in threads_list.split()], int(rounds)
timings = ("batch1_ms", "batch1_cpu_ms", "batchN_ms", "batchN_sentences")

def merged(pattern):
    """The variants of every file matching (processes and rounds), each variant's timings pooled."""
    report = None
    for p in sorted(glob.glob(pattern)):
        r = json.load(open(p))
        if report is None:
            report = r
            continue
        for name, v in r["variants"].items():
            if name not in report["variants"]:
                report["variants"][name] = v
            else:
                for key in timings:
                    report["variants"][name][key] = report["variants"][name][key] + v[key]
    return report

def med(xs):
    s = sorted(xs)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2

def maxdiff(a, b):
    return max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))

# qexp's size: the float checkpoint minus its fp32 Linears plus what the plugin packs.
header_len = struct.unpack("<Q", open(f"{model}/model.safetensors", "rb").read(8))[0]
header = json.loads(open(f"{model}/model.safetensors", "rb").read(8 + header_len)[8:])
linear = re.compile(r".*(q_lin|k_lin|v_lin|out_lin|lin1|lin2|pre_classifier|classifier)\.(weight|bias)$")
total = sum(e["data_offsets"][1] - e["data_offsets"][0] for k, e in header.items() if k != "__metadata__")
linear_bytes = sum(e["data_offsets"][1] - e["data_offsets"][0] for k, e in header.items() if linear.match(k))

rows, summary = {}, {"started": started, "load_before": load_before, "load_after": load_after, "threads": {}}
ort_fp32_logits = None
for t in threads:
    ort = merged(f"{work}/ort-t{t}-r*.json") or merged(f"{work}/ort-t{t}-m*-r*.json")
    qexp = merged(f"{work}/qexp-t{t}-r*.json") or merged(f"{work}/qexp-t{t}-c*-r*.json")
    summary["threads"][t] = {"ort": ort and {k: {kk: vv for kk, vv in v.items() if kk != "logits"} for k, v in ort["variants"].items()},
                             "qexp": qexp and qexp["variants"]}
    if ort:
        summary["onnxruntime"] = ort["onnxruntime"]["node"]
        summary["mean_tokens"] = ort["mean_tokens"]
        summary["sentences"] = ort["sentences"]
        fp32_logits = ort["variants"]["fp32"]["logits"] if "fp32" in ort["variants"] else None
        if t == threads[0]:
            ort_fp32_logits = fp32_logits
        for name, v in ort["variants"].items():
            r = rows.setdefault(f"ORT {name}", {"size_mb": v["file_mb"]})
            r[t] = {"b1": med(v["batch1_ms"]), "cpu": med(v["batch1_cpu_ms"]),
                    "tput": sum(v["batchN_sentences"]) / (sum(v["batchN_ms"]) / 1e3)}
            if t == threads[0] and ort_fp32_logits:
                r["diff_vs_ort_fp32"] = maxdiff(v["logits"], ort_fp32_logits)
    if qexp:
        summary["qexp_fp32_logits_from"] = qexp.get("fp32_logits_from")
        for name, v in qexp["variants"].items():
            r = rows.setdefault(name, {"size_mb": (total - linear_bytes) / 1e6 + v["packed_mb"]})
            r[t] = {"b1": med(v["batch1_ms"]), "cpu": med(v["batch1_cpu_ms"]),
                    "tput": sum(v["batchN_sentences"]) / (sum(v["batchN_ms"]) / 1e3)}
            r.setdefault("diff_vs_own_fp32", v["logits_max_abs_diff_vs_first"])
        if t == threads[0] and ort_fp32_logits and qexp.get("fp32_logits"):
            summary["qexp_fp32_vs_ort_fp32_logits_max_abs_diff"] = maxdiff(qexp["fp32_logits"], ort_fp32_logits)
for g in ("per_tensor", "per_channel"):
    p = f"{work}/check-{g}.json"
    if os.path.exists(p):
        summary[f"check_{g}"] = json.load(open(p))
        rows.get(f"ORT int8 {g}", {})["check"] = summary[f"check_{g}"]

t1, tn = threads[0], threads[-1]
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
L = [f"Measured {started} on {cpu} ({os.cpu_count()} logical CPUs; load average {load_before} before, {load_after} after), "
     f"onnxruntime-node {summary.get('onnxruntime', '?')}, first {summary.get('sentences', '?')} SST-2 dev sentences "
     f"(mean {summary.get('mean_tokens', 0):.1f} tokens), batch {batch} padded to the longest in the batch.", ""]
head = f"| engine / configuration | batch 1, {t1} thread: median ms | median cpu ms |"
sep = "| --- | ---: | ---: |"
for t in threads:
    head += f" batch {batch}, {t} thread{'s' if t > 1 else ''}: sentences/s |"
    sep += " ---: |"
head += " model MB | max logit diff vs the same engine's fp32 |"
sep += " ---: | ---: |"
L += [head, sep]
for name, r in rows.items():
    line = f"| {name} | " + (f"{r[t1]['b1']:.2f} | {r[t1]['cpu']:.2f} |" if t1 in r else "- | - |")
    for t in threads:
        line += f" {r[t]['tput']:.1f} |" if t in r else " - |"
    d = r.get("diff_vs_ort_fp32", r.get("diff_vs_own_fp32"))
    line += f" {r['size_mb']:.1f} | {d:.2g} |" if d is not None else f" {r['size_mb']:.1f} | - |"
    L.append(line)
L.append("")
# The issue's ratios: qexp's best against ORT's best, INT8 (by median wall time) and fp32.
def best(prefix, int8, t, key):
    names = [n for n in rows if n.startswith(prefix) and (" fp32" not in n) == int8 and t in rows[n]]
    if not names:
        return None, None
    pick = (min if key != "tput" else max)(names, key=lambda n: rows[n][t][key])
    return pick, rows[pick][t][key]
ratios = []
for int8 in (True, False):
    (qn, qv), (on, ov) = best("qexp", int8, t1, "b1"), best("ORT", int8, t1, "b1")
    if qn and on:
        ratios.append(f"batch 1, {t1} thread: {on} / {qn} = {ov / qv:.2f}x")
    (qn, qv), (on, ov) = best("qexp", int8, tn, "tput"), best("ORT", int8, tn, "tput")
    if qn and on:
        ratios.append(f"batch {batch}, {tn} thread{'s' if tn > 1 else ''}: {qn} / {on} = {qv / ov:.2f}x")
if ratios:
    L.append("qexp ahead of ORT by (best of each, > 1: qexp faster): " + "; ".join(ratios) + ".")
    summary["ratios"] = ratios
# Each round's own batch-1 ratios (ORT's best / qexp's best, INT8 and fp32), to show the spread.
if rounds > 1:
    per_round = []
    for r in range(1, rounds + 1):
        o, q = merged(f"{work}/ort-t{t1}-r{r}.json"), merged(f"{work}/qexp-t{t1}-r{r}.json")
        if not (o and q):
            continue
        def fastest(report, int8):
            return min(med(v["batch1_ms"]) for n, v in report["variants"].items() if ("fp32" not in n) == int8)
        per_round.append(f"round {r}: INT8 {fastest(o, True) / fastest(q, True):.2f}x, fp32 {fastest(o, False) / fastest(q, False):.2f}x")
    if per_round:
        L.append(f"Batch 1, {t1} thread, each round alone (ORT / qexp): " + "; ".join(per_round) + ".")
        summary["per_round"] = per_round
# The Linear compute floor of a sentence: its Linear work over this CPU's measured one-thread peak.
peak = open(f"{work}/peak.txt").read() if os.path.exists(f"{work}/peak.txt") else ""
vnni = re.search(r"vpdpbusd zmm peak, 1 thread: (\d+) GOP/s", peak)
fma = re.search(r"vfmadd231ps zmm peak, 1 thread: (\d+) GFLOP/s", peak)
bw = re.search(r"read bandwidth, 1 thread: ([\d.]+) GB/s", peak)
cfg = json.load(open(f"{model}/config.json"))
d, h, layers = cfg.get("dim", 768), cfg.get("hidden_dim", 3072), cfg.get("n_layers", 6)
per_token = 2 * layers * (4 * d * d + 2 * d * h)  # q, k, v, out, lin1, lin2: 2 ops per multiply-add
per_sentence = 2 * (d * d + d * cfg.get("num_labels", len(cfg.get("id2label", {})) or 2))  # pre_classifier, classifier
gop = (per_token * summary.get("mean_tokens", 0) + per_sentence) / 1e9
if vnni and fma and bw and gop:
    vnni, fma, bw = float(vnni.group(1)), float(fma.group(1)), float(bw.group(1))
    int8_floor, fp32_floor = gop / vnni * 1e3, gop / fma * 1e3
    fp32_bytes = 4 * (per_token + per_sentence) / 2  # every weight read once, 4 bytes each
    q_int8, q_fp32 = best("qexp", True, t1, "b1"), best("qexp", False, t1, "b1")
    line = (f"This CPU, one thread, measured just before the timing (tools/bench/vnni_peak.cpp): vpdpbusd {vnni:.0f} GOP/s, "
            f"vfmadd231ps {fma:.0f} GFLOP/s, read {bw:.1f} GB/s. A sentence's Linear work is {gop:.2f} GOP (mean "
            f"{summary['mean_tokens']:.1f} tokens), so its INT8 compute floor is {int8_floor:.2f} ms")
    # What qexp computes: its last block's out_lin, lin1 and lin2 on the [CLS] row alone when those
    # Linears are row-independent (docs/model.md), every other Linear on every token.
    skipped = 2 * (d * d + 2 * d * h) * (summary["mean_tokens"] - 1) / 1e9
    if q_int8[0]:
        line += (f" (qexp's fastest INT8 sentence, {q_int8[0]}: {q_int8[1]:.2f} ms = {q_int8[1] / int8_floor:.2f}x it; "
                 f"qexp computes {gop - skipped:.2f} GOP of it when the last block's Linears are row-independent, "
                 f"whose floor is {(gop - skipped) / vnni * 1e3:.2f} ms: {q_int8[1] / ((gop - skipped) / vnni * 1e3):.2f}x)")
    line += (f" and its fp32 floor {fp32_floor:.2f} ms of FMA, with {fp32_bytes / 1e6:.0f} MB of fp32 Linear weights to read "
             f"({fp32_bytes / bw / 1e6:.2f} ms at that bandwidth, overlappable)")
    if q_fp32[0]:
        line += f" (qexp fp32: {q_fp32[1]:.2f} ms = {q_fp32[1] / fp32_floor:.2f}x the FMA floor)"
    L.append(line + ".")
    summary["floor"] = {"vnni_gops": vnni, "fma_gflops": fma, "read_gbs": bw, "linear_gop": gop,
                        "linear_gop_computed_cls_only": gop - skipped,
                        "int8_floor_ms": int8_floor, "fp32_floor_ms": fp32_floor}
if "qexp_fp32_vs_ort_fp32_logits_max_abs_diff" in summary:
    L.append(f"qexp fp32 ({summary.get('qexp_fp32_logits_from')}) vs ORT fp32 logits: max |diff| = "
             f"{summary['qexp_fp32_vs_ort_fp32_logits_max_abs_diff']:.2g}.")
for g in ("per_tensor", "per_channel"):
    c = summary.get(f"check_{g}")
    if c:
        L.append(f"ORT int8 {g} check ({c['sentences']} sentences): vs PyTorch fp32 {c['ort_int8_vs_torch_fp32']:.2g}, "
                 f"ORT fp32 vs PyTorch fp32 {c['ort_fp32_vs_torch_fp32']:.2g}; per node: "
                 f"{c['per_node']['accumulators_differing']} of the int32 accumulators of {c['per_node']['matmuls']} MatMulIntegers differ.")
summary["rows"] = rows
json.dump(summary, open(f"{work}/ort-summary.json", "w"), indent=1)
open(f"{work}/ort-table.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
