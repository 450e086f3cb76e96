#!/usr/bin/python3
"""Exports a qexp / Hugging Face DistilBERT model folder (config.json + model.safetensors) to fp32
ONNX, for the ONNX Runtime peer benchmark (tools/bench/ort/run-ort.sh).

The PyTorch model is the one tools/seed_baseline.py defines (imported from there: one source of
truth for the seed pipeline and this export). torch.onnx.export traces it with input_ids and
attention_mask (int64, dynamic batch and sequence axes) and one output, logits [batch, labels].

  /usr/bin/python3 tools/bench/ort/export_onnx.py --model DIR --out model-fp32.onnx [--opset 13]

Needs Debian's python3-torch and python3-onnx (/usr/bin/python3); nothing from PyPI.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..")))  # tools/
import seed_baseline  # noqa: E402  (tools/seed_baseline.py)


def load_model(folder):
    """seed_baseline's fp32 model and config."""
    return seed_baseline.load_model(folder)


def export(model, out, opset=13):
    ids = torch.tensor([[101, 2009, 1005, 1055, 1037, 11951, 102], [101, 2009, 1005, 1055, 102, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask), out,
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "logits": {0: "batch"}},
            opset_version=opset, do_constant_folding=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder: config.json + model.safetensors")
    p.add_argument("--out", required=True, help="the fp32 .onnx file to write")
    p.add_argument("--opset", type=int, default=13)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.model)
    export(model, args.out, args.opset)
    import onnx
    graph = onnx.load(args.out)
    onnx.checker.check_model(graph)
    ops = {}
    for n in graph.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB, opset {args.opset}, "
          f"{len(graph.graph.node)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:8])}, ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
