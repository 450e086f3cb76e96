// The qexp plugin ABI: the one header a quantizer plugin compiles against.
//
// A plugin is a shared library exporting one C symbol, `qexp_plugin_entry`, that returns a
// `qexp_plugin_info`. The host reads `api_version` first and touches nothing else when it
// differs; then it compares the torch version and the C++ ABI the plugin was built with, since
// at::Tensor and std::string cross this seam. Bump QEXP_PLUGIN_API_VERSION on any change to the
// types below.
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

#define QEXP_PLUGIN_API_VERSION 1u
#define QEXP_PLUGIN_ENTRY_SYMBOL "qexp_plugin_entry"

namespace qexp {

// One Linear layer as the model holds it: y = x W^T + b.
struct layer {
  std::string name;   // Hugging Face module name, e.g. "distilbert.transformer.layer.0.ffn.lin1"
  at::Tensor weight;  // [out_features, in_features], float32, contiguous, CPU
  at::Tensor bias;    // [out_features] float32, or undefined when the layer has none
};

// Where a prepared Linear writes its quantized checkpoint (a safetensors file in practice).
class tensor_writer {
 public:
  virtual ~tensor_writer() = default;
  // Tensors must be CPU; dtypes float32, float16, int8, uint8, int32, int64.
  virtual void add_tensor(const std::string& name, const at::Tensor& tensor) = 0;
};

// Read side of tensor_writer, used to rebuild a prepared Linear without the float model.
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
};

// A quantization scheme with its options bound; prepares Linear layers one at a time.
class linear_quantizer {
 public:
  virtual ~linear_quantizer() = default;
  virtual std::unique_ptr<packed_linear> prepare(const layer& l) const = 0;
  // Rebuilds what `save` wrote under `prefix`; must give bit-identical outputs.
  virtual std::unique_ptr<packed_linear> load(const tensor_reader& in,
                                              const std::string& prefix) const = 0;
  // Calibration seam for static schemes: the host feeds each layer's float inputs here before
  // `prepare` when this returns true. Dynamic schemes keep the defaults.
  virtual bool wants_calibration() const { return false; }
  virtual void observe(const std::string& /*layer_name*/, const at::Tensor& /*input*/) {}
};

enum class option_type : std::uint32_t { boolean, integer, number, string, choice };

// A typed plugin option: `qexp plugins` prints these and the host validates YAML against them.
struct option_spec {
  const char* name;
  option_type type;
  const char* default_value;  // canonical text: "true", "8", "0.5", "per_channel"
  const char* help;
  const char* choices;        // for option_type::choice: "per_tensor|per_channel"; else nullptr
};

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
  // Returns a new quantizer, or nullptr with *error set. The host owns the result.
  qexp::linear_quantizer* (*create)(const qexp::option_values& options, std::string* error);
};

typedef const qexp_plugin_info* (*qexp_plugin_entry_fn)();
}

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define QEXP_CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#else
#define QEXP_CXX11_ABI -1
#endif

// Defines the entry point. Use once per plugin, in plugin.cpp:
//   QEXP_PLUGIN("my-quant", "1.0.0", "what it does", my_options, my_supported, my_create)
#define QEXP_PLUGIN(ID, VERSION, SUMMARY, OPTIONS, SUPPORTED, CREATE)                          \
  extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() { \
    static const qexp_plugin_info info = {                                                      \
        QEXP_PLUGIN_API_VERSION, ID, VERSION, SUMMARY, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, \
        QEXP_CXX11_ABI, OPTIONS, sizeof(OPTIONS) / sizeof((OPTIONS)[0]), SUPPORTED, CREATE};     \
    return &info;                                                                               \
  }
