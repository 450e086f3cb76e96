#!/usr/bin/python3
"""The seed pipeline qexp replaces, for the end-to-end benchmark (docs/benchmarks.md).

A plain PyTorch DistilBERT for sequence classification (nn.Linear layers, Hugging Face module
names, the operations of transformers' modeling_distilbert.py) loading a qexp / Hugging Face
model folder's model.safetensors, run in fp32 and after
torch.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8) on the onednn engine
(Debian's torch has no fbgemm). Token ids come from a file written by `qexp tokenize --json`, so
both sides see identical inputs. Timed the way tools/bench/e2e_bench.cpp times qexp: warm-up,
the same sentences, the same thread count, inference_mode, fp32 and INT8 alternated per input.

  /usr/bin/python3 tools/seed_baseline.py --model DIR --ids ids.jsonl --threads 1 \
      --out seed.json [--qexp-logits qexp.json]

Needs Debian's python3-torch (/usr/bin/python3); no transformers, no safetensors package.
"""
import argparse
import json
import math
import struct
import sys
import time

import torch
from torch import nn

SAFETENSORS_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8,
}


def read_safetensors(path):
    """name -> tensor, from the format itself: u64 little-endian header length, JSON header,
    then the raw little-endian bytes each entry's data_offsets point into."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SystemExit(f"{path}: {len(blob)} bytes, too short for a safetensors header length")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise SystemExit(f"{path}: header length {header_len} runs past the file end ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = memoryview(blob)[8 + header_len:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise SystemExit(f"{path}: tensor '{name}' has dtype {entry['dtype']}, not supported here")
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        t = torch.frombuffer(bytearray(raw), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["dim"], padding_idx=c.get("pad_token_id", 0))
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["dim"])
        self.LayerNorm = nn.LayerNorm(c["dim"], eps=1e-12)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.size(1), dtype=torch.long).unsqueeze(0)
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads, self.dim = c["n_heads"], c["dim"]
        self.q_lin = nn.Linear(self.dim, self.dim)
        self.k_lin = nn.Linear(self.dim, self.dim)
        self.v_lin = nn.Linear(self.dim, self.dim)
        self.out_lin = nn.Linear(self.dim, self.dim)

    def forward(self, x, mask):
        bs, q_len, _ = x.size()
        dh = self.dim // self.n_heads

        def shape(t):
            return t.view(bs, -1, self.n_heads, dh).transpose(1, 2)

        q = shape(self.q_lin(x)) / math.sqrt(dh)
        k = shape(self.k_lin(x))
        v = shape(self.v_lin(x))
        scores = torch.matmul(q, k.transpose(2, 3))
        mask = (mask == 0).view(bs, 1, 1, q_len).expand_as(scores)
        scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
        weights = nn.functional.softmax(scores, dim=-1)
        context = torch.matmul(weights, v).transpose(1, 2).contiguous().view(bs, -1, self.dim)
        return self.out_lin(context)


class FFN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.lin1 = nn.Linear(c["dim"], c["hidden_dim"])
        self.lin2 = nn.Linear(c["hidden_dim"], c["dim"])
        self.activation = nn.GELU() if c.get("activation", "gelu") == "gelu" else nn.ReLU()

    def forward(self, x):
        return self.lin2(self.activation(self.lin1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = MultiHeadSelfAttention(c)
        self.sa_layer_norm = nn.LayerNorm(c["dim"], eps=1e-12)
        self.ffn = FFN(c)
        self.output_layer_norm = nn.LayerNorm(c["dim"], eps=1e-12)

    def forward(self, x, mask):
        sa = self.sa_layer_norm(self.attention(x, mask) + x)
        return self.output_layer_norm(self.ffn(sa) + sa)


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([TransformerBlock(c) for _ in range(c["n_layers"])])


class DistilBertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.transformer = Transformer(c)


class DistilBertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        num_labels = len(c.get("id2label", {"0": "LABEL_0", "1": "LABEL_1"}))
        self.distilbert = DistilBertModel(c)
        self.pre_classifier = nn.Linear(c["dim"], c["dim"])
        self.classifier = nn.Linear(c["dim"], num_labels)

    def forward(self, input_ids, attention_mask):
        x = self.distilbert.embeddings(input_ids)
        for block in self.distilbert.transformer.layer:
            x = block(x, attention_mask)
        pooled = torch.relu(self.pre_classifier(x[:, 0]))
        return self.classifier(pooled)


def load_model(folder):
    with open(f"{folder}/config.json") as f:
        config = json.load(f)
    if config.get("sinusoidal_pos_embds", False):
        raise SystemExit(f"{folder}/config.json: sinusoidal_pos_embds is true; this baseline reads learned positions only")
    model = DistilBertForSequenceClassification(config)
    weights = {k: v.float() for k, v in read_safetensors(f"{folder}/model.safetensors").items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing:
        raise SystemExit(f"{folder}/model.safetensors: missing tensors {missing[:4]}")
    return model.eval(), config


def read_ids(path, count):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line)["input_ids"])
            if len(rows) == count:
                break
    return rows


def padded(rows, pad_id):
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder: config.json + model.safetensors")
    p.add_argument("--ids", required=True, help="`qexp tokenize --json` output, one sentence per line")
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32, help="the throughput batch size")
    p.add_argument("--warmup", type=int, default=10, help="inputs run untimed first, per variant")
    p.add_argument("--out", required=True, help="timings as JSON")
    p.add_argument("--qexp-logits", help="e2e_bench's JSON: compare fp32 batch-1 logits with it")
    p.add_argument("--golden", help="Hugging Face reference logits (../shared/golden/*/expected.jsonl, also "
                   "usable as --ids): compare fp32 and INT8 batch-1 logits with its logits and "
                   "logits_dynamic_int8_onednn")
    p.add_argument("--variants", default="fp32,int8",
                   help="comma-separated subset of fp32,int8 to time (run-benchmarks.sh times each alone "
                   "above one thread, so one variant's spinning pool threads cannot slow the other)")
    args = p.parse_args()
    wanted = args.variants.split(",")
    unknown = [v for v in wanted if v not in ("fp32", "int8")]
    if unknown or not wanted:
        p.error(f"--variants: expected a comma-separated subset of fp32,int8, found '{args.variants}'")
    if args.qexp_logits and "fp32" not in wanted:
        p.error("--qexp-logits compares the fp32 variant's logits: include fp32 in --variants")
    if args.golden and wanted != ["fp32", "int8"]:
        p.error("--golden compares both variants: --variants must be fp32,int8")

    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "onednn"
    fp32, config = load_model(args.model)
    int8 = torch.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
    variants = [(f"seed {v}", {"fp32": fp32, "int8": int8}[v]) for v in ("fp32", "int8") if v in wanted]
    pad_id = config.get("pad_token_id", 0)

    rows = read_ids(args.ids, args.sentences)
    singles = [torch.tensor([r], dtype=torch.long) for r in rows]
    batches = [padded(rows[i:i + args.batch], pad_id) for i in range(0, len(rows), args.batch)]
    results = {name: {"batch1_ms": [], "batch1_cpu_ms": [], "batchN_ms": [], "batchN_cpu_ms": [], "batchN_sentences": []}
               for name, _ in variants}
    logits = {name: [] for name, _ in variants}
    with torch.inference_mode():
        for name, model in variants:  # warm-up: first inputs of both shapes
            for x in singles[:args.warmup]:
                model(x, torch.ones_like(x))
            model(*batches[0])
        for x in singles:
            mask = torch.ones_like(x)
            for name, model in variants:  # alternated per sentence, like qexp's bench
                c0, t0 = time.process_time(), time.perf_counter()
                y = model(x, mask)
                t1, c1 = time.perf_counter(), time.process_time()
                results[name]["batch1_ms"].append((t1 - t0) * 1e3)
                results[name]["batch1_cpu_ms"].append((c1 - c0) * 1e3)
                logits[name].append(y[0].tolist())
        for ids, mask in batches:
            for name, model in variants:
                c0, t0 = time.process_time(), time.perf_counter()
                model(ids, mask)
                results[name]["batchN_ms"].append((time.perf_counter() - t0) * 1e3)
                results[name]["batchN_cpu_ms"].append((time.process_time() - c0) * 1e3)
                results[name]["batchN_sentences"].append(int(ids.size(0)))

    report = {"threads": args.threads, "batch": args.batch, "sentences": len(rows),
              "torch": torch.__version__, "engine": torch.backends.quantized.engine,
              "mean_tokens": sum(len(r) for r in rows) / len(rows), "variants": results}
    if args.qexp_logits:
        with open(args.qexp_logits) as f:
            theirs = json.load(f)["fp32_logits"]
        n = min(len(theirs), len(logits["seed fp32"]))
        diff = max(abs(a - b) for i in range(n) for a, b in zip(theirs[i], logits["seed fp32"][i]))
        report["fp32_logits_max_abs_diff"] = diff
        report["fp32_logits_compared"] = n
        print(f"seed fp32 vs qexp fp32 logits: max |diff| = {diff:.3g} over {n} sentences")
    if args.golden:
        with open(args.golden) as f:
            golden = [json.loads(line) for line in f if line.strip()][:len(rows)]
        for name, key in (("seed fp32", "logits"), ("seed int8", "logits_dynamic_int8_onednn")):
            diff = max(abs(a - b) for g, mine in zip(golden, logits[name]) for a, b in zip(g[key], mine))
            report[f"golden_{key}_max_abs_diff"] = diff
            print(f"{name} vs Hugging Face golden {key}: max |diff| = {diff:.3g} over {len(golden)} sentences")
    with open(args.out, "w") as f:
        json.dump(report, f)
    for name, r in results.items():
        b1 = sorted(r["batch1_ms"])[len(r["batch1_ms"]) // 2]
        tput = sum(r["batchN_sentences"]) / (sum(r["batchN_ms"]) / 1e3)
        print(f"{name}: batch 1 median {b1:.2f} ms/sentence; batch {args.batch} {tput:.1f} sentences/s "
              f"({args.threads} thread{'s' if args.threads > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
