// distilbert_config: reading, checking and writing Hugging Face's DistilBERT config.json.
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>

#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/text.h"

namespace qexp {
namespace {

std::string found_kind(const nlohmann::json& j) {
  if (j.is_number_integer()) return "integer " + j.dump();
  if (j.is_number_float()) return "number " + j.dump();
  if (j.is_string()) return "string " + j.dump();
  if (j.is_boolean()) return "boolean " + j.dump();
  return j.type_name();
}

// Typed access to one config key with errors that name the file and the key.
class config_reader {
 public:
  config_reader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw checkpoint_error(source_ + ": key '" + key + "': " + what);
  }
  const nlohmann::json* find(const std::string& key, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) fail(key, "missing; expected an integer");
      return nullptr;
    }
    return &*it;
  }
  std::int64_t integer(const std::string& key, std::int64_t fallback, bool required, std::int64_t minimum,
                       std::int64_t maximum = std::numeric_limits<std::int32_t>::max()) const {
    const nlohmann::json* v = find(key, required);
    if (!v) return fallback;
    if (!v->is_number_integer()) fail(key, "expected an integer, found " + found_kind(*v));
    const bool too_large = v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(maximum);
    const auto value = too_large ? maximum + 1 : v->get<std::int64_t>();
    if (value < minimum || value > maximum)
      fail(key, "expected an integer in [" + std::to_string(minimum) + ", " + std::to_string(maximum) + "], found " +
                    v->dump());
    return value;
  }
  double number(const std::string& key, double fallback) const {
    const nlohmann::json* v = find(key, false);
    if (!v) return fallback;
    if (!v->is_number()) fail(key, "expected a number, found " + found_kind(*v));
    return v->get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    const nlohmann::json* v = find(key, false);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, "expected true or false, found " + found_kind(*v));
    return v->get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const nlohmann::json* v = find(key, false);
    if (!v) return fallback;
    if (!v->is_string()) fail(key, "expected a string, found " + found_kind(*v));
    return v->get<std::string>();
  }
  const nlohmann::json& json() const { return j_; }

 private:
  const nlohmann::json& j_;
  std::string source_;
};

// config.json's keys that are members of distilbert_config, declared once: from_json reads and
// checks each (a missing optional key keeps the member's default, Hugging Face's), to_json writes
// each. The upper bounds are far above any DistilBERT, so that a corrupt config is refused here
// rather than by an allocation of its tables (a sinusoidal position table is built from the config
// alone).
template <class C, class V>
void member_keys(C& c, V&& v) {
  constexpr std::int64_t int32_max = std::numeric_limits<std::int32_t>::max();
  v.integer("dim", c.dim, true, 1, 1 << 16);
  v.integer("n_layers", c.n_layers, true, 1, 1 << 10);
  v.integer("n_heads", c.n_heads, true, 1, 1 << 10);
  v.integer("hidden_dim", c.hidden_dim, true, 1, 1 << 18);
  v.integer("vocab_size", c.vocab_size, true, 1, 1 << 24);
  v.integer("max_position_embeddings", c.max_position_embeddings, true, 1, 1 << 16);
  v.integer("pad_token_id", c.pad_token_id, false, 0, int32_max);
  v.string("activation", c.activation);
  v.boolean("sinusoidal_pos_embds", c.sinusoidal_pos_embds);
  v.number("dropout", c.dropout);
  v.number("attention_dropout", c.attention_dropout);
  v.number("seq_classif_dropout", c.seq_classif_dropout);
  v.number("qa_dropout", c.qa_dropout);
  v.number("initializer_range", c.initializer_range);
}

struct member_reader {
  const config_reader& r;
  void integer(const char* key, std::int64_t& m, bool required, std::int64_t min, std::int64_t max) const {
    m = r.integer(key, m, required, min, max);
  }
  void string(const char* key, std::string& m) const { m = r.string(key, m); }
  void boolean(const char* key, bool& m) const { m = r.boolean(key, m); }
  void number(const char* key, double& m) const { m = r.number(key, m); }
};

