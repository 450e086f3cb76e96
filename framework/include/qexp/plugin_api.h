// The qexp plugin ABI: the one header a quantizer plugin compiles against.
//
// A plugin is a shared library exporting one C symbol, `qexp_plugin_entry`, that returns a
// `qexp_plugin_info`. The host reads `api_version` first and touches nothing else when it
// differs; then it compares the torch version and the C++ ABI the plugin was built with, since
// at::Tensor and std::string cross this seam. Bump QEXP_PLUGIN_API_VERSION on any change to the
// types below.
//
// What crosses the seam (docs/writing-a-plugin.md walks through it):
// - sites: every Linear of the model (`layer`) and the embedding tables (`table`). A config's
//   recipe gives each site to at most one plugin; the others stay fp32.
// - `linear_quantizer` prepares Linears, `table_quantizer` prepares tables; a plugin offers
//   either or both (`create_linear`, `create_table`).
// - calibration, run by the host: `begin` tells a quantizer its sites grouped by shared input
//   and the experiment's seed; when `wants_calibration()` the host feeds the real-token input
//   rows of each site (`observe`), then `finish_calibration`, then `prepare`.
// - conformance metadata: each plugin declares its own error budgets and the option sets worth
//   testing, so `qexp check-plugin` can judge any plugin, in tree or not.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/version.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#define QEXP_PLUGIN_API_VERSION 3u
#define QEXP_PLUGIN_ENTRY_SYMBOL "qexp_plugin_entry"

