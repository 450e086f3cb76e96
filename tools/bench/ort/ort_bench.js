#!/usr/bin/env node
// ONNX Runtime half of the peer benchmark (tools/bench/ort/run-ort.sh): latency per sentence at
// batch 1 and throughput over padded batches, timed the way tools/bench/e2e_bench.cpp times qexp.
//
//   node tools/bench/ort/ort_bench.js --model fp32=model-fp32.onnx --model int8=model-int8.onnx \
//       --ids ids.jsonl --out ort.json [--threads 1] [--sentences 200] [--batch 32] [--warmup 10]
//       [--pad-id 0] [--optimized-dir DIR] [--graph-optimization all|extended|basic|disabled]
//
// ids.jsonl: `qexp tokenize --json` output (one JSON object per line, its "input_ids" used), the
// file qexp's e2e_bench and the seed pipeline read. Each --model NAME=FILE gets its own
// InferenceSession (intraOpNumThreads = --threads, interOpNumThreads 1, graph optimizations all,
// sequential execution). Warm-up, every model: the first --warmup sentences, one sentence of every
// other length, every batch. Then batch 1: each sentence alone (no padding), the models alternated
// per sentence; batch N: the sentences padded to the longest in the batch (pad id, attention mask
// 0 there, as e2e_bench pads), the models alternated per batch. ORT computes the padded positions.
// Wall time: process.hrtime around session.run; cpu: process.cpuUsage (all threads) over it.
// --optimized-dir: also write each model as ORT optimized it (to see the fused operators).
// --graph-optimization: the session's level (default all; the others are for checks).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { models: [], threads: 1, sentences: 200, batch: 32, warmup: 10, padId: 0, ids: null, out: null, optimizedDir: null, graphOpt: 'all' };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') {
      const s = v();
      const eq = s.indexOf('=');
      if (eq <= 0) throw new Error(`--model expects NAME=FILE, found '${s}'`);
      o.models.push({ name: s.slice(0, eq), file: s.slice(eq + 1) });
    } else if (a === '--ids') o.ids = v();
    else if (a === '--out') o.out = v();
    else if (a === '--threads') o.threads = parseInt(v(), 10);
    else if (a === '--sentences') o.sentences = parseInt(v(), 10);
    else if (a === '--batch') o.batch = parseInt(v(), 10);
    else if (a === '--warmup') o.warmup = parseInt(v(), 10);
    else if (a === '--pad-id') o.padId = parseInt(v(), 10);
    else if (a === '--optimized-dir') o.optimizedDir = v();
    else if (a === '--graph-optimization') o.graphOpt = v();
    else if (a === '-h' || a === '--help') {
      process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 20).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'`);
  }
  if (!o.models.length || !o.ids || !o.out) throw new Error('usage: ort_bench.js --model NAME=FILE... --ids FILE --out FILE [--threads N] [--sentences N] [--batch N] [--warmup N] [--pad-id N]');
  return o;
}

function readIds(file, count) {
  const rows = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    rows.push(JSON.parse(line).input_ids);
    if (rows.length === count) break;
  }
  return rows;
}

