// The error kinds qexp reports. Each maps to one exit code of the CLI and is printed as one
// line that names the file, key, tensor or byte offset involved and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace qexp {

enum class exit_code : int {
  ok = 0,
  runtime_failure = 1,   // a measurement or computation failed
  usage = 2,             // bad command line
  config_error = 3,      // the experiment YAML or a --set override
  input_error = 4,       // checkpoints, vocabularies, datasets, input text
  plugin_error = 5,      // loading, validating or running a plugin
};

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual exit_code code() const { return exit_code::runtime_failure; }
};

class config_error : public error {
 public:
  using error::error;
  exit_code code() const override { return exit_code::config_error; }
};

// A model folder, weight file, vocabulary, dataset or text that cannot be read as expected.
class input_error : public error {
 public:
  using error::error;
  exit_code code() const override { return exit_code::input_error; }
};

// Checkpoint files are inputs too; the separate name keeps call sites self-describing.
class checkpoint_error : public input_error {
 public:
  using input_error::input_error;
};

class plugin_error : public error {
 public:
  using error::error;
  exit_code code() const override { return exit_code::plugin_error; }
};

}  // namespace qexp
