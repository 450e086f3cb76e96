// Fuzzes qexp::distilbert_config::from_json_file (framework/src/distilbert_config.cpp), the reader
// of a Hugging Face model folder's config.json: the input is the file. An accepted config must
// hold what the model relies on (a head size that divides dim, a pad id inside the vocabulary,
// labels), and read back the same from what to_json writes; a refused one a checkpoint_error.
#include <cstdint>

#include "fuzz_support.h"
#include "qexp/distilbert.h"

namespace {

bool same(const qexp::distilbert_config& a, const qexp::distilbert_config& b) {
  return a.dim == b.dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads && a.hidden_dim == b.hidden_dim &&
         a.vocab_size == b.vocab_size && a.max_position_embeddings == b.max_position_embeddings &&
         a.pad_token_id == b.pad_token_id && a.activation == b.activation &&
         a.sinusoidal_pos_embds == b.sinusoidal_pos_embds && a.id2label == b.id2label && a.dropout == b.dropout &&
         a.attention_dropout == b.attention_dropout && a.seq_classif_dropout == b.seq_classif_dropout &&
         a.qa_dropout == b.qa_dropout && a.initializer_range == b.initializer_range;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = qexp::fuzz::scratch_dir() / "config.json";
  qexp::fuzz::write_file(file, qexp::fuzz::as_text(data, size));
  qexp::fuzz::expect_only_qexp_errors([&] {
    qexp::distilbert_config c;
    try {
      c = qexp::distilbert_config::from_json_file(file);
    } catch (const qexp::checkpoint_error&) {
      return;  // refused, as documented
    }
    if (c.dim < 1 || c.n_layers < 1 || c.n_heads < 1 || c.hidden_dim < 1 || c.vocab_size < 1 ||
        c.max_position_embeddings < 1)
      qexp::fuzz::property_failed("accepted a size below 1");
    if (c.dim % c.n_heads != 0) qexp::fuzz::property_failed("accepted dim not divisible by n_heads");
    if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) qexp::fuzz::property_failed("pad id outside the vocabulary");
    if (c.id2label.empty()) qexp::fuzz::property_failed("accepted no labels");
    if (c.activation != "gelu" && c.activation != "relu") qexp::fuzz::property_failed("accepted activation", c.activation);
    // What save_float writes must read back as the same config.
    const auto again = qexp::distilbert_config::from_json(nlohmann::json::parse(c.to_json().dump()), "to_json");
    if (!same(c, again)) qexp::fuzz::property_failed("to_json does not read back the same", c.to_json().dump());
    // The site list is built from the config alone (validate, --dry-run).
    const auto sites = qexp::distilbert_classifier::sites_of(c);
    if (sites.size() != static_cast<std::size_t>(2 + 6 * c.n_layers + 2))
      qexp::fuzz::property_failed("sites_of gave an unexpected count", std::to_string(sites.size()));
  });
  return 0;
}
