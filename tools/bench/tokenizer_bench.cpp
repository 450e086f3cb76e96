// Tokenizer throughput on the SST-2 dev sentences (one thread). Reports sentences/s; the target
// is 50,000/s with encode_ids. Finds dev.tsv through QEXP_SHARED_DIR, else ../shared beside the
// checkout. Run: build/bin/tokenizer_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "qexp/dataset.h"
#include "qexp/tokenizer.h"

namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* env = std::getenv("QEXP_SHARED_DIR"); env && *env) return env;
  // tools/bench/tokenizer_bench.cpp -> the checkout -> ../shared beside it.
  const fs::path beside_checkout = fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "shared";
  if (fs::exists(beside_checkout)) return beside_checkout;
  return "../shared";
}

struct bench_data {
  qexp::wordpiece_tokenizer tokenizer;
  std::vector<std::string> sentences;  // SST-2 dev, mostly ASCII
  std::vector<std::string> tricky;     // accents, CJK, other scripts (the non-ASCII path)
  std::size_t bytes = 0;
};

const bench_data& data() {
  static const bench_data d = [] {
    const fs::path shared = shared_dir();
    bench_data result{qexp::wordpiece_tokenizer::from_vocab_file(shared / "data/distilbert-base-uncased/vocab.txt"), {}, {}, 0};
    result.sentences = qexp::read_sentence_tsv(shared / "data/sst2/dev.tsv").sentences;
    for (const auto& s : result.sentences) result.bytes += s.size();
    std::string line;
    std::ifstream jsonl(shared / "golden/tokenizer/tricky.jsonl");
    while (std::getline(jsonl, line)) {
      auto text = nlohmann::json::parse(line).at("text").get<std::string>();
      if (text.size() < 1000) result.tricky.push_back(std::move(text));  // leave out the 512-token text
    }
    return result;
  }();
  return d;
}

void report(benchmark::State& state, std::size_t sentences_per_iteration) {
  state.counters["sentences/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * sentences_per_iteration), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * sentences_per_iteration));
}

void sst2_dev_encode_ids(benchmark::State& state) {
  const auto& d = data();
  std::size_t total_ids = 0;
  for (auto _ : state) {
    for (const auto& sentence : d.sentences) {
      auto ids = d.tokenizer.encode_ids(sentence, 128);
      total_ids += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  report(state, d.sentences.size());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes));
  state.counters["ids/sentence"] = static_cast<double>(total_ids) / static_cast<double>(state.iterations() * d.sentences.size());
}
BENCHMARK(sst2_dev_encode_ids);

void sst2_dev_encode_ids_reused_buffer(benchmark::State& state) {
  const auto& d = data();
  std::vector<std::int64_t> ids;
  for (auto _ : state) {
    for (const auto& sentence : d.sentences) {
      ids.clear();
      d.tokenizer.encode_ids_into(sentence, ids, 128);
      benchmark::DoNotOptimize(ids.data());
    }
  }
  report(state, d.sentences.size());
}
BENCHMARK(sst2_dev_encode_ids_reused_buffer);

void sst2_dev_encode_with_tokens(benchmark::State& state) {
  const auto& d = data();
  for (auto _ : state) {
    for (const auto& sentence : d.sentences) {
      auto encoding = d.tokenizer.encode(sentence, 128);
      benchmark::DoNotOptimize(encoding.ids.data());
    }
  }
  report(state, d.sentences.size());
}
BENCHMARK(sst2_dev_encode_with_tokens);

void sst2_dev_encode_batch_32(benchmark::State& state) {
  const auto& d = data();
  std::vector<std::vector<std::string>> batches;
  for (std::size_t i = 0; i < d.sentences.size(); i += 32) {
    batches.emplace_back(d.sentences.begin() + static_cast<std::ptrdiff_t>(i),
                         d.sentences.begin() + static_cast<std::ptrdiff_t>(std::min(i + 32, d.sentences.size())));
  }
  for (auto _ : state) {
    for (const auto& batch : batches) {
      auto encoded = d.tokenizer.encode_batch(batch, 128);
      benchmark::DoNotOptimize(encoded.input_ids.data_ptr());
    }
  }
  report(state, d.sentences.size());
}
BENCHMARK(sst2_dev_encode_batch_32);

void non_ascii_encode_ids(benchmark::State& state) {
  const auto& d = data();
  for (auto _ : state) {
    for (const auto& text : d.tricky) {
      auto ids = d.tokenizer.encode_ids(text);
      benchmark::DoNotOptimize(ids.data());
    }
  }
  report(state, d.tricky.size());
}
BENCHMARK(non_ascii_encode_ids);

}  // namespace

BENCHMARK_MAIN();
