#!/usr/bin/python3
"""Dynamic INT8 quantization of an fp32 ONNX graph, written to emit the graph that ONNX Runtime's
`onnxruntime.quantization.quantize_dynamic` emits (QuantFormat QOperator / IntegerOps mode), with
python3-onnx and numpy only (no onnxruntime Python package: there is no PyPI here).

Rewrites, as ORT's quantizer does:
- every MatMul whose B input is a constant 2-D float initializer (MatMulConstBOnly, ORT's default
  for dynamic quantization; the attention's activation-by-activation MatMuls stay fp32):
      DynamicQuantizeLinear(A) -> A_q (uint8), A_scale, A_zero_point   (one per activation tensor:
                                                                         q, k and v share theirs)
      MatMulInteger(A_q, B_q, A_zero_point, B_zero_point) -> int32
      Cast(to float) ; Mul(A_scale, B_scale) ; Mul(cast, scales) -> the MatMul's original output
  B is int8 symmetric (zero point 0, scale = max|w| / 127, values in [-127, 127]), per tensor by
  default or, with --per-channel, one scale per output column (ORT's per_channel=True, axis -1 of
  B [K, N]). The bias Add that follows stays apart, in fp32 (ORT fuses it when it optimizes).
- every Gather whose data is a float initializer (the word and position embeddings): the table
  becomes uint8, asymmetric per tensor (scale = (max(0, max) - min(0, min)) / 255, zero point
  round(-min / scale)), the Gather gathers uint8 rows and a DequantizeLinear turns them back to
  float (ORT quantizes Gather data and dequantizes the output for its float consumers).
- Gemm is not in ORT's IntegerOps registry, so the classifier head (pre_classifier, classifier:
  Gemm in the exported graph) stays fp32, as with quantize_dynamic.

At run time ORT's graph optimizer fuses DynamicQuantizeLinear + MatMulInteger + Cast + Mul (+ the
bias Add) into DynamicQuantizeMatMul / MatMulIntegerToFloat, as it does for its own quantizer's
output.

  /usr/bin/python3 tools/bench/ort/quantize_onnx.py --in model-fp32.onnx --out model-int8.onnx \
      [--per-channel] [--check-model DIR --check-ids ids.jsonl [--check-sentences 8]]

--check-model/--check-ids: runs the fp32 and the quantized graph through onnxruntime-node
(tools/bench/ort/ort_bench.js) on the first sentences of the ids file and prints their logits'
max |difference| against each other, against PyTorch fp32 (tools/seed_baseline.py's model on the
model folder the graph was exported from); then recomputes every rewritten node in numpy from the
inputs ORT gave it (int32 accumulators must be equal) and fails if any differs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def quantize_weight_int8(w, per_channel):
    """Symmetric int8 (ORT's QInt8 weights: qmin -127, qmax 127, zero point 0). w is B [K, N];
    per channel means one scale per column N (axis -1)."""
    absmax = np.abs(w).max(axis=0) if per_channel else np.array(np.abs(w).max())
    absmax = absmax.astype(np.float32)
    scale = (2 * absmax / 254.0).astype(np.float32)  # (rmax - rmin) / (qmax - qmin)
    scale = np.where(scale == 0, np.float32(1.0), scale).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    zero = np.zeros(scale.shape, dtype=np.int8)
    return q, scale, zero


def quantize_table_uint8(t):
    """Asymmetric uint8 per tensor, the range widened to contain 0 (ORT's compute_scale_zp)."""
    rmin, rmax = min(float(t.min()), 0.0), max(float(t.max()), 0.0)
    scale = np.float32((rmax - rmin) / 255.0) if rmax > rmin else np.float32(1.0)
    zero = np.uint8(np.clip(np.rint(0 - rmin / scale), 0, 255))
    q = np.clip(np.rint(t / scale) + zero, 0, 255).astype(np.uint8)
    return q, np.array(scale, dtype=np.float32), np.array(zero, dtype=np.uint8)


def quantize(model, per_channel):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for x in n.input:
            consumers[x] = consumers.get(x, 0) + 1
    new_inits = []
    quantized_weights = {}  # fp32 initializer name -> (q name, scale name, zero point name)
    dql = {}  # activation name -> (q, scale, zero point) outputs of its DynamicQuantizeLinear
    nodes = []
    stats = {"MatMul": 0, "Gather": 0}

    def add_init(array, name):
        new_inits.append(numpy_helper.from_array(array, name))
        return name

    for n in g.node:
        if (n.op_type == "MatMul" and n.input[1] in inits and inits[n.input[1]].data_type == TensorProto.FLOAT
                and len(inits[n.input[1]].dims) == 2):
            a, b = n.input
            if b not in quantized_weights:
                q, scale, zero = quantize_weight_int8(numpy_helper.to_array(inits[b]), per_channel)
                quantized_weights[b] = (add_init(q, b + "_quantized"), add_init(scale, b + "_scale"),
                                        add_init(zero, b + "_zero_point"))
            bq, bs, bz = quantized_weights[b]
            if a not in dql:
                dql[a] = (a + "_quantized", a + "_scale", a + "_zero_point")
                nodes.append(helper.make_node("DynamicQuantizeLinear", [a], list(dql[a]), a + "_QuantizeLinear"))
            aq, as_, az = dql[a]
            base = n.name or n.output[0]
            mmi = n.output[0] + "_output_quantized"
            nodes.append(helper.make_node("MatMulInteger", [aq, bq, az, bz], [mmi], base + "_quant"))
            nodes.append(helper.make_node("Cast", [mmi], [mmi + "_cast_output"], mmi + "_cast", to=TensorProto.FLOAT))
            nodes.append(helper.make_node("Mul", [as_, bs], [base + "_quant_scales_mul:0"], base + "_quant_scales_mul"))
            nodes.append(helper.make_node("Mul", [mmi + "_cast_output", base + "_quant_scales_mul:0"], [n.output[0]],
                                          base + "_quant_output_scale_mul"))
            stats["MatMul"] += 1
        elif n.op_type == "Gather" and n.input[0] in inits and inits[n.input[0]].data_type == TensorProto.FLOAT:
            t = n.input[0]
            if t not in quantized_weights:
                q, scale, zero = quantize_table_uint8(numpy_helper.to_array(inits[t]))
                quantized_weights[t] = (add_init(q, t + "_quantized"), add_init(scale, t + "_scale"),
                                        add_init(zero, t + "_zero_point"))
            tq, ts, tz = quantized_weights[t]
            out_q = n.output[0] + "_quantized"
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            nodes.append(helper.make_node("Gather", [tq, n.input[1]], [out_q], n.name, **attrs))
            nodes.append(helper.make_node("DequantizeLinear", [out_q, ts, tz], [n.output[0]],
                                          n.output[0] + "_DequantizeLinear"))
            stats["Gather"] += 1
        else:
            nodes.append(n)

    used = {x for n in nodes for x in n.input}
    kept = [i for i in g.initializer if i.name in used and i.name not in quantized_weights]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept + [i for i in new_inits if i.name in used])
    return stats


def exactness(int8_model_path, ids_path, sentences, tmp):
    """Every rewritten node recomputed in numpy from the input ORT itself gave it, against ORT's
    output (graph optimizations disabled, so ORT runs the ops as written): for each MatMul, the
    DynamicQuantizeLinear scale and zero point, the MatMulInteger int32 accumulators (must be
    equal) and the scaled float output; for each Gather, the dequantized rows. Exact arithmetic
    is compared per node, because end to end dynamic quantization is chaotic: a 1e-6 change of an
    activation can move a quantization grid and the logits by a few 1e-3."""
    model = onnx.load(int8_model_path)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    mmi = [n for n in g.node if n.op_type == "MatMulInteger"]
    gathers = [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits and inits[n.input[0]].dtype == np.uint8]
    producers = {o: n for n in g.node for o in n.output}
    extra = set()
    for n in mmi:
        dql = producers[n.input[0]]
        extra.update([dql.input[0], n.output[0]])
        final = [m for m in g.node if m.op_type == "Mul" and m.input and m.input[0] == n.output[0] + "_cast_output"][0]
        extra.add(final.output[0])
    for n in gathers:
        extra.add([m for m in g.node if m.op_type == "DequantizeLinear" and m.input[0] == n.output[0]][0].output[0])
    for name in sorted(extra):
        g.output.append(helper.make_empty_tensor_value_info(name))
    debug_path = os.path.join(tmp, "debug.onnx")
    onnx.save(model, debug_path)
    out = os.path.join(tmp, "debug.json")
    subprocess.run(["node", os.path.join(HERE, "ort_run.js"), "--model", debug_path, "--ids", ids_path,
                    "--sentences", str(sentences), "--out", out, "--graph-optimization", "disabled"], check=True)
    with open(out) as f:
        runs = json.load(f)
    rows = [json.loads(line)["input_ids"] for line in open(ids_path) if line.strip()][:sentences]
    acc_mismatch, out_rel, emb_rel = 0, 0.0, 0.0
    for run, ids in zip(runs, rows):
        for n in mmi:
            dql = producers[n.input[0]]
            x = np.asarray(run[dql.input[0]], dtype=np.float32)
            lo, hi = np.float32(min(float(x.min()), 0.0)), np.float32(max(float(x.max()), 0.0))
            scale = np.float32((hi - lo) / np.float32(255)) if hi > lo else np.float32(1.0)
            zp = np.float32(np.clip(np.rint(np.float32(0) - lo / scale), 0, 255))
            xq = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.int64) - int(zp)
            w = inits[n.input[1]].astype(np.int64)
            acc = xq.reshape(-1, w.shape[0]) @ w
            theirs = np.asarray(run[n.output[0]], dtype=np.int64).reshape(acc.shape)
            acc_mismatch += int((acc != theirs).sum())
            final = [m for m in g.node if m.op_type == "Mul" and m.input and m.input[0] == n.output[0] + "_cast_output"][0]
            scales_mul = producers[final.input[1]]
            ws = inits[scales_mul.input[1]]
            y = acc.astype(np.float32) * (scale * ws)
            their_y = np.asarray(run[final.output[0]], dtype=np.float32).reshape(y.shape)
            out_rel = max(out_rel, float(np.abs(y - their_y).max() / max(np.abs(y).max(), 1e-30)))
        for n in gathers:
            deq = [m for m in g.node if m.op_type == "DequantizeLinear" and m.input[0] == n.output[0]][0]
            table, scale, zero = inits[n.input[0]], inits[deq.input[1]], inits[deq.input[2]]
            idx = ids if "word" in n.input[0] else list(range(len(ids)))
            ref = (table[idx].astype(np.float32) - np.float32(zero)) * scale
            theirs = np.asarray(run[deq.output[0]], dtype=np.float32).reshape(ref.shape)
            emb_rel = max(emb_rel, float(np.abs(ref - theirs).max() / max(np.abs(ref).max(), 1e-30)))
    return {"matmuls": len(mmi), "gathers": len(gathers), "accumulators_differing": acc_mismatch,
            "matmul_output_max_rel_diff": out_rel, "embedding_max_rel_diff": emb_rel}


