#include "qexp/quantized_checkpoint.h"

#include <ATen/ATen.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "qexp/errors.h"
#include "qexp/text.h"
#include "qexp/safetensors.h"

namespace qexp {
namespace {

constexpr const char* format_name = "qexp.quantized/2";
constexpr const char* format_v1 = "qexp.quantized/1";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Forwards to the real writer and adds each tensor's bytes to the size breakdown.
class counting_writer final : public tensor_writer {
 public:
  counting_writer(tensor_writer& out, checkpoint_size& size) : out_(out), size_(size) {}
  void set_category(std::string c) { category_ = std::move(c); }
  void add_tensor(const std::string& name, const at::Tensor& t) override {
    out_.add_tensor(name, t);
    std::string kind = category_;
    if (kind == "linear") {
      if (ends_with(name, ".bias")) kind = "linear_bias";
      else if (!at::isFloatingType(t.scalar_type()) || ends_with(name, ".weight")) kind = "linear_weights";
      else kind = "linear_scales";
    }
    size_.breakdown[kind] += t.nbytes();
  }

 private:
  tensor_writer& out_;
  checkpoint_size& size_;
  std::string category_;
};

// What from_tensors reads for a quantized site: its dequantized weight (the float weights are
// not in the file), and a Linear's float bias when the plugin saved one under the usual name.
class quantized_model_reader final : public tensor_reader {
 public:
  quantized_model_reader(const safetensors_file& file,
                         const std::map<std::string, std::shared_ptr<packed_linear>>& linears,
                         const std::map<std::string, std::shared_ptr<packed_table>>& tables)
      : file_(file), linears_(linears), tables_(tables) {}
  bool has_tensor(const std::string& name) const override { return synthesized(name) || file_.has_tensor(name); }
  at::Tensor tensor(const std::string& name) const override {
    for (const auto& [site, table] : tables_)
      if (name == site + ".weight") return table->dequantized_table();
    for (const auto& [site, linear] : linears_) {
      if (name == site + ".weight") return linear->dequantized_weight();
      if (name == site + ".bias") {
        if (file_.has_tensor(name) && at::isFloatingType(file_.tensor(name).scalar_type())) return file_.tensor(name);
        return at::zeros({linear->dequantized_weight().size(0)});
      }
    }
    return file_.tensor(name);
  }

 private:
  bool synthesized(const std::string& name) const {
    for (const auto& [site, table] : tables_)
      if (name == site + ".weight") return true;
    for (const auto& [site, linear] : linears_)
      if (name == site + ".weight" || name == site + ".bias") return true;
    return false;
  }
  const safetensors_file& file_;
  const std::map<std::string, std::shared_ptr<packed_linear>>& linears_;
  const std::map<std::string, std::shared_ptr<packed_table>>& tables_;
};

std::string metadata(const safetensors_file& file, const std::string& key) {
  auto it = file.metadata().find(key);
  if (it == file.metadata().end())
    throw checkpoint_error(file.path().string() + ": not a qexp quantized checkpoint (metadata '" + key + "' missing)");
  return it->second;
}

nlohmann::json sites_json(const std::vector<site_record>& sites) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : sites)
    out.push_back({{"site", s.site}, {"kind", to_string(s.kind)}, {"plugin", s.plugin},
                   {"plugin_version", s.plugin_version}, {"options", s.options}});
  return out;
}