function feeds(rows, padId) {
  const longest = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * longest).fill(BigInt(padId));
  const mask = new BigInt64Array(rows.length * longest);
  rows.forEach((r, b) => r.forEach((id, t) => {
    ids[b * longest + t] = BigInt(id);
    mask[b * longest + t] = 1n;
  }));
  const dims = [rows.length, longest];
  return { input_ids: new ort.Tensor('int64', ids, dims), attention_mask: new ort.Tensor('int64', mask, dims) };
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function timed(session, feed) {
  const c0 = cpuMs();
  const t0 = process.hrtime.bigint();
  const out = await session.run(feed);
  const t1 = process.hrtime.bigint();
  return { ms: Number(t1 - t0) / 1e6, cpu: cpuMs() - c0, logits: out.logits };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const rows = readIds(o.ids, o.sentences);
  if (!rows.length) throw new Error(`${o.ids}: no sentences`);
  const variants = [];
  for (const m of o.models) {
    const options = { intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: o.graphOpt, executionMode: 'sequential' };
    if (o.optimizedDir) {
      fs.mkdirSync(o.optimizedDir, { recursive: true });
      options.optimizedModelFilePath = path.join(o.optimizedDir, `${m.name}-optimized.onnx`);
    }
    const t0 = process.hrtime.bigint();
    const session = await ort.InferenceSession.create(m.file, options);
    variants.push({ ...m, session, load_ms: Number(process.hrtime.bigint() - t0) / 1e6, file_mb: fs.statSync(m.file).size / 1e6,
                    batch1_ms: [], batch1_cpu_ms: [], batchN_ms: [], batchN_cpu_ms: [], batchN_sentences: [], logits: [] });
  }
  const singles = rows.map((r) => feeds([r], o.padId));
  const batches = [];
  for (let i = 0; i < rows.length; i += o.batch) batches.push({ feed: feeds(rows.slice(i, i + o.batch), o.padId), n: Math.min(o.batch, rows.length - i) });

  // Warm-up: the first --warmup sentences, one of every other length, every batch.
  const seen = new Set();
  const warm = [];
  rows.forEach((r, i) => {
    const fresh = !seen.has(r.length);
    seen.add(r.length);
    if (i < o.warmup || fresh) warm.push(i);
  });
  for (const v of variants) {
    for (const i of warm) await v.session.run(singles[i]);
    for (const b of batches) await v.session.run(b.feed);
  }
  // Batch 1, alternated per sentence.
  for (let i = 0; i < singles.length; ++i)
    for (const v of variants) {
      const r = await timed(v.session, singles[i]);
      v.batch1_ms.push(r.ms);
      v.batch1_cpu_ms.push(r.cpu);
      v.logits.push(Array.from(r.logits.data));
    }
  // Batch N, alternated per batch.
  for (const b of batches)
    for (const v of variants) {
      const r = await timed(v.session, b.feed);
      v.batchN_ms.push(r.ms);
      v.batchN_cpu_ms.push(r.cpu);
      v.batchN_sentences.push(b.n);
    }

  const report = {
    onnxruntime: ort.env.versions, node: process.version, threads: o.threads, batch: o.batch, sentences: rows.length,
    mean_tokens: rows.reduce((s, r) => s + r.length, 0) / rows.length, variants: {},
  };
  const first = variants[0];
  for (const v of variants) {
    let diff = 0;
    v.logits.forEach((l, i) => l.forEach((x, j) => { diff = Math.max(diff, Math.abs(x - first.logits[i][j])); }));
    const nb = v.batchN_sentences.reduce((a, b) => a + b, 0);
    report.variants[v.name] = {
      file: v.file, file_mb: v.file_mb, load_ms: v.load_ms,
      batch1_median_ms: median(v.batch1_ms), batch1_mean_ms: v.batch1_ms.reduce((a, b) => a + b, 0) / v.batch1_ms.length,
      batch1_median_cpu_ms: median(v.batch1_cpu_ms),
      batchN_sentences_per_s: nb / (v.batchN_ms.reduce((a, b) => a + b, 0) / 1e3),
      batchN_sentences_per_cpu_s: nb / (v.batchN_cpu_ms.reduce((a, b) => a + b, 0) / 1e3),
      logits_max_abs_diff_vs_first: diff,
      batch1_ms: v.batch1_ms, batch1_cpu_ms: v.batch1_cpu_ms, batchN_ms: v.batchN_ms, batchN_cpu_ms: v.batchN_cpu_ms,
      batchN_sentences: v.batchN_sentences, logits: v.logits,
    };
  }
  fs.writeFileSync(o.out, JSON.stringify(report) + '\n');
  for (const [name, r] of Object.entries(report.variants))
    console.log(`ort ${name}: batch 1 median ${r.batch1_median_ms.toFixed(2)} ms/sentence; batch ${o.batch} ` +
                `${r.batchN_sentences_per_s.toFixed(1)} sentences/s (${o.threads} thread${o.threads > 1 ? 's' : ''}); ` +
                `${r.file_mb.toFixed(1)} MB; max logit diff vs ${first.name} ${r.logits_max_abs_diff_vs_first.toPrecision(2)}`);
}

main().catch((e) => {
  console.error(`ort_bench.js: ${e.message || e}`);
  process.exit(1);
});