def run_node(models, ids, sentences, out):
    cmd = ["node", os.path.join(HERE, "ort_bench.js"), "--ids", ids, "--sentences", str(sentences),
           "--threads", "1", "--batch", str(min(4, sentences)), "--warmup", "0", "--out", out]
    for name, path in models:
        cmd += ["--model", f"{name}={path}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def check(fp32_path, int8_path, model_dir, ids_path, sentences):
    sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..")))  # tools/
    import torch
    import seed_baseline
    torch.set_num_threads(1)
    model, _ = seed_baseline.load_model(model_dir)
    rows = seed_baseline.read_ids(ids_path, sentences)
    with torch.inference_mode():
        torch_logits = [model(torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0].tolist() for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        report = run_node([("fp32", fp32_path), ("int8", int8_path)], ids_path, sentences, os.path.join(tmp, "check.json"))
        exact = exactness(int8_path, ids_path, min(sentences, 2), tmp)
    ort_fp32 = report["variants"]["fp32"]["logits"]
    ort_int8 = report["variants"]["int8"]["logits"]

    def maxdiff(x, y):
        return max(abs(a - b) for u, v in zip(x, y) for a, b in zip(u, v))

    result = {"sentences": len(rows), "ort_fp32_vs_torch_fp32": maxdiff(ort_fp32, torch_logits),
              "ort_int8_vs_ort_fp32": maxdiff(ort_int8, ort_fp32),
              "ort_int8_vs_torch_fp32": maxdiff(ort_int8, torch_logits),
              "per_node": exact,
              "logit_range": max(abs(a) for u in torch_logits for a in u)}
    print(f"check over {len(rows)} sentences (max |logit| {result['logit_range']:.3g}): "
          f"ORT fp32 vs PyTorch fp32 {result['ort_fp32_vs_torch_fp32']:.2g}; "
          f"ORT INT8 vs ORT fp32 {result['ort_int8_vs_ort_fp32']:.2g}; "
          f"ORT INT8 vs PyTorch fp32 {result['ort_int8_vs_torch_fp32']:.2g}")
    print(f"per node (first {min(sentences, 2)} sentences, ORT's own inputs, numpy reference): "
          f"{exact['matmuls']} MatMulInteger, {exact['accumulators_differing']} int32 accumulators differ; "
          f"scaled outputs max rel diff {exact['matmul_output_max_rel_diff']:.2g}; "
          f"{exact['gathers']} dequantized embeddings max rel diff {exact['embedding_max_rel_diff']:.2g}")
    if exact["accumulators_differing"] or exact["matmul_output_max_rel_diff"] > 1e-5 or exact["embedding_max_rel_diff"] > 1e-6:
        raise SystemExit("quantize_onnx.py: the quantized graph does not compute what this script meant it to")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in", dest="src", required=True, help="the fp32 .onnx graph (export_onnx.py)")
    p.add_argument("--out", required=True, help="the quantized .onnx graph to write")
    p.add_argument("--per-channel", action="store_true", help="one weight scale per output column (ORT per_channel=True)")
    p.add_argument("--check-model", help="model folder the graph came from: compare logits with PyTorch fp32")
    p.add_argument("--check-ids", help="`qexp tokenize --json` file for the check")
    p.add_argument("--check-sentences", type=int, default=8)
    p.add_argument("--check-out", help="write the check's differences as JSON here")
    args = p.parse_args()
    if bool(args.check_model) != bool(args.check_ids):
        p.error("--check-model and --check-ids go together")

    model = onnx.load(args.src)
    stats = quantize(model, args.per_channel)
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB; {stats['MatMul']} MatMuls -> "
          f"DynamicQuantizeLinear + MatMulInteger (int8 weights, {'per channel' if args.per_channel else 'per tensor'}), "
          f"{stats['Gather']} Gathers -> uint8 table + DequantizeLinear")
    if args.check_model:
        result = check(args.src, args.out, args.check_model, args.check_ids, args.check_sentences)
        if args.check_out:
            with open(args.check_out, "w") as f:
                json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
