// `qexp init-model`: writes a randomly initialised DistilBERT checkpoint folder (config.json,
// model.safetensors, vocab.txt, tokenizer_config.json) that every other command can load like a
// Hugging Face download. Used for latency work on the full-size shape and for tests.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "qexp/config_schema.h"
#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"

namespace {

namespace fs = std::filesystem;

struct init_model_options {
  std::string preset;
  std::uint64_t seed = 0;
  std::string out;
  std::string vocab;
};

fs::path find_vocab(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    qexp::require_regular_file(explicit_path, "--vocab");
    return explicit_path;
  }
  const fs::path relative = fs::path("distilbert-base-uncased") / "vocab.txt";
  std::string searched;
  // $QEXP_DATA_PATH, or when unset ../shared/data from the current folder (no config here).
  for (const auto& dir : qexp::default_data_search_path({})) {
    if (fs::is_regular_file(dir / relative)) return dir / relative;
    searched += (searched.empty() ? "" : ", ") + (dir / relative).string();
  }
  throw qexp::input_error("no vocabulary found (searched " +
                          (searched.empty() ? std::string("nothing: QEXP_DATA_PATH is unset and "
                                                          "../shared/data does not exist")
                                            : searched) +
                          "); pass --vocab PATH");
}

std::int64_t count_lines(const fs::path& file) {
  std::istringstream in(qexp::read_regular_file(file, "vocabulary"));
  std::int64_t lines = 0;
  std::string line;
  while (std::getline(in, line)) ++lines;
  return lines;
}

int run_init_model(const init_model_options& o) {
  const auto config = qexp::distilbert_config::preset(o.preset);
  const fs::path vocab = find_vocab(o.vocab);
  const auto vocab_lines = count_lines(vocab);
  if (vocab_lines > config.vocab_size)
    throw qexp::input_error(vocab.string() + ": " + std::to_string(vocab_lines) +
                            " tokens, more than the preset's vocab_size " +
                            std::to_string(config.vocab_size));

  const fs::path out(o.out);
  auto model = qexp::distilbert_classifier::random(config, o.seed);
  model.save_float(out);
  fs::copy_file(vocab, out / "vocab.txt", fs::copy_options::overwrite_existing);
  const nlohmann::json tokenizer_config = {
      {"do_lower_case", true},     {"tokenizer_class", "DistilBertTokenizer"},
      {"model_max_length", 512},   {"cls_token", "[CLS]"},
      {"sep_token", "[SEP]"},      {"pad_token", "[PAD]"},
      {"unk_token", "[UNK]"},      {"mask_token", "[MASK]"},
      {"strip_accents", nullptr},  {"tokenize_chinese_chars", true}};
  std::ofstream(out / "tokenizer_config.json") << tokenizer_config.dump(2) << "\n";

  std::int64_t parameters = 0;
  for (const auto& name : model.linear_names()) {
    const auto l = model.float_layer(name);
    parameters += l.weight.numel() + l.bias.numel();
  }
  for (const auto& t : model.non_linear_tensors()) parameters += t.second.numel();
  std::cout << "wrote " << out.string() << ": " << o.preset << ", seed " << o.seed << ", "
            << parameters << " parameters, model.safetensors "
            << fs::file_size(out / "model.safetensors") << " bytes, vocab from " << vocab.string()
            << "\n";
  return 0;
}

}  // namespace

QEXP_COMMAND("init-model", "Write a randomly initialised DistilBERT checkpoint folder",
             [](CLI::App& cmd, std::function<int()>& run) {
               auto o = std::make_shared<init_model_options>();
               cmd.add_option("--preset", o->preset, "Model shape")
                   ->required()
                   ->check(CLI::IsMember(qexp::distilbert_config::preset_names()));
               cmd.add_option("--seed", o->seed, "Random seed (same seed, same weights)")
                   ->capture_default_str()
                   ->check(CLI::Validator(
                       [](std::string& value) {
                         // CLI11 would wrap "-1" round to 2^64 - 1 for an unsigned option.
                         return !value.empty() && value[0] == '-' ? "expected an integer >= 0, got " + value
                                                                  : std::string();
                       },
                       "UINT64"));
               cmd.add_option("--out", o->out, "Folder to write")->required();
               cmd.add_option("--vocab", o->vocab,
                              "vocab.txt to copy (default: distilbert-base-uncased/vocab.txt on "
                              "QEXP_DATA_PATH, else ../shared/data)");
               run = [o] { return run_init_model(*o); };
             });
