// fp32 DistilBERT latency per SST-2 dev sentence: the baseline of every latency number qexp
// reports. One thread (at::set_num_threads(1), and OpenBLAS's own pool limited to one thread),
// the first 200 dev sentences tokenized with the real vocabulary, each sentence run alone
// (batch 1, no padding) or in padded batches of 8, with the BLAS and the oneDNN float Linear.
//
//   build-x/bin/distilbert_bench                                # random distilbert-base, seed 0
//   QEXP_BENCH_MODEL=models/x build-x/bin/distilbert_bench      # any model folder
//   build-x/bin/distilbert_bench --benchmark_filter=batch:1
//
// The random model is what `qexp init-model --preset distilbert-base --seed 0` writes; latency
// does not depend on the weight values. ms/sentence is the mean wall time of a forward divided
// by its batch size, over whole passes of the 200 sentences; p50/p90 likewise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "qexp/dataset.h"
#include "qexp/distilbert.h"
#include "qexp/threads.h"
#include "qexp/float_linear.h"
#include "qexp/tokenizer.h"

namespace {

namespace fs = std::filesystem;
constexpr std::size_t sentence_count = 200;

fs::path shared_dir() {
  if (const char* env = std::getenv("QEXP_SHARED_DIR"); env && *env) return env;
  // tools/bench/distilbert_bench.cpp -> the checkout -> ../shared beside it.
  const fs::path beside_checkout =
      fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "shared";
  if (fs::exists(beside_checkout)) return beside_checkout;
  return "../shared";
}

struct bench_data {
  std::vector<at::Tensor> single;  // [1, T] each
  std::vector<std::pair<at::Tensor, at::Tensor>> batches_of_8;
  double mean_tokens = 0;
};

const bench_data& data() {
  static const bench_data d = [] {
    const fs::path shared = shared_dir();
    auto tokenizer = qexp::wordpiece_tokenizer::from_vocab_file(
        shared / "data/distilbert-base-uncased/vocab.txt");
    const std::vector<std::string> sentences =
        qexp::read_sentence_tsv(shared / "data/sst2/dev.tsv", sentence_count).sentences;
    bench_data result;
    std::size_t tokens = 0;
    for (const auto& s : sentences) {
      auto ids = tokenizer.encode_ids(s, 512);
      tokens += ids.size();
      result.single.push_back(at::tensor(ids, at::kLong).view({1, -1}));
    }
    result.mean_tokens = static_cast<double>(tokens) / static_cast<double>(sentences.size());
    for (std::size_t i = 0; i + 8 <= sentences.size(); i += 8) {
      auto batch = tokenizer.encode_batch(
          std::vector<std::string>(sentences.begin() + i, sentences.begin() + i + 8), 512);
      result.batches_of_8.emplace_back(batch.input_ids, batch.attention_mask);
    }
    return result;
  }();
  return d;
}

qexp::distilbert_classifier& base_model() {
  static qexp::distilbert_classifier model = [] {
    if (const char* dir = std::getenv("QEXP_BENCH_MODEL"); dir && *dir)
      return qexp::distilbert_classifier::from_folder(dir);
    return qexp::distilbert_classifier::random(qexp::distilbert_config::preset("distilbert-base"), 0);
  }();
  return model;
}

qexp::distilbert_classifier model_with(qexp::float_backend backend) {
  auto model = base_model();
  for (const auto& name : model.linear_names())
    model.replace_linear(name, qexp::make_float_linear(model.float_layer(name), backend));
  return model;
}

double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

void fp32_latency(benchmark::State& state, qexp::float_backend backend, int batch) {
  auto model = model_with(backend);
  const auto& d = data();
  const std::size_t inputs = batch == 1 ? d.single.size() : d.batches_of_8.size();
  auto run = [&](std::size_t i) {
    if (batch == 1) return model.forward(d.single[i], at::ones_like(d.single[i]));
    return model.forward(d.batches_of_8[i].first, d.batches_of_8[i].second);
  };
  for (std::size_t i = 0; i < std::min<std::size_t>(inputs, 20); ++i) run(i);  // warm-up
  std::vector<double> per_sentence_ms;  // wall clock of each forward, divided by its batch
  double cpu_ms = 0;                    // this thread's CPU time: steadier on a shared machine
  for (auto _ : state) {
    for (std::size_t i = 0; i < inputs; ++i) {
      const double cpu_start = thread_cpu_ms();
      const auto start = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(run(i));
      const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
      cpu_ms += thread_cpu_ms() - cpu_start;
      per_sentence_ms.push_back(took.count() / batch);
    }
  }
  std::vector<double> sorted = per_sentence_ms;
  std::sort(sorted.begin(), sorted.end());
  const auto at_quantile = [&sorted](double q) {
    return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
  };
  double total = 0;
  for (double t : per_sentence_ms) total += t;
  state.counters["ms/sentence"] = total / static_cast<double>(per_sentence_ms.size());
  state.counters["cpu_ms/sentence"] = cpu_ms / static_cast<double>(per_sentence_ms.size() * batch);
  state.counters["p50_ms"] = at_quantile(0.5);
  state.counters["p90_ms"] = at_quantile(0.9);
  state.counters["mean_tokens"] = d.mean_tokens;
  state.counters["threads"] = at::get_num_threads();
}

void register_benchmarks() {
  for (auto backend : {qexp::float_backend::blas, qexp::float_backend::onednn, qexp::float_backend::qexp})
    for (int batch : {1, 8})
      benchmark::RegisterBenchmark(
          ("distilbert_fp32/" + std::string(qexp::to_string(backend)) + "/batch:" + std::to_string(batch))
              .c_str(),
          [backend, batch](benchmark::State& s) { fp32_latency(s, backend, batch); })
          ->Unit(benchmark::kMillisecond)
          ;
}

}  // namespace

int main(int argc, char** argv) {
  qexp::set_compute_threads(1);  // libtorch's pool and OpenBLAS's own
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks();
  std::cout << "model: "
            << (std::getenv("QEXP_BENCH_MODEL") ? std::getenv("QEXP_BENCH_MODEL")
                                                : "random distilbert-base, seed 0")
            << ", " << sentence_count << " SST-2 dev sentences, mean "
            << data().mean_tokens << " tokens, " << qexp::compute_threads() << " thread (OpenBLAS too)\n";
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
