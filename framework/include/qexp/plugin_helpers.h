// Helpers for plugin code: reading a choice option into the plugin's own type, and the input
// checks every linear_quantizer::prepare, packed_linear::forward and packed_table::lookup make.
//
// Not part of the ABI: these are inline functions over the types plugin_api.h defines and change
// none of them, so using them (or changing them) needs no bump of QEXP_PLUGIN_API_VERSION. A
// plugin built against another qexp keeps its own copy; they call only libqexp's shape_text,
// which every plugin links.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "qexp/errors.h"
#include "qexp/plugin_api.h"
#include "qexp/text.h"

namespace qexp {

// The value of the choice option `name` as the plugin's own type. `in_choice_order` says what each
// spelling of the spec's `choices` means, in the order the spec lists them, so the spellings are
// written once, in the spec:
//
//   {"granularity", option_type::choice, "per_tensor", "...", "per_tensor|per_channel"}
//   s.weights = get_choice(values, options, "granularity",
//                          {weight_granularity::per_tensor, weight_granularity::per_channel});
//
// The host has validated the value against the spec before the plugin sees it, so nothing here
// re-validates user input: a name that is not a choice option of `specs`, a list whose length
// differs from the choices, or a value outside them is a bug in the plugin (std::logic_error),
// which the conformance suite meets on its first case.
template <typename T, std::size_t N>
T get_choice(const option_values& values, const option_spec (&specs)[N], const std::string& name,
             std::initializer_list<T> in_choice_order) {
  const option_spec* spec = nullptr;
  for (const option_spec& s : specs)
    if (name == s.name) spec = &s;
  if (!spec || spec->type != option_type::choice || !spec->choices)
    throw std::logic_error("get_choice: '" + name + "' is not a choice option of this plugin");
  const std::string& value = values.get_string(name);
  const std::string choices = spec->choices;
  std::size_t index = 0, found = in_choice_order.size(), start = 0;
  for (;; ++index) {
    const std::size_t bar = choices.find('|', start);
    if (choices.compare(start, bar == std::string::npos ? std::string::npos : bar - start, value) == 0) found = index;
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  if (index + 1 != in_choice_order.size())
    throw std::logic_error("get_choice: option '" + name + "' has the choices " + choices + " but the plugin maps " +
                           std::to_string(in_choice_order.size()));
  if (found == in_choice_order.size())
    throw std::logic_error("get_choice: option '" + name + "' is '" + value + "', not one of " + choices);
  return *(in_choice_order.begin() + found);
}

// What linear_quantizer::prepare checks of the float layer it is given: a 2-D [out, in] weight and
// a bias of [out] or none; with `require_finite`, no NaN or Inf in either (it would become a NaN
// scale and finite garbage codes). Messages name the plugin and the Linear.
inline void check_layer(const layer& l, const std::string& plugin, bool require_finite) {
  const std::string who = plugin + ": Linear '" + l.name + "'";
  if (!l.weight.defined() || l.weight.dim() != 2) throw input_error(who + ": weight must be a 2-D [out, in] tensor");
  const std::int64_t n = l.weight.size(0);
  if (l.bias.defined() && (l.bias.dim() != 1 || l.bias.size(0) != n))
    throw input_error(who + ": bias must have " + std::to_string(n) + " elements, found " +
                      std::string(c10::toString(l.bias.scalar_type())) + " " + shape_text(l.bias.sizes()));
  if (!require_finite) return;
  if (l.weight.numel() > 0 && !l.weight.isfinite().all().item<bool>())
    throw input_error(who + ": the weight holds NaN or Inf; it cannot be quantized");
  if (l.bias.defined() && l.bias.numel() > 0 && !l.bias.isfinite().all().item<bool>())
    throw input_error(who + ": the bias holds NaN or Inf");
}

// What packed_linear::forward checks before anything else: `x` is [..., in_features]. A wrong
// width is an input error (exit code 4) in every Linear, plugin or float, with one message:
// "<who>: input has 41 features in its last dimension; the layer expects 40".
inline void check_input_width(const at::Tensor& x, std::int64_t in_features, const std::string& who) {
  const std::int64_t width = x.dim() < 1 ? 0 : x.size(-1);
  if (x.dim() < 1 || width != in_features)
    throw input_error(who + ": input has " + std::to_string(width) + " features in its last dimension; the layer expects " +
                      std::to_string(in_features));
}

// What every Linear's forward starts with: `x` ([..., in_features], checked by check_input_width)
// as the contiguous float [m, in_features] matrix the kernels read, and the shape the [m,
// out_features] result is viewed back to (x's, with out_features last).
struct linear_input {
  at::Tensor rows;
  std::vector<std::int64_t> out_shape;
  std::int64_t m() const { return rows.size(0); }
};

inline linear_input linear_input_of(const at::Tensor& x, std::int64_t in_features, std::int64_t out_features,
                                    const std::string& who) {
  check_input_width(x, in_features, who);
  linear_input in{x.reshape({-1, in_features}).to(at::kFloat).contiguous(), x.sizes().vec()};
  in.out_shape.back() = out_features;
  return in;
}

// What packed_table::lookup checks before reading a row: `ids` are int64 (or int32), each in
// [0, rows). Returns them flat, int64 and contiguous. An id out of range is std::out_of_range (the
// contract the conformance suite holds every table to), never a read past the table; undefined ids
// or another dtype are std::invalid_argument.
inline at::Tensor checked_ids(const at::Tensor& ids, std::int64_t rows, const std::string& who) {
  if (!ids.defined()) throw std::invalid_argument(who + ": ids are undefined");
  if (ids.scalar_type() != at::kLong && ids.scalar_type() != at::kInt)
    throw std::invalid_argument(who + ": ids must be int64 (or int32), got " + std::string(c10::toString(ids.scalar_type())));
  const at::Tensor flat = ids.to(at::kLong).contiguous().reshape({-1});
  const std::int64_t n = flat.numel();
  const std::int64_t* id = flat.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i)
    if (id[i] < 0 || id[i] >= rows)
      throw std::out_of_range(who + ": id " + std::to_string(id[i]) + " (position " + std::to_string(i) +
                              ") is out of range for a table of " + std::to_string(rows) + " rows");
  return flat;
}

}  // namespace qexp
