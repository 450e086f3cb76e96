// Small text helpers that libqexp, the plugins and the tools share, each written once.
#pragma once

#include <c10/util/ArrayRef.h>

#include <string>
#include <vector>

namespace qexp {

// "[2, 5, 40]": a tensor shape as every message writes it ("[]" for a scalar).
std::string shape_text(c10::IntArrayRef shape);

// The non-empty entries of a ':'-separated list such as QEXP_PLUGIN_PATH or QEXP_DATA_PATH, in
// order; none for a null or empty text.
std::vector<std::string> split_path_list(const char* text);

}  // namespace qexp
