#!/usr/bin/env node
// Runs one ONNX model through onnxruntime-node on the first sentences of a `qexp tokenize --json`
// file, each alone (batch 1), and writes every graph output of every sentence as JSON:
// [{output name: [numbers]}, ...]. quantize_onnx.py's check uses it to read intermediate tensors
// of the quantized graph (exposed as extra graph outputs).
//
//   node tools/bench/ort/ort_run.js --model FILE --ids ids.jsonl --sentences N --out FILE
//       [--graph-optimization all|extended|basic|disabled]
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const o = { sentences: 2, level: 'all' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = { '--model': 'model', '--ids': 'ids', '--sentences': 'sentences', '--out': 'out', '--graph-optimization': 'level' }[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`unexpected argument '${argv[i]}'`);
    o[key] = argv[i + 1];
  }
  if (!o.model || !o.ids || !o.out) throw new Error('usage: ort_run.js --model FILE --ids FILE --out FILE [--sentences N]');
  const session = await ort.InferenceSession.create(o.model, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: o.level });
  const rows = fs.readFileSync(o.ids, 'utf8').split('\n').filter((l) => l.trim()).slice(0, Number(o.sentences)).map((l) => JSON.parse(l).input_ids);
  const results = [];
  for (const r of rows) {
    const dims = [1, r.length];
    const out = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(r.map(BigInt)), dims),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(r.length).fill(1n), dims),
    });
    const named = {};
    for (const [k, v] of Object.entries(out)) named[k] = Array.from(v.data, Number);
    results.push(named);
  }
  fs.writeFileSync(o.out, JSON.stringify(results));
}

main().catch((e) => {
  console.error(`ort_run.js: ${e.message || e}`);
  process.exit(1);
});
