// End-to-end DistilBERT latency and throughput for every qexp Linear configuration, the qexp half
// of the benchmark against the seed pipeline (tools/bench/run-benchmarks.sh runs both halves,
// alternating them, and writes docs/benchmarks.md).
//
//   e2e_bench --model DIR --ids ids.jsonl --threads 1 --out qexp.json [--sentences 200]
//             [--batch 32] [--warmup 10] [--config fp32:backend=blas --config onednn-int8 ...]
//             (warm-up: the first --warmup sentences, one of every other length, every batch)
//             [--profile] [--calibration-ids train_ids.jsonl [--calibration-sentences 128]]
//   e2e_bench --list-configs     (the default configurations, one per line)
//
// ids.jsonl is `qexp tokenize --json` output (one sentence per line), the file the seed pipeline
// reads too, so both sides run identical token ids. Every configuration is built from the same
// float model (each Linear replaced by the plugin's prepare) and the configurations are timed
// alternately per input, so the ratios between them come from the same seconds of machine load.
// Batch 1 runs each sentence alone (no padding); batch N pads to the longest in the batch, as the
// seed does (qexp's forward then computes only the real tokens; the seed computes the padding too).
// A configuration whose plugin calibrates (static INT8, ...) is calibrated on the first
// --calibration-sentences rows of --calibration-ids (tokenized training sentences, never the timed
// ones), in float mode, batches of 8, through the same apply_recipe as `qexp run`.
// --profile adds a pass per configuration that attributes each forward's time (thread CPU time at
// one thread, wall time above) to its parts (embeddings, attention, Linear, GELU,
// residual+LayerNorm, other) by timing each Linear through a wrapper and charging the gap before
// it to what the model does there; tokenizer time is measured separately on the sentence texts.
//
// This is a plain program with its own main (linked with Google Benchmark like every *_bench.cpp,
// but Google Benchmark's repetition model does not fit interleaved configurations).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "qexp/allocator.h"
#include "qexp/dataset.h"
#include "qexp/distilbert.h"
#include "qexp/plugin_registry.h"
#include "qexp/recipe.h"
#include "qexp/threads.h"
#include "qexp/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// CPU time of the whole process (every pool thread): on a loaded shared machine it tracks the
// work a forward does much more steadily than wall time does.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

struct options {
  fs::path model, ids, out, calibration_ids;
  std::size_t sentences = 200, batch = 32, warmup = 10, calibration_sentences = 128;
  int threads = 1;
  bool profile = false;
  std::vector<std::string> configs;
};

// Every float backend and INT8 plugin configuration the benchmark compares by default.
const std::vector<std::string> default_configs = {"fp32:backend=blas", "fp32:backend=onednn", "fp32:backend=qexp",
                                                  "dynamic-int8:granularity=per_tensor",
                                                  "onednn-int8:granularity=per_channel",
                                                  "onednn-int8:granularity=per_channel,activation_type=s8"};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "e2e_bench: " << message
            << "\nusage: e2e_bench --model DIR --ids FILE --out FILE [--threads N] [--sentences N] "
               "[--batch N] [--warmup N] [--config plugin[:key=value,...]]... [--profile]\n"
               "                 [--calibration-ids FILE [--calibration-sentences N]]\n"
               "       e2e_bench --list-configs\n";
  std::exit(2);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto count = [&]() {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (*end || n < 0) usage_error(a + ": expected a non-negative integer, found '" + v + "'");
      return static_cast<std::size_t>(n);
    };
    if (a == "--model") o.model = value();
    else if (a == "--ids") o.ids = value();
    else if (a == "--out") o.out = value();
    else if (a == "--sentences") o.sentences = count();
    else if (a == "--batch") o.batch = count();
    else if (a == "--warmup") o.warmup = count();
    else if (a == "--threads") o.threads = static_cast<int>(count());
    else if (a == "--config") o.configs.push_back(value());
    else if (a == "--calibration-ids") o.calibration_ids = value();
    else if (a == "--calibration-sentences") o.calibration_sentences = count();
    else if (a == "--profile") o.profile = true;
    else if (a == "--list-configs") {
      for (const auto& c : default_configs) std::cout << c << "\n";
      std::exit(0);
    }
    else usage_error("unknown argument '" + a + "'");
  }
  if (o.model.empty() || o.ids.empty() || o.out.empty()) usage_error("--model, --ids and --out are required");
  if (o.threads < 1 || o.batch < 1 || o.sentences < 1) usage_error("--threads, --batch and --sentences must be >= 1");
  if (o.configs.empty()) o.configs = default_configs;
  return o;
}

