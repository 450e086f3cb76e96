// The `train` experiment kind: trains the qexp DistilBERT from scratch and writes a Hugging Face
// style model folder (see trainer.h). `qexp train CONFIG` and `qexp run CONFIG` both run it.
#include <filesystem>

#include "experiment.h"
#include "qexp/errors.h"
#include "train_config.h"
#include "trainer.h"

namespace qexp {
namespace {

// Paths were checked by the schema and the cross-key checks run at load time: nothing more.
std::string validate_train(const YAML::Node&, const config_source&, const plugin_registry&) { return ""; }

const experiment_kind_registration train_kind({
    "train",
    "train the qexp DistilBERT from scratch on a labelled TSV and write a Hugging Face model folder",
    train_schema,
    [](const YAML::Node& resolved, const config_source& source) { train_config_from(resolved, source); },
    validate_train,
    [](const YAML::Node& resolved, const config_source& source, const run_request& request) {
      const train_config config = train_config_from(resolved, source);
      // For training, --out names the model folder itself (there is one result: the model).
      const std::filesystem::path out = request.out_root.empty() ? std::filesystem::path(config.output_dir)
                                                                 : request.out_root;
      run_training(config, out, resolved);
      return 0;
    },
});

}  // namespace
}  // namespace qexp
