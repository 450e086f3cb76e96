// `qexp predict`: classifies one text per stdin line with a model folder and prints the label,
// the probabilities and the logits (as text or as one JSON object per line).
#include <ATen/ATen.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli.h"
#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/layer_selection.h"
#include "qexp/quantized_checkpoint.h"
#include "qexp/recipe.h"
#include "qexp/tokenizer.h"

namespace {

struct predict_options {
  std::string model;
  std::string checkpoint;            // a quantized checkpoint: the weights, with --model's vocabulary
  bool json = false;
  std::size_t max_length = 512;
  std::string quantizer;             // plugin id; empty: the float model
  std::vector<std::string> options;  // plugin options as key=value
  qexp::layer_selection layers;
};

std::map<std::string, std::string> parse_options(const std::vector<std::string>& assignments) {
  std::map<std::string, std::string> out;
  for (const auto& a : assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) throw qexp::config_error("--set " + a + ": expected option=value");
    out[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return out;
}

// The model to run: the float model folder, a quantized checkpoint (rebuilt from its own
// per-site records), or the float model quantized here with one plugin, as `qexp run` would.
qexp::distilbert_classifier load_model(const predict_options& o) {
  if (!o.options.empty() && o.quantizer.empty()) throw qexp::config_error("--set needs --quantizer");
  if (!o.checkpoint.empty()) {
    if (!o.quantizer.empty()) throw qexp::config_error("--checkpoint is already quantized; drop --quantizer");
    return qexp::load_quantized_checkpoint(o.checkpoint, qexp::cli::discover_plugins());
  }
  auto model = qexp::distilbert_classifier::from_folder(o.model);
  if (o.quantizer.empty()) return model;
  const auto plugins = qexp::cli::discover_plugins();
  const auto recipe = qexp::single_rule_recipe(o.quantizer, parse_options(o.options), o.layers, "--quantizer " + o.quantizer);
  // Calibrating plugins need a calibration set, which `qexp run` draws from its config.
  return qexp::apply_recipe(model, recipe, plugins).model;
}

std::vector<double> to_vector(const at::Tensor& t) {
  auto contiguous = t.to(at::kDouble).contiguous();
  const double* p = contiguous.data_ptr<double>();
  return std::vector<double>(p, p + contiguous.numel());
}

int run_predict(const predict_options& o) {
  auto model = load_model(o);
  const auto tokenizer = qexp::wordpiece_tokenizer::from_model_folder(o.model);
  const auto& labels = model.config().id2label;
  const std::string source = o.checkpoint.empty() ? "model " + o.model : "checkpoint " + o.checkpoint;
  std::string line;
  for (std::size_t line_number = 1; std::getline(std::cin, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto ids = tokenizer.encode_ids(line, o.max_length);
    const auto input = at::tensor(ids, at::kLong).view({1, -1});
    const at::Tensor logits = model.forward(input, at::ones_like(input))[0];
    if (!at::isfinite(logits).all().item<bool>())
      throw qexp::checkpoint_error(source + (o.quantizer.empty() ? "" : " quantized by " + o.quantizer) +
                                   ": logits of input line " + std::to_string(line_number) +
                                   " are not finite (NaN or inf); expected finite weights");
    const auto probabilities = to_vector(at::softmax(logits, 0));
    const auto logit_values = to_vector(logits);
    const auto best = static_cast<std::size_t>(logits.argmax().item<std::int64_t>());
    if (o.json) {
      nlohmann::ordered_json record = {{"text", line},
                               {"label", labels[best]},
                               {"label_id", best},
                               {"probabilities", probabilities},
                               {"logits", logit_values}};
      // Invalid UTF-8 in the input must not abort the run: replace it in the echoed text.
      std::cout << record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::ostringstream row;
      row << labels[best] << "\t" << std::fixed << std::setprecision(6);
      for (std::size_t i = 0; i < labels.size(); ++i)
        row << (i ? " " : "") << labels[i] << "=" << probabilities[i];
      row << "\tlogits=[";
      for (std::size_t i = 0; i < logit_values.size(); ++i) row << (i ? ", " : "") << logit_values[i];
      row << "]\t" << line;
      std::cout << row.str() << "\n";
    }
    qexp::cli::check_stdout();
  }
  return 0;
}

}  // namespace

QEXP_COMMAND("predict", "Classify text lines from stdin with a model folder",
             [](CLI::App& cmd, std::function<int()>& run) {
               auto o = std::make_shared<predict_options>();
               cmd.add_option("--model", o->model,
                              "Model folder: config.json, model.safetensors or pytorch_model.bin, "
                              "vocab.txt (with --checkpoint: only its vocab.txt is read)")
                   ->required();
               cmd.add_option("--checkpoint", o->checkpoint,
                              "A quantized checkpoint written by `qexp run` (checkpoint-N.safetensors): "
                              "its sites are rebuilt with the plugins it names");
               cmd.add_flag("--json", o->json, "One JSON object per line");
               cmd.add_option("--max-length", o->max_length,
                              "Truncate to this many tokens, [CLS] and [SEP] included")
                   ->capture_default_str()
                   ->check(CLI::Range(2, 512));
               cmd.add_option("--quantizer", o->quantizer,
                              "Quantize the model's sites (Linears and/or embedding tables, as the plugin "
                              "handles) with this plugin first");
               cmd.add_option("--set", o->options, "A plugin option: name=value (repeatable)");
               cmd.add_option("--include", o->layers.include, "Layer globs to quantize (default: all)");
               cmd.add_option("--exclude", o->layers.exclude, "Layer globs kept in fp32, e.g. '*classifier'");
               run = [o] { return run_predict(*o); };
             });
