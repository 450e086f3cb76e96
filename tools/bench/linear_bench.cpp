// One Linear layer, every way qexp can run it: fp32 (BLAS and oneDNN), libtorch's own dynamic
// INT8 op (what torch.quantization.quantize_dynamic runs), each INT8 plugin configuration and INT4,
// on DistilBERT's Linear shapes at the sequence lengths that matter, on one thread.
//
//   build-x/bin/linear_bench --benchmark_min_time=0.2      # all of it (about 2 minutes)
//   build-x/bin/linear_bench --benchmark_filter='768x3072/M:22/'
//   ONEDNN_VERBOSE=1 build-x/bin/linear_bench --benchmark_filter='onednn-int8.*768x3072/M:22/'
//
// Each result carries p10_us and median_us (per-call wall time) and GOP/s = 2*M*K*N / p10 time;
// docs/plugins.md tabulates p10_us and GOP/s.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qexp/float_linear.h"
#include "qexp/plugin_registry.h"
#include "qexp/threads.h"

namespace {

struct linear_shape {
  int64_t in, out;
};
// DistilBERT: attention projections and out_lin (768x768), ffn.lin1 (768x3072), ffn.lin2 (3072x768).
const std::vector<linear_shape> shapes{{768, 768}, {768, 3072}, {3072, 768}};
const std::vector<int64_t> row_counts{1, 8, 22, 25, 128};

qexp::layer make_layer(const linear_shape& s) {
  at::manual_seed(s.in * 10007 + s.out);
  qexp::layer l;
  l.name = "bench." + std::to_string(s.in) + "x" + std::to_string(s.out);
  l.weight = at::randn({s.out, s.in}) / std::sqrt(static_cast<double>(s.in));
  l.bias = at::randn({s.out}) * 0.1;
  return l;
}

using forward_fn = std::function<at::Tensor(const at::Tensor&)>;

// Times every call and reports GOP/s from the 10th-percentile call: on a machine shared with
// other jobs the mean mostly measures the neighbours, the fast calls measure the code.
void run_linear(benchmark::State& state, const forward_fn& forward, int64_t m, const linear_shape& s) {
  at::manual_seed(42);
  auto x = at::randn({m, s.in});
  for (int i = 0; i < 3; ++i) benchmark::DoNotOptimize(forward(x));  // primitive creation, caches
  std::vector<double> seconds;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(forward(x));
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double p10 = seconds[seconds.size() / 10], median = seconds[seconds.size() / 2];
  const double ops = 2.0 * static_cast<double>(m) * static_cast<double>(s.in) * static_cast<double>(s.out);
  state.counters["p10_us"] = p10 * 1e6;
  state.counters["median_us"] = median * 1e6;
  state.counters["GOP/s"] = ops / p10 / 1e9;
}

// Row counts as SST-2 dev sentences give them one at a time (mean 22): a primitive cached for one
// shape only is rebuilt on almost every call here, as it is in a real evaluation.
const std::vector<int64_t> varying_rows{12, 31, 22, 9, 27, 18, 40, 15, 24, 20, 33, 11, 26, 19, 29, 16};

void run_linear_varying(benchmark::State& state, const forward_fn& forward, const linear_shape& s) {
  at::manual_seed(42);
  std::vector<at::Tensor> inputs;
  double ops_per_cycle = 0;
  for (int64_t m : varying_rows) {
    inputs.push_back(at::randn({m, s.in}));
    ops_per_cycle += 2.0 * static_cast<double>(m) * static_cast<double>(s.in) * static_cast<double>(s.out);
  }
  for (const auto& x : inputs) benchmark::DoNotOptimize(forward(x));
  std::size_t calls = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(forward(inputs[calls++ % inputs.size()]));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double ops = ops_per_cycle * static_cast<double>(calls) / static_cast<double>(inputs.size());
  state.counters["mean_us"] = seconds / static_cast<double>(calls) * 1e6;
  state.counters["GOP/s"] = ops / seconds / 1e9;
}

// libtorch's quantized::linear_prepack / linear_dynamic on the onednn engine, called the way
// torch.ao.nn.quantized.dynamic.Linear does (per-tensor s8 weights, reduce_range=true).
forward_fn torch_linear_dynamic(const qexp::layer& l) {
  using packed_ptr = c10::intrusive_ptr<LinearPackedParamsBase>;
  auto w = l.weight.contiguous();
  const float amax = std::max(w.max().item<float>(), -w.min().item<float>());
  auto qweight = at::quantize_per_tensor(w, std::max(amax / 127.5f, 1.1920929e-07f), 0, at::kQInt8);
  const auto previous = at::globalContext().qEngine();
  at::globalContext().setQEngine(at::kONEDNN);
  auto prepack = c10::Dispatcher::singleton()
                     .findSchemaOrThrow("quantized::linear_prepack", "")
                     .typed<packed_ptr(at::Tensor, c10::optional<at::Tensor>)>();
  packed_ptr packed = prepack.call(qweight, l.bias);
  at::globalContext().setQEngine(previous);
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("quantized::linear_dynamic", "")
                .typed<at::Tensor(at::Tensor, const packed_ptr&, bool)>();
  return [op, packed](const at::Tensor& x) { return op.call(x, packed, true); };
}

struct plugin_config {
  std::string id;
  std::map<std::string, std::string> options;
  std::string label;
};

const std::vector<plugin_config> plugin_configs{
    {"dynamic-int8", {}, "dynamic-int8{onednn,per_tensor}"},
    {"dynamic-int8", {{"engine", "qnnpack"}}, "dynamic-int8{qnnpack,per_tensor}"},
    {"dynamic-int8", {{"activation_granularity", "per_token"}}, "dynamic-int8{reference,per_token}"},
    {"onednn-int8", {}, "onednn-int8{per_channel,u8}"},
    {"onednn-int8", {{"granularity", "per_tensor"}}, "onednn-int8{per_tensor,u8}"},
    {"onednn-int8", {{"activation_granularity", "per_token"}}, "onednn-int8{per_channel,u8,per_token}"},
    {"onednn-int8", {{"activation_type", "s8"}}, "onednn-int8{per_channel,s8}"},
    // Static activation scales, calibrated on Gaussian rows (calibrated() below).
    {"static-int8", {}, "static-int8{per_channel,u8,minmax}"},
    {"static-int8", {{"kernel", "onednn"}}, "static-int8{per_channel,u8,minmax,onednn}"},
    {"static-int8", {{"activation_type", "s8"}}, "static-int8{per_channel,s8,minmax}"},
    {"static-int8", {{"smoothquant", "true"}}, "static-int8{per_channel,u8,smoothquant}"},
    {"static-int8", {{"activations", "dynamic"}}, "static-int8{per_channel,u8,dynamic}"},
    {"static-int8", {{"activations", "dynamic"}, {"smoothquant", "true"}}, "static-int8{per_channel,u8,dynamic,smoothquant}"},
    // Group-wise INT4 weights, u8 per-token activations (W4A8 on int4_gemm) or float (weight-only).
    {"int4", {}, "int4{rtn,g128,asym}"},
    {"int4", {{"symmetric", "true"}}, "int4{rtn,g128,sym}"},
    {"int4", {{"group_size", "32"}}, "int4{rtn,g32,asym}"},
    {"int4", {{"activations", "float"}}, "int4{rtn,g128,asym,weight-only}"},
};

// What the host does for one Linear of a calibrating plugin: begin (one input group holding the
// layer), observe 8 batches of 32 Gaussian rows, finish_calibration, then prepare.
std::shared_ptr<qexp::packed_linear> calibrated(qexp::linear_quantizer& q, const qexp::layer& l) {
  qexp::quantizer_context context;
  context.groups.push_back({l.name, {l}});
  q.begin(context);
  if (q.wants_calibration()) {
    at::manual_seed(7);
    for (int b = 0; b < 8; ++b) q.observe(l.name, at::randn({32, l.weight.size(1)}));
    q.finish_calibration({l.name});
  }
  return q.prepare(l);
}

// Benchmarks own what they run for the whole process.
std::vector<std::shared_ptr<qexp::packed_linear>> keep_alive;

void register_all(const qexp::plugin_registry& registry) {
  for (const auto& s : shapes) {
    const auto l = make_layer(s);
    const std::string shape_name = std::to_string(s.in) + "x" + std::to_string(s.out);
    std::vector<std::pair<std::string, forward_fn>> impls;
    for (auto backend : {qexp::float_backend::blas, qexp::float_backend::onednn, qexp::float_backend::qexp}) {
      std::shared_ptr<qexp::packed_linear> lin = qexp::make_float_linear(l, backend);
      keep_alive.push_back(lin);
      impls.emplace_back(std::string("fp32{") + qexp::to_string(backend) + "}",
                         [lin](const at::Tensor& x) { return lin->forward(x); });
    }
    impls.emplace_back("torch.linear_dynamic{onednn}", torch_linear_dynamic(l));
    for (const auto& c : plugin_configs) {
      const qexp::plugin_record* record = nullptr;
      for (const auto& r : registry.plugins())
        if (c.id == r.info->id) record = &r;
      if (!record) {
        std::cerr << "linear_bench: plugin " << c.id << " not found; skipping " << c.label << "\n";
        continue;
      }
      if (!record->supported) {
        std::cerr << "linear_bench: " << c.id << " cannot run here (" << record->unsupported_reason << ")\n";
        continue;
      }
      std::shared_ptr<qexp::packed_linear> lin = calibrated(*registry.create_linear(c.id, c.options), l);
      keep_alive.push_back(lin);
      impls.emplace_back(c.label, [lin](const at::Tensor& x) { return lin->forward(x); });
    }
    for (const auto& [name, fn] : impls)
      benchmark::RegisterBenchmark((name + "/" + shape_name + "/M:sst2-varying").c_str(),
                                   [fn = fn, s](benchmark::State& st) { run_linear_varying(st, fn, s); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    for (const auto& [name, fn] : impls)
      for (int64_t m : row_counts)
        benchmark::RegisterBenchmark((name + "/" + shape_name + "/M:" + std::to_string(m)).c_str(),
                                     [fn = fn, m, s](benchmark::State& st) { run_linear(st, fn, m, s); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Every number in docs/plugins.md is single-threaded: libtorch's pool and OpenBLAS's own.
  // QEXP_BENCH_THREADS=N measures how a kernel scales.
  const char* threads = std::getenv("QEXP_BENCH_THREADS");
  qexp::set_compute_threads(threads ? std::max(1, std::atoi(threads)) : 1);
  benchmark::Initialize(&argc, argv);
  qexp::plugin_registry registry;
  try {
    registry = qexp::plugin_registry::discover({QEXP_BUILD_PLUGIN_DIR});
  } catch (const std::exception& e) {
    std::cerr << "linear_bench: " << e.what() << "\n";
    return 1;
  }
  register_all(registry);
  benchmark::AddCustomContext("threads", std::to_string(at::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