std::vector<site_record> sites_from_json(const nlohmann::json& j, const std::string& source) {
  std::vector<site_record> out;
  if (!j.is_array()) throw checkpoint_error(source + ": metadata qexp.sites: expected a JSON array");
  for (const auto& e : j) {
    site_record s;
    s.site = e.at("site").get<std::string>();
    const auto kind = e.at("kind").get<std::string>();
    if (kind != "linear" && kind != "table")
      throw checkpoint_error(source + ": metadata qexp.sites: site '" + s.site + "' has kind '" + kind +
                             "', expected linear or table");
    s.kind = kind == "linear" ? site_kind::linear : site_kind::table;
    s.plugin = e.at("plugin").get<std::string>();
    s.plugin_version = e.at("plugin_version").get<std::string>();
    s.options = e.at("options").get<std::map<std::string, std::string>>();
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

checkpoint_size save_quantized_checkpoint(const distilbert_classifier& model, const std::vector<site_record>& sites,
                                          const std::filesystem::path& file) {
  checkpoint_size size;
  safetensors_writer writer;
  counting_writer counting(writer, size);
  counting.set_category("embeddings");
  for (const auto& name : model.table_names()) model.table_site(name).save(counting, name);
  counting.set_category("other");
  for (const auto& [name, tensor] : model.non_site_tensors()) counting.add_tensor(name, tensor);
  counting.set_category("linear");
  for (const auto& name : model.linear_names()) model.linear(name).save(counting, name);
  writer.set_metadata("format", format_name);
  writer.set_metadata("qexp.sites", sites_json(sites).dump());
  writer.set_metadata("qexp.model_config", model.config().to_json().dump());
  size.file_bytes = writer.write(file);
  std::uint64_t counted = 0;
  for (const auto& [kind, bytes] : size.breakdown) counted += bytes;
  size.breakdown["header"] = size.file_bytes - counted;
  return size;
}

distilbert_classifier load_quantized_checkpoint(const std::filesystem::path& file, const plugin_registry& plugins,
                                                std::vector<site_record>* sites_out) {
  auto reader = safetensors_file::open(file);
  const std::string format = metadata(*reader, "format");
  if (format != format_name && format != format_v1)
    throw checkpoint_error(file.string() + ": not a qexp quantized checkpoint (metadata format '" + format +
                           "', expected '" + format_name + "')");
  std::vector<site_record> sites;
  nlohmann::json config_json;
  try {
    if (format == format_name) {
      sites = sites_from_json(nlohmann::json::parse(metadata(*reader, "qexp.sites")), file.string());
    } else {
      // Version 1: one plugin prepared every listed Linear.
      const auto options = nlohmann::json::parse(metadata(*reader, "qexp.options")).get<std::map<std::string, std::string>>();
      for (const auto& name :
           nlohmann::json::parse(metadata(*reader, "qexp.quantized_layers")).get<std::vector<std::string>>())
        sites.push_back({name, site_kind::linear, metadata(*reader, "qexp.plugin"),
                         metadata(*reader, "qexp.plugin_version"), options});
    }
    config_json = nlohmann::json::parse(metadata(*reader, "qexp.model_config"));
  } catch (const nlohmann::json::exception& e) {
    throw checkpoint_error(file.string() + ": malformed qexp metadata: " + e.what());
  }
  const auto config = distilbert_config::from_json(config_json, file.string() + " (metadata qexp.model_config)");
  // One quantizer per (plugin, options, kind), as the recipe had one per rule.
  std::map<std::string, std::unique_ptr<linear_quantizer>> linear_quantizers;
  std::map<std::string, std::unique_ptr<table_quantizer>> table_quantizers;
  std::map<std::string, std::shared_ptr<packed_linear>> linears;
  std::map<std::string, std::shared_ptr<packed_table>> tables;
  for (const auto& s : sites) {
    const auto& record = plugins.find(s.plugin);
    if (s.plugin_version != record.info->version)
      throw plugin_error(file.string() + ": site " + s.site + " was saved by plugin '" + s.plugin + "' " +
                         s.plugin_version + ", but the plugin found is " + record.info->version + " (" +
                         record.file.string() + ")");
    const std::string key = s.plugin + nlohmann::json(s.options).dump();
    const std::string where = file.string() + " (site " + s.site + ")";
    try {
      if (s.kind == site_kind::linear) {
        auto& q = linear_quantizers[key];
        if (!q) q = plugins.create_linear(s.plugin, s.options, where);
        linears[s.site] = q->load(*reader, s.site);
      } else {
        auto& q = table_quantizers[key];
        if (!q) q = plugins.create_table(s.plugin, s.options, where);
        tables[s.site] = q->load(*reader, s.site);
      }
    } catch (const config_error& e) {
      // Options the checkpoint recorded that the plugin found no longer accepts: the file is the
      // input at fault here, not a config.
      throw checkpoint_error(e.what());
    } catch (const qexp::error&) {
      throw;
    } catch (const std::exception& e) {
      throw plugin_error(where + ": plugin '" + s.plugin + "' load failed: " + error_message(e));
    }
  }
  quantized_model_reader tensors(*reader, linears, tables);
  auto model = distilbert_classifier::from_tensors(config, tensors, file.string());
  for (const auto& [name, linear] : linears) model.replace_linear(name, linear);
  for (const auto& [name, table] : tables) model.replace_table(name, table);
  if (sites_out) *sites_out = sites;
  return model;
}

}  // namespace qexp
