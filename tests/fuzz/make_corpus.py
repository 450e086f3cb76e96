#!/usr/bin/env python3
"""Regenerates the seed corpora of tests/fuzz/corpus/ (stdlib only; run from the checkout).

    python3 tests/fuzz/make_corpus.py [--results RESULTS_JSON]

Seeds are small valid and near-valid inputs: safetensors files written here byte by byte, the
config.json of the shipped and golden models, the shipped experiment configs (with and without
--set overrides), a few SST-2 dev sentences and hard tokenizer cases from ../shared, and a
results.json (from a short `qexp run`, trimmed; --results names it) with variants. Nothing from
../shared is copied whole.
"""
import argparse
import copy
import json
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.join(ROOT, "..", "shared")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True, header_text=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header = {}
    blob = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = header_text if header_text is not None else json.dumps(header, separators=(",", ":"))
    text = text.encode("utf-8")
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def safetensors_seeds():
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    put("safetensors_fuzz", "two_tensors.safetensors", safetensors(
        [("weight", "F32", [2, 2], f32(1, 2, 3, 4)), ("bias", "F32", [2], f32(0.5, -0.5))],
        metadata={"format": "pt"}))
    put("safetensors_fuzz", "every_dtype.safetensors", safetensors([
        ("f64", "F64", [1], struct.pack("<d", 1.5)), ("f32", "F32", [1], f32(2.5)),
        ("f16", "F16", [2], b"\x00\x3c\x00\xc0"), ("bf16", "BF16", [2], b"\x80\x3f\x00\x40"),
        ("i64", "I64", [1], struct.pack("<q", -7)), ("i32", "I32", [1], struct.pack("<i", 7)),
        ("i16", "I16", [2], struct.pack("<hh", 1, -1)), ("i8", "I8", [3], b"\x01\xff\x7f"),
        ("u8", "U8", [1, 1], b"\xfe"), ("bool", "BOOL", [2], b"\x00\x01")]))
    put("safetensors_fuzz", "scalar_and_empty.safetensors", safetensors(
        [("scalar", "F32", [], f32(3.0)), ("empty", "F32", [0, 4], b""), ("odd", "I8", [1], b"\x05"),
         ("unaligned", "F32", [1], f32(1.0))]))
    put("safetensors_fuzz", "metadata_only.safetensors", safetensors([], metadata={"k": "v", "qexp": "x"}))
    put("safetensors_fuzz", "empty_header.safetensors", safetensors([]))
    put("safetensors_fuzz", "unpadded.safetensors", safetensors([("w", "I16", [3], b"\x01\x00\x02\x00\x03\x00")], pad=False))
    # Near-valid: each breaks one rule the reader checks.
    put("safetensors_fuzz", "bad_overlap.safetensors", safetensors([], header_text=json.dumps(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})) + b"\x00" * 12)
    put("safetensors_fuzz", "bad_size.safetensors", safetensors([], header_text=json.dumps(
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})) + b"\x00" * 8)
    put("safetensors_fuzz", "bad_dtype.safetensors", safetensors([], header_text=json.dumps(
        {"a": {"dtype": "U32", "shape": [1], "data_offsets": [0, 4]}})) + b"\x00" * 4)
    put("safetensors_fuzz", "bad_huge_shape.safetensors", safetensors([], header_text=json.dumps(
        {"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})) + b"\x00" * 8)
    put("safetensors_fuzz", "bad_length.safetensors", struct.pack("<Q", 1 << 40) + b"{}")


def model_config_seeds():
    for name, path in [("golden_tiny.json", "golden/distilbert-tiny-random/config.json"),
                       ("distilbert_base.json", "data/distilbert-base-uncased/config.json")]:
        with open(os.path.join(SHARED, path), "rb") as f:
            put("model_config_fuzz", name, f.read())
    for model in ("distilbert-sst2-tiny", "distilbert-base-random"):
        path = os.path.join(ROOT, "models", model, "config.json")
        if os.path.exists(path):
            with open(path, "rb") as f:
                put("model_config_fuzz", model + ".json", f.read())
    base = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "vocab_size": 100,
            "max_position_embeddings": 64}
    put("model_config_fuzz", "minimal.json", json.dumps(base))
    put("model_config_fuzz", "all_keys.json", json.dumps(dict(base, pad_token_id=3, activation="relu",
        sinusoidal_pos_embds=True, dropout=0.0, attention_dropout=0.5, seq_classif_dropout=0.2, qa_dropout=0.1,
        initializer_range=0.02, id2label={"0": "neg", "1": "neu", "2": "pos"})))
    put("model_config_fuzz", "bad_heads.json", json.dumps(dict(base, n_heads=5)))
    put("model_config_fuzz", "bad_id2label.json", json.dumps(dict(base, id2label={"0": "a", "2": "b"})))
    put("model_config_fuzz", "bad_types.json", json.dumps(dict(base, dim="32", activation=1, pad_token_id=-1)))
    put("model_config_fuzz", "bad_big.json", '{"dim": 1e400, "n_layers": 18446744073709551615}')


def experiment_config_seeds():
    configs = os.path.join(ROOT, "configs")
    for name in sorted(os.listdir(configs)):
        if name.endswith(".yaml"):
            with open(os.path.join(configs, name), "rb") as f:
                put("experiment_config_fuzz", name, f.read())
    put("experiment_config_fuzz", "minimal.yaml",
        "name: x\nmodel: { path: ../model }\nquantizers: [{ plugin: dynamic-int8 }]\n")
    put("experiment_config_fuzz", "overrides.yaml",
        "name: x\nmodel: { path: ../model }\nquantizers: [{ plugin: dynamic-int8 }]\n#--set\n"
        "quantizers.0.options.granularity=per_channel\nmeasure.latency.threads=[1, 2]\n"
        "quantizers.1.rules.0.plugin=static-int8\ndata.limit=8\ncalibration.mode=sequential\n")
    put("experiment_config_fuzz", "rules.yaml",
        "name: r\nkind: ptq\ndescription: 'a \"quoted\" text: with # and ünïcode'\nmodel: { path: ../model }\n"
        "data: { path: sst2/dev.tsv, max_length: 64, limit: 3 }\n"
        "baseline: { plugin: fp32, label: base }\n"
        "quantizers:\n  - label: mixed\n    rules:\n"
        "      - { plugin: onednn-int8, layers: { include: ['*ffn*'], exclude: ['*classifier'] },"
        " options: { granularity: per_channel } }\n"
        "      - plugin: embedding-int8\n        options: { bits: 4, group: 16 }\n"
        "calibration: { sentences: 16, batch_size: 4, seed: 18446744073709551615, mode: float }\n"
        "measure:\n  latency: { enabled: false, batch_sizes: 1, threads: [1], probe_text: hi }\n"
        "  accuracy: { batch_size: 2 }\n  layer_error: { enabled: false }\n  size: {}\n"
        "output: { dir: out }\nseed: 7\n")
    put("experiment_config_fuzz", "anchors.yaml",
        "name: &n a\nmodel: { path: ../model }\nopts: &o { granularity: per_tensor }\n"
        "quantizers:\n  - { plugin: dynamic-int8, options: *o }\n  - { plugin: dynamic-int8, label: *n }\n")
    put("experiment_config_fuzz", "bad_errors.yaml",
        "name: ../x\nmodle: { path: ../model }\nquantizers: []\nseed: -1\ncalibration: { mode: floaty }\n")


def tokenizer_seeds():
    def seed(name, options, max_length, text):
        put("tokenizer_fuzz", name, bytes([options, max_length]) + text.encode("utf-8", "surrogatepass"))
    with open(os.path.join(SHARED, "data", "sst2", "dev.tsv"), encoding="utf-8") as f:
        lines = f.read().splitlines()[1:5]
    for i, line in enumerate(lines):
        seed("sst2_%d" % i, 11 - i, 255 if i % 2 else 16, line.split("\t")[0])
    with open(os.path.join(SHARED, "golden", "tokenizer", "tricky.jsonl"), encoding="utf-8") as f:
        tricky = [json.loads(l)["text"] for l in f if l.strip()]
    for i, text in enumerate(t for t in tricky if len(t.encode("utf-8", "surrogatepass")) < 400):
        if i >= 16:
            break
        seed("tricky_%02d" % i, i, 255, text)
    seed("specials", 1, 255, "[CLS] hello [SEP][MASK]x[UNK] [PAD]")
    seed("no_lower", 0, 255, "Hello HELLO Café İstanbul ΣΑΣ ﬁne")
    put("tokenizer_fuzz", "invalid_utf8", bytes([5, 8]) + b"ab\xff\xc3(\xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 ok")
    seed("long_word", 3, 255, "a" * 101 + " " + "b" * 99)
    seed("truncate", 7, 3, "the movie the movie the movie")


def results_seeds(results_path):
    minimal = {"schema": "qexp.results/1", "results": []}
    put("results_fuzz", "minimal.json", json.dumps(minimal))
    put("results_fuzz", "bad_schema.json", json.dumps({"schema": "qexp.results/2", "results": []}))
    put("results_fuzz", "bad_results.json", json.dumps({"schema": "qexp.results/1", "results": {}}))
    if not results_path:
        return
    with open(results_path, encoding="utf-8") as f:
        doc = json.load(f)
    # Anonymise what names the machine and folders, and keep every list short.
    env = doc.get("environment", {})
    for key in ("hostname", "os", "blas", "git_commit"):
        if key in env:
            env[key] = "x"
    exp = doc.get("experiment", {})
    for key in ("config_file", "output_dir"):
        if key in exp:
            exp[key] = "/runs/" + key
    exp.pop("resolved_config", None)

    def trim(node):
        if isinstance(node, list):
            return [trim(v) for v in node[:3]]
        if isinstance(node, dict):
            return {k: trim(v) for k, v in node.items()}
        return node
    doc = trim(doc)
    put("results_fuzz", "run.json", json.dumps(doc, separators=(",", ":")))
    failed = copy.deepcopy(doc)
    if len(failed["results"]) > 1:
        failed["results"][1] = {"label": "broken", "plugin": "x", "status": "failed",
                                "error": "plugin error: a \"quoted\"\nmultiline <b>message</b>", "is_baseline": False}
    put("results_fuzz", "failed.json", json.dumps(failed, separators=(",", ":")))
    odd = copy.deepcopy(doc)
    for r in odd["results"]:
        if isinstance(r.get("size"), dict):
            r["size"]["bytes"] = "12"
        if isinstance(r.get("accuracy"), dict):
            r["accuracy"]["accuracy"] = None
        r["label"] = "a,b \"c\" | <d> é"
    put("results_fuzz", "odd_types.json", json.dumps(odd, separators=(",", ":")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="a results.json to trim into seeds")
    args = parser.parse_args()
    safetensors_seeds()
    model_config_seeds()
    experiment_config_seeds()
    tokenizer_seeds()
    results_seeds(args.results)


if __name__ == "__main__":
    sys.exit(main())