struct member_writer {
  nlohmann::json& j;
  void integer(const char* key, std::int64_t m, bool, std::int64_t, std::int64_t) const { j[key] = m; }
  void string(const char* key, const std::string& m) const { j[key] = m; }
  void boolean(const char* key, bool m) const { j[key] = m; }
  void number(const char* key, double m) const { j[key] = m; }
};

}  // namespace

distilbert_config distilbert_config::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object())
    throw checkpoint_error(source + ": expected a JSON object, found " + found_kind(j));
  config_reader r(j, source);
  distilbert_config c;
  member_keys(c, member_reader{r});

  if (c.activation != "gelu" && c.activation != "relu")
    r.fail("activation", "expected \"gelu\" or \"relu\", found \"" + c.activation + "\"");
  if (c.dim % c.n_heads != 0)
    r.fail("n_heads", "dim " + std::to_string(c.dim) + " must be divisible by n_heads, found " +
                          std::to_string(c.n_heads));
  if (c.pad_token_id >= c.vocab_size)
    r.fail("pad_token_id", "expected an id below vocab_size " + std::to_string(c.vocab_size) +
                               ", found " + std::to_string(c.pad_token_id));

  // Hugging Face writes id2label as {"0": "NEGATIVE", "1": "POSITIVE"}; without it, a
  // sequence classifier has two labels named LABEL_0 and LABEL_1.
  const nlohmann::json* labels = r.find("id2label", false);
  if (!labels) {
    c.id2label = {"LABEL_0", "LABEL_1"};
  } else {
    if (!labels->is_object() || labels->empty())
      r.fail("id2label", "expected a non-empty object of \"<id>\": \"<label>\", found " +
                             found_kind(*labels));
    c.id2label.assign(labels->size(), std::string());
    std::vector<bool> seen(labels->size(), false);
    for (auto it = labels->begin(); it != labels->end(); ++it) {
      std::size_t id = 0, used = 0;
      try {
        id = std::stoul(it.key(), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != it.key().size() || id >= labels->size() || seen[id])
        r.fail("id2label", "expected the keys \"0\" .. \"" + std::to_string(labels->size() - 1) +
                               "\" once each, found \"" + it.key() + "\"");
      if (!it.value().is_string())
        r.fail("id2label", "label " + it.key() + ": expected a string, found " +
                               found_kind(it.value()));
      seen[id] = true;
      c.id2label[id] = it.value().get<std::string>();
    }
  }
  return c;
}

distilbert_config distilbert_config::from_json_file(const std::filesystem::path& p) {
  const std::string text = read_regular_file(p, "model config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw checkpoint_error(p.string() + ": not valid JSON (byte " + std::to_string(e.byte) +
                           "): expected a config.json object");
  } catch (const nlohmann::json::exception& e) {
    // e.g. a number too large for a double ("dim": 1e400): nlohmann names no byte for it.
    throw checkpoint_error(p.string() + ": " + one_line(e.what()) + "; expected a config.json object of finite numbers");
  }
  return from_json(j, p.string());
}

std::vector<std::string> distilbert_config::preset_names() {
  return {"distilbert-base", "distilbert-tiny"};
}

distilbert_config distilbert_config::preset(const std::string& name) {
  distilbert_config c;  // the defaults are distilbert-base-uncased-finetuned-sst-2-english
  if (name == "distilbert-base") return c;
  if (name == "distilbert-tiny") {
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.hidden_dim = 64;
    return c;
  }
  throw config_error("unknown model preset '" + name +
                     "'; expected distilbert-base or distilbert-tiny");
}

nlohmann::json distilbert_config::to_json() const {
  nlohmann::json j;
  member_keys(*this, member_writer{j});
  j["architectures"] = {"DistilBertForSequenceClassification"};
  nlohmann::json id2label_json = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (std::size_t i = 0; i < id2label.size(); ++i) {
    id2label_json[std::to_string(i)] = id2label[i];
    label2id[id2label[i]] = i;
  }
  j["id2label"] = id2label_json;
  j["label2id"] = label2id;
  j["model_type"] = "distilbert";
  j["tie_weights_"] = true;
  j["torch_dtype"] = "float32";
  return j;
}

void distilbert_config::write_json(const std::filesystem::path& p) const {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << to_json().dump(2) << "\n";
  if (!out) throw input_error(p.string() + ": cannot write config.json");
}

}  // namespace qexp
