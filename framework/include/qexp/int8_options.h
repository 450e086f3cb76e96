// The options INT8 Linear plugins have in common, declared once: the same key, spellings, help
// and meaning in dynamic-int8, onednn-int8 and static-int8 (each keeps its own default), and the
// one reader of each into the enum the plugins share. A plugin lists the declaration in its
// `options` table:
//
//   const option_spec options[] = {int8_options::weight_granularity("per_channel"), ...};
//   s.weights = int8_options::read_weight_granularity(values);
//
// Like plugin_helpers.h: inline, over plugin_api.h's types, not part of the ABI.
#pragma once

#include "qexp/plugin_api.h"
#include "qexp/plugin_helpers.h"

namespace qexp {

// Scales of symmetric s8 weights ([-127, 127]): one for the whole [out, in] tensor, or one per
// output channel (row).
enum class weight_granularity { per_tensor, per_channel };
// Activation scale (and zero point): one per call, or one per row (token) of the input.
enum class activation_granularity { per_tensor, per_token };
// Activation codes: u8 asymmetric with a zero point (256 levels), or s8 symmetric (255 levels).
enum class activation_type { u8, s8 };

namespace int8_options {

inline constexpr const char* weight_granularity_help =
    "Weight scales: one per tensor or one per output channel (symmetric s8, codes in [-127, 127])";
inline constexpr const char* activation_granularity_help =
    "Activation scale (and zero point): one per call or one per row (token)";
inline constexpr const char* activation_type_help =
    "u8: asymmetric with a zero point (256 levels); s8: symmetric, no zero point (255 levels)";

// `granularity: per_tensor | per_channel`
constexpr option_spec weight_granularity(const char* default_value, const char* help = weight_granularity_help) {
  return {"granularity", option_type::choice, default_value, help, "per_tensor|per_channel"};
}
// `activation_granularity: per_tensor | per_token`
constexpr option_spec activation_granularity(const char* default_value,
                                             const char* help = activation_granularity_help) {
  return {"activation_granularity", option_type::choice, default_value, help, "per_tensor|per_token"};
}
// `activation_type: u8 | s8`
constexpr option_spec activation_type(const char* default_value, const char* help = activation_type_help) {
  return {"activation_type", option_type::choice, default_value, help, "u8|s8"};
}

// The readers: the host has validated the value against the declaration above.
inline qexp::weight_granularity read_weight_granularity(const option_values& values) {
  static const option_spec spec[1] = {weight_granularity("")};
  return get_choice(values, spec, spec[0].name,
                    {qexp::weight_granularity::per_tensor, qexp::weight_granularity::per_channel});
}
inline qexp::activation_granularity read_activation_granularity(const option_values& values) {
  static const option_spec spec[1] = {activation_granularity("")};
  return get_choice(values, spec, spec[0].name,
                    {qexp::activation_granularity::per_tensor, qexp::activation_granularity::per_token});
}
inline qexp::activation_type read_activation_type(const option_values& values) {
  static const option_spec spec[1] = {activation_type("")};
  return get_choice(values, spec, spec[0].name, {qexp::activation_type::u8, qexp::activation_type::s8});
}

}  // namespace int8_options
}  // namespace qexp
