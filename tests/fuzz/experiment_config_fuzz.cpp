// Fuzzes the experiment config loader (experiments/experiment.cpp load_experiment, with
// framework/src/config_schema.cpp and each kind's typed view, e.g. experiments/ptq_config.cpp):
// YAML text, --set overrides, the kind's schema, defaults, paths and cross-key checks; never a run.
// Input: the YAML file; after a line "#--set" (a YAML comment), each line is one --set override.
// The file sits in configs/ of a scratch folder that holds the model folders the shipped configs
// name and the data files (QEXP_DATA_PATH), so valid configs resolve all the way.
// A config is accepted or refused with a qexp::error (config_error, README: exit 3); an accepted
// one printed (to_yaml_text, what --dry-run shows) must load again to the same document.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "experiment.h"
#include "fuzz_support.h"

namespace {

struct fixture {
  std::filesystem::path config, reprinted;
  fixture() {
    namespace fs = std::filesystem;
    const fs::path root = qexp::fuzz::scratch_dir();
    const std::string model_json =
        R"({"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "vocab_size": 100, "max_position_embeddings": 64})";
    for (const char* model : {"models/distilbert-sst2-tiny", "models/distilbert-base-random", "model",
                              "assets/distilbert-base-uncased-finetuned-sst-2-english"}) {
      fs::create_directories(root / model);
      qexp::fuzz::write_file(root / model / "config.json", model_json);
      qexp::fuzz::write_file(root / model / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n");
    }
    fs::create_directories(root / "data" / "sst2");
    for (const char* tsv : {"dev.tsv", "train.tsv"})
      qexp::fuzz::write_file(root / "data" / "sst2" / tsv, "sentence\tlabel\na fine film\t1\n");
    fs::create_directories(root / "configs");
    setenv("QEXP_DATA_PATH", (root / "data").c_str(), 1);
    config = root / "configs" / "x.yaml";
    reprinted = root / "configs" / "reprinted.yaml";
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fixture f;
  const std::string input(qexp::fuzz::as_text(data, size));
  static const std::string marker = "\n#--set\n";
  const auto split = input.find(marker);
  std::vector<std::string> overrides;
  if (split != std::string::npos) {
    std::size_t start = split + marker.size();
    while (start < input.size()) {
      const auto end = input.find('\n', start);
      overrides.push_back(input.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  qexp::fuzz::write_file(f.config, std::string_view(input).substr(0, split));
  qexp::fuzz::expect_only_qexp_errors([&] {
    qexp::loaded_experiment first;
    try {
      first = qexp::load_experiment(f.config, overrides);
    } catch (const qexp::error&) {
      return;  // refused, as documented
    }
    const std::string printed = qexp::to_yaml_text(first.resolved);
    qexp::fuzz::write_file(f.reprinted, printed);
    qexp::loaded_experiment second;
    try {
      second = qexp::load_experiment(f.reprinted, {});
    } catch (const qexp::error& e) {
      qexp::fuzz::property_failed("the printed resolved config does not load again", std::string(e.what()) + "\n" + printed);
    }
    const std::string reprinted = qexp::to_yaml_text(second.resolved);
    if (reprinted != printed)
      qexp::fuzz::property_failed("the printed resolved config loads to another document", printed + "---\n" + reprinted);
  });
  return 0;
}
