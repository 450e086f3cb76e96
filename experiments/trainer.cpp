#include "trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>

#include "qexp/config_schema.h"
#include "qexp/dataset.h"
#include "qexp/errors.h"
#include "qexp/safetensors.h"
#include "qexp/tokenizer.h"
#include "qexp/version.h"
#include "qexp/wordpiece_trainer.h"
#include "results_report.h"
#include "trainer_model.h"

namespace qexp {
namespace fs = std::filesystem;
using detail::fixed;
using detail::with_thousands;

labelled_sentences read_training_tsv(const fs::path& path, std::int64_t limit) {
  // read_sentence_tsv refuses a file with no row after its header.
  return read_sentence_tsv(path, limit > 0 ? static_cast<std::size_t>(limit) : 0);
}

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// CPU seconds of this process (user + system, every thread). On a shared machine the wall time
// depends on the neighbours; this does much less.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Progress and summary lines: to stderr, and with a wall-clock stamp to train.log.
class train_log {
 public:
  explicit train_log(const fs::path& file) : file_(file, std::ios::trunc), tty_(isatty(fileno(stderr)) != 0) {}

  bool is_tty() const { return tty_; }

  void line(const std::string& text) {
    clear_bar();
    std::cerr << text << "\n";
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    file_ << std::put_time(&utc, "%Y-%m-%dT%H:%M:%SZ") << " " << text << "\n";
    file_.flush();
  }

  // Redraws one line in place (terminals only).
  void bar(const std::string& text) {
    if (!tty_) return;
    std::cerr << "\r" << text << "\x1b[K" << std::flush;
    bar_shown_ = true;
  }

 private:
  void clear_bar() {
    if (bar_shown_) std::cerr << "\r\x1b[K";
    bar_shown_ = false;
  }

  std::ofstream file_;
  bool tty_;
  bool bar_shown_ = false;
};

struct encoded_set {
  std::vector<std::vector<std::int64_t>> ids;
  std::vector<std::int64_t> labels;
  std::size_t size() const { return ids.size(); }
};

encoded_set encode_all(const labelled_sentences& rows, const wordpiece_tokenizer& tokenizer, std::int64_t max_length) {
  encoded_set out;
  out.ids.reserve(rows.size());
  for (const auto& text : rows.sentences) out.ids.push_back(tokenizer.encode_ids(text, static_cast<std::size_t>(max_length)));
  out.labels = rows.labels;
  return out;
}

struct batch {
  torch::Tensor input_ids, attention_mask, labels;
  std::int64_t tokens = 0;
};

batch make_batch(const encoded_set& data, const std::vector<std::size_t>& rows, std::int64_t pad_id) {
  batch out;
  out.input_ids = padded_batch(data.ids, rows, pad_id, &out.attention_mask);
  out.labels = torch::empty({static_cast<std::int64_t>(rows.size())}, torch::kLong);
  auto* lp = out.labels.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    lp[i] = data.labels[rows[i]];
    out.tokens += static_cast<std::int64_t>(data.ids[rows[i]].size());
  }
  return out;
}

// Fisher-Yates with our own index draw: std::shuffle's use of the generator is left to the
// standard library, and the order must not change with it.
template <typename T>
void seeded_shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

// One epoch's batches: shuffled, then sorted by length inside windows of 50 batches so that a
// batch pads to about its own length (SST-2 mixes 2-token phrases with 60-token sentences), then
// the batch order shuffled again.
std::vector<std::vector<std::size_t>> epoch_batches(const encoded_set& data, std::int64_t batch_size,
                                                    std::mt19937_64& rng) {
  std::vector<std::size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  seeded_shuffle(order, rng);
  const auto bs = static_cast<std::size_t>(batch_size);
  const std::size_t window = bs * 50;
  for (std::size_t start = 0; start < order.size(); start += window) {
    const auto end = std::min(order.size(), start + window);
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), order.begin() + static_cast<std::ptrdiff_t>(end),
                     [&](std::size_t a, std::size_t b) { return data.ids[a].size() < data.ids[b].size(); });
  }
  std::vector<std::vector<std::size_t>> batches;
  for (std::size_t start = 0; start < order.size(); start += bs)
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + bs)));
  seeded_shuffle(batches, rng);
  return batches;
}

struct evaluation {
  double accuracy = 0, loss = 0;
};

evaluation evaluate(trainable_distilbert& model, const encoded_set& data, std::int64_t batch_size, std::int64_t pad_id) {
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<std::size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return data.ids[a].size() < data.ids[b].size(); });
  std::int64_t correct = 0;
  double loss_sum = 0;
  for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(batch_size)) {
    std::vector<std::size_t> rows(order.begin() + static_cast<std::ptrdiff_t>(start),
                                  order.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min(order.size(), start + static_cast<std::size_t>(batch_size))));
    const auto b = make_batch(data, rows, pad_id);
    const auto logits = model->forward(b.input_ids, b.attention_mask);
    correct += logits.argmax(1).eq(b.labels).sum().item<std::int64_t>();
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, b.labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
  }
  model->train();
  const auto n = static_cast<double>(data.size());
  return {static_cast<double>(correct) / n, loss_sum / n};
}