namespace qexp {

// One Linear layer as the model holds it: y = x W^T + b.
struct layer {
  std::string name;   // Hugging Face module name, e.g. "distilbert.transformer.layer.0.ffn.lin1"
  at::Tensor weight;  // [out_features, in_features], float32, contiguous, CPU
  at::Tensor bias;    // [out_features] float32, or undefined when the layer has none
};

// One embedding table as the model holds it: row i is the vector of token (or position) i.
struct table {
  std::string name;   // "distilbert.embeddings.word_embeddings" or "...position_embeddings"
  at::Tensor weight;  // [rows, dim], float32, contiguous, CPU
};

// Where a prepared site writes its quantized checkpoint (a safetensors file in practice).
class tensor_writer {
 public:
  virtual ~tensor_writer() = default;
  // Tensors must be CPU; dtypes float32, float16, int8, uint8, int32, int64.
  virtual void add_tensor(const std::string& name, const at::Tensor& tensor) = 0;
};

// Read side of tensor_writer, used to rebuild a prepared site without the float model.
class tensor_reader {
 public:
  virtual ~tensor_reader() = default;
  virtual bool has_tensor(const std::string& name) const = 0;
  // Throws qexp::checkpoint_error naming the file and tensor when it is absent.
  virtual at::Tensor tensor(const std::string& name) const = 0;
};

// One Linear with its weights prepared once (quantized, packed) and applied many times.
class packed_linear {
 public:
  virtual ~packed_linear() = default;
  // x: [..., in_features] float32 contiguous -> [..., out_features] float32.
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // Bytes this layer really stores for inference: packed weights, scales, bias.
  virtual std::size_t packed_bytes() const = 0;
  // The weight this layer effectively multiplies by, [out, in] float32, for error analysis.
  virtual at::Tensor dequantized_weight() const = 0;
  // Writes every tensor `load` needs, each named "<prefix>.<something>".
  virtual void save(tensor_writer& out, const std::string& prefix) const = 0;
  // True when each output row depends on its own input row only: no statistic is taken across
  // the rows of a call (a per-tensor dynamic activation range is one). The model then runs the
  // last block's out_lin, lin1 and lin2 on the [CLS] rows alone, the only ones the classifier
  // reads, when all three say so; the conformance suite checks the claim (each row alone gives
  // its row of the whole call). False unless a plugin says otherwise.
  virtual bool rows_independent() const { return false; }
};

// One embedding table prepared once and looked up many times.
class packed_table {
 public:
  virtual ~packed_table() = default;
  // ids: int64 [n], each in [0, rows) -> [n, dim] float32 contiguous.
  virtual at::Tensor lookup(const at::Tensor& ids) = 0;
  // Bytes this table really stores for inference.
  virtual std::size_t packed_bytes() const = 0;
  // The table lookup() reads from, [rows, dim] float32, for error analysis.
  virtual at::Tensor dequantized_table() const = 0;
  // Writes every tensor `load` needs, each named "<prefix>.<something>".
  virtual void save(tensor_writer& out, const std::string& prefix) const = 0;
};

// Linears that read the same input tensor: q, k and v of a block; out_lin; ffn.lin1; ffn.lin2;
// pre_classifier; classifier. A scheme may share one activation scale or one smoothing vector
// per group.
struct input_group {
  std::string name;            // e.g. "distilbert.transformer.layer.0.attention.qkv"
  std::vector<layer> members;  // the float layers of this group given to this quantizer, model order
};

// What the host tells a linear_quantizer before calibration and prepare.
struct quantizer_context {
  std::uint64_t seed = 0;            // the experiment's seed: use it for anything random
  std::vector<input_group> groups;   // every site this quantizer will prepare, in model order
};

// A quantization scheme for Linears with its options bound. The host calls, in order: `begin`
// once; if `wants_calibration()`, `observe` for each calibration batch and site, then
// `finish_calibration` for the sites whose data is complete; then `prepare` for each of those
// sites. In calibration mode `sequential` the last three steps repeat block by block, and each
// block's inputs come from the blocks already quantized. `load` may be called on a quantizer
// that never saw `begin` (a checkpoint read in a later process).
class linear_quantizer {
 public:
  virtual ~linear_quantizer() = default;
  virtual void begin(const quantizer_context& /*context*/) {}
  // True when `prepare` needs calibration data; the host fails before measuring anything when a
  // config gives such a quantizer none.
  virtual bool wants_calibration() const { return false; }
  // rows: [tokens, in_features] float32, the real (non-padding) token rows of one calibration
  // batch as they enter `site`. The tensor stays valid after the call.
  virtual void observe(const std::string& /*site*/, const at::Tensor& /*rows*/) {}
  // No more observe() calls will come for these sites.
  virtual void finish_calibration(const std::vector<std::string>& /*sites*/) {}
  virtual std::unique_ptr<packed_linear> prepare(const layer& l) = 0;
  // Rebuilds what `save` wrote under `prefix`; must give bit-identical outputs.
  virtual std::unique_ptr<packed_linear> load(const tensor_reader& in, const std::string& prefix) const = 0;
};

// A quantization scheme for embedding tables with its options bound.
class table_quantizer {
 public:
  virtual ~table_quantizer() = default;
  virtual std::unique_ptr<packed_table> prepare(const table& t) = 0;
  // Rebuilds what `save` wrote under `prefix`; must give bit-identical lookups.
  virtual std::unique_ptr<packed_table> load(const tensor_reader& in, const std::string& prefix) const = 0;
};

enum class option_type : std::uint32_t { boolean, integer, number, string, choice, path };

// A typed plugin option: `qexp plugins` prints these and the host validates YAML against them.
struct option_spec {
  const char* name;
  option_type type;
  const char* default_value;  // canonical text: "true", "8", "0.5", "per_channel"; "" for no path
  const char* help;
  const char* choices = nullptr;  // for option_type::choice: "per_tensor|per_channel"
  // Inclusive bounds for integer and number options, as text ("0", "1.5"); nullptr: unbounded.
  const char* min = nullptr;
  const char* max = nullptr;
};
// A path option names an existing file or folder; the host resolves a relative path against the
// config file's folder (the current folder on the command line) and passes it absolute.

// Option values after the host validated them against the plugin's specs: every option the
// plugin declares is present, in canonical text, so the getters below cannot meet bad input.
class option_values {
 public:
  std::map<std::string, std::string> values;