// "plugin:key=value,key=value" -> plugin id and options.
std::pair<std::string, std::map<std::string, std::string>> parse_config(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos) return {spec, {}};
  try {
    return {spec.substr(0, colon), qexp::parse_option_list(spec.substr(colon + 1), "--config")};
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
}

struct sentence {
  std::string text;
  std::vector<std::int64_t> ids;
};

std::vector<sentence> read_ids(const fs::path& path, std::size_t count) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open (expected `qexp tokenize --json` output)");
  std::vector<sentence> rows;
  std::string line;
  std::size_t line_no = 0;
  while (rows.size() < count && std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("input_ids"))
      throw std::runtime_error(path.string() + ":" + std::to_string(line_no) +
                               ": expected a JSON object with input_ids");
    rows.push_back({j.value("text", ""), j["input_ids"].get<std::vector<std::int64_t>>()});
  }
  if (rows.empty()) throw std::runtime_error(path.string() + ": no sentences");
  return rows;
}

// Times each Linear it wraps and charges the wall time between consecutive Linears to the part
// of the forward that runs there (distilbert.cpp's order: q, k, v, attention, out_lin,
// residual+LayerNorm, lin1, GELU, lin2, residual+LayerNorm; then pre_classifier, ReLU, classifier).
// At one thread it counts this thread's CPU time: every part runs on the calling thread, and CPU
// time does not count the time other jobs on a shared machine take. Above one thread the parts
// run on the pool too, so it counts wall time.
double profile_ms() {
  timespec t{};
  clock_gettime(at::get_num_threads() == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

struct part_clock {
  enum role { start, q_lin, k_lin, v_lin, out_lin, lin1, lin2, pre_classifier, classifier };
  double mark = 0;
  role last = start;
  std::map<std::string, double> ms;

  static role role_of(const std::string& name) {
    const auto ends = [&](const char* s) {
      const std::string suffix(s);
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends("q_lin")) return q_lin;
    if (ends("k_lin")) return k_lin;
    if (ends("v_lin")) return v_lin;
    if (ends("out_lin")) return out_lin;
    if (ends("lin1")) return lin1;
    if (ends("lin2")) return lin2;
    if (ends("pre_classifier")) return pre_classifier;
    return classifier;
  }
  void begin_forward() {
    last = start;
    mark = profile_ms();
  }
  void enter(role r, double now) {
    const double gap = now - mark;
    if (last == start) ms["embeddings"] += gap;
    else if (r == out_lin) ms["attention (scores, softmax, context)"] += gap;
    else if (r == lin1 || r == q_lin || r == pre_classifier) ms["residual + LayerNorm"] += gap;
    else if (r == lin2) ms["GELU"] += gap;
    else ms["other"] += gap;
  }
  void leave(role r, double entered, double now) {
    ms["Linear"] += now - entered;
    last = r;
    mark = now;
  }
  void end_forward() { ms["other"] += profile_ms() - mark; }
};

class timed_linear final : public qexp::packed_linear {
 public:
  timed_linear(std::shared_ptr<qexp::packed_linear> inner, part_clock::role role, part_clock* clock)
      : inner_(std::move(inner)), role_(role), clock_(clock) {}
  at::Tensor forward(const at::Tensor& x) override {
    const double entered = profile_ms();
    clock_->enter(role_, entered);
    at::Tensor y = inner_->forward(x);
    clock_->leave(role_, entered, profile_ms());
    return y;
  }
  std::size_t packed_bytes() const override { return inner_->packed_bytes(); }
  at::Tensor dequantized_weight() const override { return inner_->dequantized_weight(); }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override { inner_->save(out, prefix); }

 private:
  std::shared_ptr<qexp::packed_linear> inner_;
  part_clock::role role_;
  part_clock* clock_;
};

struct variant {
  std::string name, spec;
  qexp::distilbert_classifier model;
  std::size_t packed_bytes = 0;
  std::vector<double> batch1_ms, batch1_cpu_ms, batchn_ms, batchn_cpu_ms, batchn_sentences;
  std::vector<at::Tensor> logits;
};

// The warm-up sentences: the first `first` ones, then the first sentence of each length not met yet.
std::vector<std::size_t> warmup_sentences(const std::vector<at::Tensor>& singles, std::size_t first) {
  std::vector<std::size_t> rows;
  std::set<std::int64_t> lengths;
  for (std::size_t i = 0; i < singles.size(); ++i) {
    const bool new_length = lengths.insert(singles[i].size(1)).second;
    if (i < first || new_length) rows.push_back(i);
  }
  return rows;
}

std::string label_of(const std::string& id, const std::map<std::string, std::string>& given) {
  std::string label = "qexp " + id;
  for (const auto& [k, v] : given) label += " " + (k == "backend" || k == "granularity" ? v : k + "=" + v);
  return label;
}

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse_args(argc, argv);
  qexp::keep_freed_memory_for_reuse();
  qexp::set_compute_threads(o.threads);
  c10::InferenceMode inference;

  const auto rows = read_ids(o.ids, o.sentences);
  auto base = qexp::distilbert_classifier::from_folder(o.model);
  const std::int64_t pad_id = base.config().pad_token_id;
  std::vector<fs::path> extra;
#ifdef QEXP_BUILD_PLUGIN_DIR
  if (!std::getenv("QEXP_PLUGIN_PATH")) extra.push_back(QEXP_BUILD_PLUGIN_DIR);
#endif
  const auto registry = qexp::plugin_registry::discover(extra);

  std::optional<qexp::calibration_set> calibration;
  if (!o.calibration_ids.empty()) {
    calibration.emplace();
    for (auto& r : read_ids(o.calibration_ids, o.calibration_sentences)) calibration->ids.push_back(std::move(r.ids));
    calibration->pad_id = pad_id;
  }

  std::vector<variant> variants;
  for (const auto& spec : o.configs) {
    const auto [id, given] = parse_config(spec);
    const auto recipe = qexp::single_rule_recipe(id, given, {}, "--config " + spec);
    const auto quantized = qexp::apply_recipe(base, recipe, registry, calibration ? &*calibration : nullptr);
    if (quantized.calibration_seconds > 0)
      std::cerr << "e2e_bench: " << spec << " calibrated on " << calibration->ids.size() << " sentences in "
                << quantized.calibration_seconds << " s\n";
    variant v{label_of(id, given), spec, quantized.model, 0, {}, {}, {}, {}, {}, {}};
    for (const auto& name : v.model.linear_names()) v.packed_bytes += v.model.linear(name).packed_bytes();
    variants.push_back(std::move(v));
  }

  std::vector<at::Tensor> singles, single_masks;
  std::vector<std::vector<std::int64_t>> all_ids;
  std::size_t tokens = 0;
  for (const auto& r : rows) {
    singles.push_back(at::tensor(r.ids, at::kLong).view({1, -1}));
    single_masks.push_back(at::ones_like(singles.back()));
    all_ids.push_back(r.ids);
    tokens += r.ids.size();
  }
  std::vector<std::pair<at::Tensor, at::Tensor>> batches;
  for (std::size_t i = 0; i < rows.size(); i += o.batch) {
    at::Tensor mask;
    at::Tensor ids = qexp::padded_batch(all_ids, i, std::min(rows.size(), i + o.batch), pad_id, &mask);
    batches.emplace_back(ids, mask);
  }

  // Warm-up, every variant: the first --warmup sentences, then one sentence of every other length
  // and every batch. oneDNN builds (JIT-compiles) a primitive per row count on first use, and
  // primitives of one shape are shared between layers and variants through its cache, so a
  // length's first sentence would charge that cost to whichever variant met it first; the timed
  // passes measure the steady state.
  const std::vector<std::size_t> warmup_rows = warmup_sentences(singles, o.warmup);
  for (auto& v : variants) {
    for (std::size_t i : warmup_rows) v.model.forward(singles[i], single_masks[i]);
    for (const auto& [ids, mask] : batches) v.model.forward(ids, mask);
  }
  // Batch 1, alternated per sentence.
  for (std::size_t i = 0; i < singles.size(); ++i)
    for (auto& v : variants) {
      const double cpu0 = process_cpu_ms();
      const auto t0 = clock_type::now();
      at::Tensor y = v.model.forward(singles[i], single_masks[i]);
      const auto t1 = clock_type::now();
      v.batch1_cpu_ms.push_back(process_cpu_ms() - cpu0);
      v.batch1_ms.push_back(ms_between(t0, t1));
      v.logits.push_back(y[0]);
    }
  // Batch N, alternated per batch.
  for (const auto& [ids, mask] : batches)
    for (auto& v : variants) {
      const double cpu0 = process_cpu_ms();
      const auto t0 = clock_type::now();
      v.model.forward(ids, mask);
      v.batchn_ms.push_back(ms_between(t0, clock_type::now()));
      v.batchn_cpu_ms.push_back(process_cpu_ms() - cpu0);
      v.batchn_sentences.push_back(static_cast<double>(ids.size(0)));
    }

  // Tokenizer: the same texts through the model folder's tokenizer, checked against the ids.
  const auto tokenizer = qexp::wordpiece_tokenizer::from_model_folder(o.model);
  std::vector<double> tokenize_ms;
  std::vector<std::int64_t> ids;
  for (int pass = 0; pass < 2; ++pass)  // the first pass warms up
    for (const auto& r : rows) {
      ids.clear();
      const auto t0 = clock_type::now();
      tokenizer.encode_ids_into(r.text, ids, 512);
      const auto t1 = clock_type::now();
      if (pass == 1) tokenize_ms.push_back(ms_between(t0, t1));
      if (!r.text.empty() && ids != r.ids)
        throw std::runtime_error(o.ids.string() + ": ids for '" + r.text + "' differ from this model folder's tokenizer");
    }
  std::sort(tokenize_ms.begin(), tokenize_ms.end());

  nlohmann::ordered_json report;
  report["threads"] = o.threads;
  report["torch_threads"] = at::get_num_threads();
  report["batch"] = o.batch;
  report["sentences"] = rows.size();
  report["mean_tokens"] = static_cast<double>(tokens) / static_cast<double>(rows.size());
  report["tokenizer_ms_median"] = tokenize_ms[tokenize_ms.size() / 2];
  double tokenize_total = 0;
  for (double t : tokenize_ms) tokenize_total += t;
  report["tokenizer_ms_mean"] = tokenize_total / static_cast<double>(tokenize_ms.size());
  std::vector<std::vector<float>> fp32_logits;
  for (const auto& l : variants.front().logits) {
    auto c = l.contiguous();
    fp32_logits.emplace_back(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  report["fp32_logits_from"] = variants.front().name;
  report["fp32_logits"] = fp32_logits;
  for (auto& v : variants) {
    double diff = 0;
    for (std::size_t i = 0; i < v.logits.size(); ++i)
      diff = std::max(diff, (v.logits[i] - variants.front().logits[i]).abs().max().item<double>());
    report["variants"][v.name] = {{"spec", v.spec},
                                  {"packed_mb", static_cast<double>(v.packed_bytes) / 1e6},
                                  {"logits_max_abs_diff_vs_first", diff},
                                  {"batch1_ms", v.batch1_ms},
                                  {"batch1_cpu_ms", v.batch1_cpu_ms},
                                  {"batchN_ms", v.batchn_ms},
                                  {"batchN_cpu_ms", v.batchn_cpu_ms},
                                  {"batchN_sentences", v.batchn_sentences}};
  }

  if (o.profile) {
    for (auto& v : variants) {
      part_clock clock;
      auto timed = v.model;
      for (const auto& name : timed.linear_names())
        timed.replace_linear(name, std::make_shared<timed_linear>(timed.linear_ptr(name), part_clock::role_of(name), &clock));
      for (std::size_t i : warmup_rows) timed.forward(singles[i], single_masks[i]);
      clock.ms.clear();
      double total = 0;
      for (std::size_t i = 0; i < singles.size(); ++i) {
        const double t0 = profile_ms();
        clock.begin_forward();
        timed.forward(singles[i], single_masks[i]);
        clock.end_forward();
        total += profile_ms() - t0;
      }
      nlohmann::ordered_json parts;
      const double n = static_cast<double>(singles.size());
      parts["forward"] = total / n;
      for (const auto& [part, ms] : clock.ms) parts[part] = ms / n;
      // The same split over the padded batches (per sentence), where GEMMs are larger and padding
      // and attention grow.
      clock.ms.clear();
      total = 0;
      for (const auto& [ids, mask] : batches) {
        const double t0 = profile_ms();
        clock.begin_forward();
        timed.forward(ids, mask);
        clock.end_forward();
        total += profile_ms() - t0;
      }
      nlohmann::ordered_json batch_parts;
      batch_parts["forward"] = total / n;
      for (const auto& [part, ms] : clock.ms) batch_parts[part] = ms / n;
      report["profile_batchN_ms_per_sentence"][v.name] = batch_parts;
      report["profile_ms_per_sentence"][v.name] = parts;
    }
  }

  std::ofstream(o.out) << report.dump(1) << "\n";
  for (auto& v : variants) {
    auto sorted = v.batch1_ms;
    std::sort(sorted.begin(), sorted.end());
    double ms = 0, n = 0;
    for (std::size_t i = 0; i < v.batchn_ms.size(); ++i) ms += v.batchn_ms[i], n += v.batchn_sentences[i];
    std::cout << v.name << ": batch 1 median " << sorted[sorted.size() / 2] << " ms/sentence; batch " << o.batch
              << " " << n / (ms / 1e3) << " sentences/s (" << o.threads << " thread" << (o.threads > 1 ? "s" : "")
              << ")\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "e2e_bench: " << e.what() << "\n";
  return 1;
}