distilbert_config model_config_of(const train_config& c, std::int64_t vocab_size) {
  distilbert_config m = c.model;
  m.vocab_size = vocab_size;
  return m;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw input_error(path.string() + ": cannot write");
}

void write_tokenizer_config(const fs::path& path, std::int64_t model_max_length) {
  nlohmann::ordered_json j;
  j["clean_up_tokenization_spaces"] = true;
  j["cls_token"] = "[CLS]";
  j["do_lower_case"] = true;
  j["mask_token"] = "[MASK]";
  j["model_max_length"] = model_max_length;
  j["pad_token"] = "[PAD]";
  j["sep_token"] = "[SEP]";
  j["strip_accents"] = nullptr;
  j["tokenize_chinese_chars"] = true;
  j["tokenizer_class"] = "DistilBertTokenizer";
  j["unk_token"] = "[UNK]";
  write_text(path, j.dump(2) + "\n");
}

using named_tensors = std::vector<std::pair<std::string, torch::Tensor>>;

named_tensors snapshot(const trainable_distilbert& model) {
  named_tensors out;
  for (auto& [name, t] : model->hf_tensors()) out.emplace_back(name, t.detach().clone());
  return out;
}

std::uint64_t write_weights(const named_tensors& tensors, const fs::path& path) {
  safetensors_writer writer;
  // transformers refuses a safetensors file whose metadata lacks format=pt.
  writer.set_metadata("format", "pt");
  for (const auto& [name, t] : tensors) writer.add_tensor(name, t.contiguous());
  return writer.write(path);
}

}  // namespace

