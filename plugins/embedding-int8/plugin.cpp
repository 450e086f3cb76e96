// Entry point of the embedding-int8 plugin: embedding tables (word and position) quantized per row
// (INT8) or per row group (INT4), dequantized only for the rows a lookup reads.
#include <qexp/plugin_api.h>

#include "embedding_int8.h"

namespace {

int embedding_int8_supported(const char** /*reason*/) { return 1; }

qexp::table_quantizer* embedding_int8_create(const qexp::option_values& options, std::string* /*error*/) {
  // Whatever this throws, the registry reports as the factory's error (plugin_registry.cpp).
  return qexp::embedding_int8::make_quantizer(qexp::embedding_int8::parse_settings(options)).release();
}

void embedding_int8_budget(const qexp::option_values& options, qexp::conformance_budget* out) {
  qexp::embedding_int8::fill_budget(qexp::embedding_int8::parse_settings(options), out);
}

}  // namespace

QEXP_PLUGIN("embedding-int8", "1.0.0",
            "embedding tables as symmetric INT8 per row or INT4 per row group (two codes a byte), "
            "rows dequantized at lookup; tables only, Linears stay with other plugins",
            qexp::embedding_int8::options, embedding_int8_supported, nullptr, embedding_int8_create,
            embedding_int8_budget, qexp::embedding_int8::variants)