  const std::string& get_string(const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end()) throw std::invalid_argument("option '" + name + "' was not resolved");
    return it->second;
  }
  bool get_bool(const std::string& name) const { return get_string(name) == "true"; }
  std::int64_t get_int(const std::string& name) const {
    return std::strtoll(get_string(name).c_str(), nullptr, 10);
  }
  double get_number(const std::string& name) const {
    return std::strtod(get_string(name).c_str(), nullptr);
  }
};

// What a plugin promises for given options, checked by the conformance suite (`qexp
// check-plugin`). Errors are normalised MSE (sum of squared errors over sum of squared reference
// values) on Gaussian data against a float64 reference. 0 for a byte figure: not declared, only
// "no more than float32" is checked.
struct conformance_budget {
  double output_nmse = 5e-2;       // packed_linear::forward against x W^T + b
  double weight_nmse = 5e-2;       // dequantized_weight() against the float weight
  double bytes_per_weight = 0;     // packed_bytes() is about out * in times this, plus extras
  double table_nmse = 5e-2;        // dequantized_table() and lookup() against the float table
  double bytes_per_entry = 0;      // packed_table::packed_bytes() over rows * dim
};

}  // namespace qexp

extern "C" {

// What `qexp_plugin_entry` returns. Plain data, so the host can check it field by field.
struct qexp_plugin_info {
  std::uint32_t api_version;  // QEXP_PLUGIN_API_VERSION; always first
  const char* id;             // kebab-case, unique across the search path: "dynamic-int8"
  const char* version;        // the plugin's own version: "1.0.0"
  const char* summary;        // one line for `qexp plugins`
  std::uint32_t torch_major;  // the C++ ABI fingerprint the plugin was built with
  std::uint32_t torch_minor;
  std::int32_t cxx11_abi;     // _GLIBCXX_USE_CXX11_ABI
  const qexp::option_spec* options;
  std::size_t n_options;
  // Non-zero when the plugin can run on this CPU; otherwise sets *reason to a static string.
  int (*supported)(const char** reason);
  // Factories; either may be null (not both). Each returns a new quantizer, or nullptr with
  // *error set. The host owns the result.
  qexp::linear_quantizer* (*create_linear)(const qexp::option_values& options, std::string* error) = nullptr;
  qexp::table_quantizer* (*create_table)(const qexp::option_values& options, std::string* error) = nullptr;
  // Conformance metadata, both optional. `budget` fills the promises for these options (the
  // defaults of conformance_budget when null). `variants` lists option sets worth testing beyond
  // the defaults and the single changes the suite derives from the specs, each as
  // "key=value,key=value"; the list ends with nullptr.
  void (*budget)(const qexp::option_values& options, qexp::conformance_budget* out) = nullptr;
  const char* const* variants = nullptr;
};

typedef const qexp_plugin_info* (*qexp_plugin_entry_fn)();
}

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define QEXP_CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#else
#define QEXP_CXX11_ABI -1
#endif

// Defines the entry point. Use once per plugin, in plugin.cpp. The fields after SUPPORTED are
// create_linear, create_table, budget and variants; those left out are null:
//   QEXP_PLUGIN("my-quant", "1.0.0", "what it does", my_options, my_supported, my_create)
//   QEXP_PLUGIN("my-table", "1.0.0", "...", my_options, my_supported, nullptr, my_create_table,
//               my_budget, my_variants)
#define QEXP_PLUGIN(ID, VERSION, SUMMARY, OPTIONS, SUPPORTED, ...)                                  \
  extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() { \
    static const qexp_plugin_info info = {                                                        \
        QEXP_PLUGIN_API_VERSION, ID, VERSION, SUMMARY, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR,   \
        QEXP_CXX11_ABI, OPTIONS, sizeof(OPTIONS) / sizeof((OPTIONS)[0]), SUPPORTED, __VA_ARGS__};  \
    return &info;                                                                                 \
  }