train_result run_training(const train_config& c, const fs::path& out_dir, const YAML::Node& resolved) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw input_error(out_dir.string() + ": cannot create the model folder (" + ec.message() + ")");
  train_log log(out_dir / "train.log");
  at::set_num_threads(static_cast<int>(c.threads));

  // Data and vocabulary.
  const auto train_rows = read_training_tsv(c.train_path, c.train_limit);
  const auto dev_rows = read_training_tsv(c.dev_path, c.dev_limit);
  for (const auto* rows : {&train_rows, &dev_rows})
    for (const auto label : rows->labels)
      if (label > 1)
        throw input_error((rows == &train_rows ? c.train_path : c.dev_path).string() +
                          ": labels must be 0 or 1 (binary sentiment), found " + std::to_string(label));
  const fs::path vocab_path = out_dir / "vocab.txt";
  if (c.vocab.file.empty()) {
    wordpiece_vocab_builder builder;
    for (const auto& text : train_rows.sentences) builder.add_text(text);
    wordpiece_vocab_options options;
    options.vocab_size = static_cast<std::size_t>(c.vocab.size);
    options.min_frequency = static_cast<std::uint64_t>(c.vocab.min_frequency);
    options.continuation_fraction = c.vocab.continuation_fraction;
    const auto vocab = builder.build(options);
    write_vocab_file(vocab, vocab_path);
    log.line("vocabulary: " + std::to_string(vocab.size()) + " entries built from " +
             std::to_string(builder.word_counts().size()) + " distinct words of " + c.train_path.string());
  } else if (fs::absolute(c.vocab.file, ec) != fs::absolute(vocab_path, ec)) {
    fs::copy_file(c.vocab.file, vocab_path, fs::copy_options::overwrite_existing, ec);
    if (ec) throw input_error(c.vocab.file.string() + ": cannot copy to " + vocab_path.string() + " (" + ec.message() + ")");
    log.line("vocabulary: " + c.vocab.file.string());
  }
  write_tokenizer_config(out_dir / "tokenizer_config.json", c.model.max_position_embeddings);
  const auto tokenizer = wordpiece_tokenizer::from_model_folder(out_dir);
  const auto train = encode_all(train_rows, tokenizer, c.max_length);
  const auto dev = encode_all(dev_rows, tokenizer, c.max_length);
  std::int64_t train_tokens = 0, unknown = 0;
  for (const auto& s : train.ids) {
    train_tokens += static_cast<std::int64_t>(s.size());
    unknown += std::count(s.begin(), s.end(), tokenizer.unk_id());
  }
  log.line("data: " + std::to_string(train.size()) + " training sentences (" + with_thousands(static_cast<double>(train_tokens)) +
           " tokens, " + std::to_string(unknown) + " [UNK]), " + std::to_string(dev.size()) + " dev sentences");

  // Model and optimizer.
  torch::manual_seed(c.seed);
  const auto model_config = model_config_of(c, static_cast<std::int64_t>(tokenizer.vocab_size()));
  trainable_distilbert model(model_config);
  model->train();
  std::int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  auto [decay, no_decay] = model->decay_groups();
  const auto& t = c.training;
  auto adam_options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(t.learning_rate)
                                                            .betas({t.adam_beta1, t.adam_beta2})
                                                            .eps(t.adam_eps)
                                                            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adam_options(t.weight_decay));
  groups.emplace_back(no_decay, adam_options(0.0));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(t.learning_rate));

  const auto steps_per_epoch =
      static_cast<std::int64_t>((train.size() + static_cast<std::size_t>(t.batch_size) - 1) / static_cast<std::size_t>(t.batch_size));
  std::int64_t total_steps = steps_per_epoch * t.epochs;
  if (t.max_steps > 0) total_steps = std::min(total_steps, t.max_steps);
  const auto warmup_steps = static_cast<std::int64_t>(std::llround(t.warmup_fraction * static_cast<double>(total_steps)));
  auto learning_rate_at = [&](std::int64_t step) {  // step counts from 0
    if (step < warmup_steps) return t.learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    return t.learning_rate * static_cast<double>(total_steps - step) /
           static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps));
  };
  log.line("model: dim " + std::to_string(c.model.dim) + ", " + std::to_string(c.model.n_layers) + " layers, " +
           std::to_string(c.model.n_heads) + " heads, hidden " + std::to_string(c.model.hidden_dim) + ", vocab " +
           std::to_string(tokenizer.vocab_size()) + ": " + with_thousands(static_cast<double>(parameters)) + " parameters");
  log.line("training: " + std::to_string(total_steps) + " steps (" + std::to_string(steps_per_epoch) +
           " per epoch, batch " + std::to_string(t.batch_size) + "), AdamW lr " + fixed(t.learning_rate, 6) +
           ", warm-up " + std::to_string(warmup_steps) + " steps then linear decay, " + std::to_string(c.threads) +
           " threads, seed " + std::to_string(c.seed));

  train_result result;
  result.best_dev_accuracy = -1;
  named_tensors best_state;
  nlohmann::ordered_json evaluations = nlohmann::ordered_json::array();
  std::mt19937_64 shuffle_rng(c.seed);
  const auto start = clock_type::now();
  const double cpu_start = process_cpu_seconds();
  double train_seconds = 0, eval_seconds = 0;

  auto run_evaluation = [&](std::int64_t step, double epoch, double recent_loss, double recent_accuracy) {
    const auto eval_start = clock_type::now();
    const auto e = evaluate(model, dev, t.eval_batch_size, tokenizer.pad_id());
    eval_seconds += seconds_since(eval_start);
    const bool best = e.accuracy > result.best_dev_accuracy;
    if (best) {
      result.best_dev_accuracy = e.accuracy;
      result.best_step = step;
      result.best_epoch = epoch;
      best_state = snapshot(model);
    }
    evaluations.push_back({{"step", step},
                           {"epoch", epoch},
                           {"train_loss", recent_loss},
                           {"train_accuracy", recent_accuracy},
                           {"dev_loss", e.loss},
                           {"dev_accuracy", e.accuracy},
                           {"elapsed_s", seconds_since(start)}});
    log.line("eval step " + std::to_string(step) + " (epoch " + fixed(epoch, 2) + "): dev accuracy " +
             fixed(100 * e.accuracy, 2) + "%, dev loss " + fixed(e.loss, 4) + (best ? "  [best]" : ""));
  };

  std::int64_t step = 0;
  for (std::int64_t epoch = 0; epoch < t.epochs && step < total_steps; ++epoch) {
    const auto batches = epoch_batches(train, t.batch_size, shuffle_rng);
    double epoch_loss = 0, window_loss = 0;
    std::int64_t epoch_correct = 0, epoch_seen = 0, window_correct = 0, window_seen = 0, window_tokens = 0;
    auto window_start = clock_type::now();
    std::int64_t batch_index = 0;
    for (const auto& rows : batches) {
      if (step >= total_steps) break;
      const auto step_start = clock_type::now();
      const double lr = learning_rate_at(step);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      const auto b = make_batch(train, rows, tokenizer.pad_id());
      optimizer.zero_grad();
      const auto logits = model->forward(b.input_ids, b.attention_mask);
      const auto loss = torch::nn::functional::cross_entropy(logits, b.labels);
      loss.backward();
      if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), t.grad_clip);
      optimizer.step();
      train_seconds += seconds_since(step_start);

      const double loss_value = loss.item<double>();
      const auto correct = logits.detach().argmax(1).eq(b.labels).sum().item<std::int64_t>();
      const auto n = static_cast<std::int64_t>(rows.size());
      result.step_losses.push_back(loss_value);
      epoch_loss += loss_value * static_cast<double>(n);
      window_loss += loss_value * static_cast<double>(n);
      epoch_correct += correct;
      window_correct += correct;
      epoch_seen += n;
      window_seen += n;
      window_tokens += b.tokens;
      ++step;
      ++batch_index;

      const bool log_now = !log.is_tty() && step % t.log_every == 0;
      if (log.is_tty() || log_now) {
        const double elapsed = std::max(1e-9, seconds_since(window_start));
        std::ostringstream progress;
        const auto done = static_cast<double>(batch_index) / static_cast<double>(batches.size());
        if (log.is_tty()) {
          const int width = 24, filled = static_cast<int>(done * width);
          progress << "[" << std::string(static_cast<std::size_t>(filled), '#')
                   << std::string(static_cast<std::size_t>(width - filled), '.') << "] ";
        }
        progress << "epoch " << epoch + 1 << "/" << t.epochs << " step " << step << "/" << total_steps << "  loss "
                 << fixed(window_loss / static_cast<double>(window_seen), 4) << "  acc "
                 << fixed(100.0 * static_cast<double>(window_correct) / static_cast<double>(window_seen), 1) << "%  "
                 << fixed(static_cast<double>(window_seen) / elapsed, 0) << " sent/s "
                 << fixed(static_cast<double>(window_tokens) / elapsed, 0) << " tok/s  lr " << std::scientific
                 << std::setprecision(2) << lr << std::defaultfloat << "  " << fixed(seconds_since(start), 0) << " s";
        if (log_now) {
          log.line(progress.str());
        } else {
          log.bar(progress.str());
        }
        if (log_now || elapsed > 10) {
          window_loss = 0;
          window_correct = window_seen = window_tokens = 0;
          window_start = clock_type::now();
        }
      }
      const bool epoch_end = batch_index == static_cast<std::int64_t>(batches.size()) || step == total_steps;
      if (epoch_end || (t.eval_every > 0 && step % t.eval_every == 0)) {
        run_evaluation(step, static_cast<double>(epoch) + static_cast<double>(batch_index) / static_cast<double>(batches.size()),
                       epoch_loss / static_cast<double>(epoch_seen),
                       static_cast<double>(epoch_correct) / static_cast<double>(epoch_seen));
      }
    }
    log.line("epoch " + std::to_string(epoch + 1) + " done: train loss " +
             fixed(epoch_loss / static_cast<double>(std::max<std::int64_t>(1, epoch_seen)), 4) + ", train accuracy " +
             fixed(100.0 * static_cast<double>(epoch_correct) / static_cast<double>(std::max<std::int64_t>(1, epoch_seen)), 2) +
             "%, " + fixed(seconds_since(start), 0) + " s");
  }
  result.steps = step;
  result.seconds = seconds_since(start);

  // The best checkpoint, as a Hugging Face folder.
  model_config.write_json(out_dir / "config.json");
  const auto weight_bytes = write_weights(best_state, out_dir / "model.safetensors");
  if (!resolved.IsNull()) write_text(out_dir / "train_config.yaml", to_yaml_text(resolved));

  nlohmann::ordered_json m;
  m["name"] = c.name;
  m["best"] = {{"dev_accuracy", result.best_dev_accuracy}, {"step", result.best_step}, {"epoch", result.best_epoch}};
  m["dev_sentences"] = dev.size();
  m["train_sentences"] = train.size();
  m["train_tokens"] = train_tokens;
  m["train_unknown_tokens"] = unknown;
  m["vocab_size"] = tokenizer.vocab_size();
  m["parameters"] = parameters;
  m["model_safetensors_bytes"] = weight_bytes;
  m["steps"] = result.steps;
  m["total_steps"] = total_steps;
  m["warmup_steps"] = warmup_steps;
  m["train_seconds"] = train_seconds;
  m["eval_seconds"] = eval_seconds;
  m["wall_seconds"] = result.seconds;
  m["cpu_seconds"] = process_cpu_seconds() - cpu_start;
  m["threads"] = c.threads;
  m["seed"] = c.seed;
  m["model"] = model_config.to_json();
  m["evaluations"] = evaluations;
  m["environment"] = {{"qexp", version_string()}, {"libtorch", torch_version_string()}};
  write_text(out_dir / "metrics.json", m.dump(2) + "\n");
  result.metrics = m;
  log.line("done: best dev accuracy " + fixed(100 * result.best_dev_accuracy, 2) + "% at step " +
           std::to_string(result.best_step) + "; " + std::to_string(result.steps) + " steps in " +
           fixed(result.seconds, 0) + " s (" + fixed(process_cpu_seconds() - cpu_start, 0) + " s of CPU); model written to " + out_dir.string() + " (" + with_thousands(static_cast<double>(weight_bytes)) +
           " bytes of weights)");
  return result;
}

}  // namespace qexp
