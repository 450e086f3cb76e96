// Quantized checkpoints: what an experiment's size metric measures, and a model that loads back
// without the float weights and gives bit-identical outputs, for every plugin found.
#include "qexp/quantized_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qexp/errors.h"
#include "qexp/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

fs::path golden() { return qexp::test::shared_dir() / "golden/distilbert-tiny-random"; }

at::Tensor golden_batch(at::Tensor* mask) {
  auto batch = nlohmann::json::parse(qexp::test::read_file(golden() / "expected_batch.json"));
  auto ids = batch["input_ids"].get<std::vector<std::vector<std::int64_t>>>();
  auto m = batch["attention_mask"].get<std::vector<std::vector<std::int64_t>>>();
  auto input = at::empty({static_cast<std::int64_t>(ids.size()), static_cast<std::int64_t>(ids[0].size())}, at::kLong);
  *mask = at::empty_like(input);
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (std::size_t t = 0; t < ids[i].size(); ++t) input[i][t] = ids[i][t], (*mask)[i][t] = m[i][t];
  return input;
}

}  // namespace

TEST(quantized_checkpoint, every_plugin_round_trips_bit_identically_without_the_float_model) {
  auto plugins = qexp::plugin_registry::discover();
  auto fp32 = qexp::distilbert_classifier::from_folder(golden());
  at::Tensor mask;
  const auto input = golden_batch(&mask);
  qexp::test::temp_dir dir;
  std::size_t tried = 0;
  for (const auto& record : plugins.plugins()) {
    if (!record.supported) continue;
    SCOPED_TRACE(record.info->id);
    auto quantizer = plugins.create(record.info->id);
    auto model = fp32;
    qexp::quantized_checkpoint_info info{record.info->id, record.info->version, {}, {}};
    for (const auto& name : model.linear_names()) {
      if (name == "classifier") continue;  // a layer left in fp32 must round-trip too
      model.replace_linear(name, std::shared_ptr<qexp::packed_linear>(quantizer->prepare(model.float_layer(name))));
      info.quantized_layers.push_back(name);
    }
    const fs::path file = dir.path() / (std::string(record.info->id) + ".safetensors");
    const auto size = qexp::save_quantized_checkpoint(model, info, file);
    EXPECT_EQ(size.file_bytes, fs::file_size(file));
    std::uint64_t parts = 0;
    for (const auto& [kind, bytes] : size.breakdown) parts += bytes;
    EXPECT_EQ(parts, size.file_bytes);
    EXPECT_GT(size.breakdown.at("embeddings"), 0u);

    qexp::quantized_checkpoint_info loaded_info;
    auto loaded = qexp::load_quantized_checkpoint(file, plugins, &loaded_info);
    EXPECT_EQ(loaded_info.quantized_layers, info.quantized_layers);
    EXPECT_EQ(loaded_info.plugin, record.info->id);
    const auto expected = model.forward(input, mask);
    const auto got = loaded.forward(input, mask);
    EXPECT_TRUE(at::equal(expected, got)) << "max |diff| " << (expected - got).abs().max().item<float>();
    ++tried;
  }
  EXPECT_GE(tried, 1u);
}

TEST(quantized_checkpoint, a_plain_model_file_is_not_a_quantized_checkpoint) {
  auto plugins = qexp::plugin_registry::discover();
  try {
    qexp::load_quantized_checkpoint(golden() / "model.safetensors", plugins);
    FAIL();
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a qexp quantized checkpoint"), std::string::npos) << e.what();
  }
}
