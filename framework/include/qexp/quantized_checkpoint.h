// A quantized model on disk: one safetensors file with the tensors of no site (LayerNorms), each
// site as its packed_linear or packed_table saved it (float sites included), and metadata naming,
// per quantized site, the plugin, its version and options, plus the model config. Its size is the
// size metric of an experiment; loading it back needs the plugins but neither the float model nor
// the recipe, and gives bit-identical outputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qexp/distilbert.h"
#include "qexp/plugin_registry.h"
#include "qexp/recipe.h"

namespace qexp {

struct checkpoint_size {
  std::uint64_t file_bytes = 0;
  // Bytes per kind of tensor: embeddings, linear_weights, linear_scales, linear_bias, other
  // (LayerNorms), header (the JSON header and its padding).
  std::map<std::string, std::uint64_t> breakdown;
};

// Writes `model` to `file`; `sites` are its quantized sites (the others are saved as floats).
checkpoint_size save_quantized_checkpoint(const distilbert_classifier& model, const std::vector<site_record>& sites,
                                          const std::filesystem::path& file);

// Rebuilds the model from `file` with the plugins named in its metadata (format
// qexp.quantized/2, or /1: one plugin for every quantized Linear). float_layer() and
// float_table() of a quantized site are then its dequantized weights. Throws checkpoint_error /
// plugin_error.
distilbert_classifier load_quantized_checkpoint(const std::filesystem::path& file, const plugin_registry& plugins,
                                                std::vector<site_record>* sites = nullptr);

}  // namespace qexp
