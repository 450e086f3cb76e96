#include "qexp/quantized_checkpoint.h"

#include <ATen/ATen.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "qexp/errors.h"
#include "qexp/safetensors.h"

namespace qexp {
namespace {

constexpr const char* format_name = "qexp.quantized/1";

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

// What from_tensors reads for a quantized layer: its dequantized weight (the float weights are
// not in the file), and its float bias when the plugin saved one under the usual name.
class quantized_model_reader final : public tensor_reader {
 public:
  quantized_model_reader(const safetensors_file& file, const std::map<std::string, std::shared_ptr<packed_linear>>& layers)
      : file_(file), layers_(layers) {}
  bool has_tensor(const std::string& name) const override { return synthesized(name) || file_.has_tensor(name); }
  at::Tensor tensor(const std::string& name) const override {
    for (const auto& [layer, linear] : layers_) {
      if (name == layer + ".weight") return linear->dequantized_weight();
      if (name == layer + ".bias") {
        if (file_.has_tensor(name) && at::isFloatingType(file_.tensor(name).scalar_type())) return file_.tensor(name);
        return at::zeros({linear->dequantized_weight().size(0)});
      }
    }
    return file_.tensor(name);
  }

 private:
  bool synthesized(const std::string& name) const {
    for (const auto& [layer, linear] : layers_)
      if (name == layer + ".weight" || name == layer + ".bias") return true;
    return false;
  }
  const safetensors_file& file_;
  const std::map<std::string, std::shared_ptr<packed_linear>>& layers_;
};

std::string metadata(const safetensors_file& file, const std::string& key) {
  auto it = file.metadata().find(key);
  if (it == file.metadata().end())
    throw checkpoint_error(file.path().string() + ": not a qexp quantized checkpoint (metadata '" + key + "' missing)");
  return it->second;
}

}  // namespace

checkpoint_size save_quantized_checkpoint(const distilbert_classifier& model, const quantized_checkpoint_info& info,
                                          const std::filesystem::path& file) {
  checkpoint_size size;
  safetensors_writer writer;
  counting_writer counting(writer, size);
  for (const auto& [name, tensor] : model.non_linear_tensors()) {
    counting.set_category(name.find("embeddings") != std::string::npos ? "embeddings" : "other");
    counting.add_tensor(name, tensor);
  }
  counting.set_category("linear");
  for (const auto& name : model.linear_names()) model.linear(name).save(counting, name);
  writer.set_metadata("format", format_name);
  writer.set_metadata("qexp.plugin", info.plugin);
  writer.set_metadata("qexp.plugin_version", info.plugin_version);
  writer.set_metadata("qexp.options", nlohmann::json(info.options).dump());
  writer.set_metadata("qexp.quantized_layers", nlohmann::json(info.quantized_layers).dump());
  writer.set_metadata("qexp.model_config", model.config().to_json().dump());
  size.file_bytes = writer.write(file);
  std::uint64_t counted = 0;
  for (const auto& [kind, bytes] : size.breakdown) counted += bytes;
  size.breakdown["header"] = size.file_bytes - counted;
  return size;
}

distilbert_classifier load_quantized_checkpoint(const std::filesystem::path& file, const plugin_registry& plugins,
                                                quantized_checkpoint_info* info_out) {
  auto reader = safetensors_file::open(file);
  if (metadata(*reader, "format") != format_name)
    throw checkpoint_error(file.string() + ": not a qexp quantized checkpoint (metadata format '" +
                           metadata(*reader, "format") + "', expected '" + format_name + "')");
  quantized_checkpoint_info info;
  nlohmann::json config_json;
  try {
    info.plugin = metadata(*reader, "qexp.plugin");
    info.plugin_version = metadata(*reader, "qexp.plugin_version");
    info.options = nlohmann::json::parse(metadata(*reader, "qexp.options")).get<std::map<std::string, std::string>>();
    info.quantized_layers = nlohmann::json::parse(metadata(*reader, "qexp.quantized_layers")).get<std::vector<std::string>>();
    config_json = nlohmann::json::parse(metadata(*reader, "qexp.model_config"));
  } catch (const nlohmann::json::exception& e) {
    throw checkpoint_error(file.string() + ": malformed qexp metadata: " + e.what());
  }
  const auto config = distilbert_config::from_json(config_json, file.string() + " (metadata qexp.model_config)");
  const auto& record = plugins.find(info.plugin);
  if (info.plugin_version != record.info->version)
    throw plugin_error(file.string() + ": saved by plugin '" + info.plugin + "' " + info.plugin_version +
                       ", but the plugin found is " + record.info->version + " (" + record.file.string() + ")");
  auto quantizer = plugins.create(info.plugin, info.options, file.string());
  std::map<std::string, std::shared_ptr<packed_linear>> layers;
  for (const auto& name : info.quantized_layers) layers[name] = quantizer->load(*reader, name);
  quantized_model_reader tensors(*reader, layers);
  auto model = distilbert_classifier::from_tensors(config, tensors, file.string());
  for (const auto& [name, linear] : layers) model.replace_linear(name, linear);
  if (info_out) *info_out = info;
  return model;
}

}  // namespace qexp
