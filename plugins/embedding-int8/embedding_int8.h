// embedding-int8: embedding tables stored as symmetric integers, dequantized row by row at lookup.
// 8 bits: one scale per row, codes in [-127, 127]. 4 bits: one scale per group of `group_size`
// entries of a row, codes in [-7, 7], two per byte. A table-only plugin: it prepares no Linear.
#pragma once

#include <qexp/plugin_api.h>

#include <memory>

namespace qexp::embedding_int8 {

enum class scale_kind { float32, float16 };

struct settings {
  int bits = 8;                  // 8 or 4
  std::int64_t group_size = 32;  // entries per scale at 4 bits; a row's last group may be shorter
  scale_kind scales = scale_kind::float32;
};

extern const option_spec options[3];
// nullptr-terminated option sets worth testing beyond the defaults (qexp_plugin_info::variants).
extern const char* const variants[];

settings parse_settings(const option_values& values);
std::unique_ptr<table_quantizer> make_quantizer(const settings& s);
// Error budgets for these options: about 3x the table NMSE measured on Gaussian tables.
void fill_budget(const settings& s, conformance_budget* out);

}  // namespace qexp::embedding_int8
