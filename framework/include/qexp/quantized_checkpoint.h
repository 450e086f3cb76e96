// A quantized model on disk: one safetensors file with the non-Linear tensors, each Linear as its
// packed_linear saved it, and metadata naming the plugin, its version, options and the model
// config. Its size is the size metric of an experiment; loading it back needs the plugin but not
// the float model, and gives bit-identical outputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qexp/distilbert.h"
#include "qexp/plugin_registry.h"

namespace qexp {

struct quantized_checkpoint_info {
  std::string plugin;          // plugin id that prepared the quantized layers
  std::string plugin_version;
  std::map<std::string, std::string> options;
  std::vector<std::string> quantized_layers;
};

struct checkpoint_size {
  std::uint64_t file_bytes = 0;
  // Bytes per kind of tensor: embeddings, linear_weights, linear_scales, linear_bias, other
  // (LayerNorms), header (the JSON header and its padding).
  std::map<std::string, std::uint64_t> breakdown;
};

// Writes `model` (whose `info.quantized_layers` were prepared by `info.plugin`) to `file`.
checkpoint_size save_quantized_checkpoint(const distilbert_classifier& model, const quantized_checkpoint_info& info,
                                          const std::filesystem::path& file);

// Rebuilds the model from `file` with the plugin named in its metadata. float_layer() of a
// quantized layer is then its dequantized weight. Throws checkpoint_error / plugin_error.
distilbert_classifier load_quantized_checkpoint(const std::filesystem::path& file, const plugin_registry& plugins,
                                                quantized_checkpoint_info* info = nullptr);

}  // namespace qexp
