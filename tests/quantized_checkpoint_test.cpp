// Quantized checkpoints: what an experiment's size metric measures, and a model that loads back
// without the float weights and gives bit-identical outputs, for every plugin found.
#include "qexp/quantized_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qexp/errors.h"
#include "qexp/recipe.h"
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

// A few sentences as calibration data, for the plugins that ask for it.
qexp::calibration_set some_calibration() {
  at::Tensor mask;
  const auto input = golden_batch(&mask);
  qexp::calibration_set set;
  for (std::int64_t i = 0; i < input.size(0); ++i) {
    std::vector<std::int64_t> ids;
    for (std::int64_t t = 0; t < input.size(1); ++t)
      if (mask[i][t].item<std::int64_t>()) ids.push_back(input[i][t].item<std::int64_t>());
    set.ids.push_back(ids);
  }
  return set;
}

// Saves `q`, loads it back with nothing but the file and the plugins, and compares logits.
void expect_round_trip(const qexp::quantized_model& q, const qexp::plugin_registry& plugins, const fs::path& file) {
  at::Tensor mask;
  const auto input = golden_batch(&mask);
  const auto size = qexp::save_quantized_checkpoint(q.model, q.sites, file);
  EXPECT_EQ(size.file_bytes, fs::file_size(file));
  std::uint64_t parts = 0;
  for (const auto& [kind, bytes] : size.breakdown) parts += bytes;
  EXPECT_EQ(parts, size.file_bytes);
  EXPECT_GT(size.breakdown.at("embeddings"), 0u);
  std::vector<qexp::site_record> loaded_sites;
  auto loaded = qexp::load_quantized_checkpoint(file, plugins, &loaded_sites);
  ASSERT_EQ(loaded_sites.size(), q.sites.size());
  for (std::size_t i = 0; i < q.sites.size(); ++i) {
    EXPECT_EQ(loaded_sites[i].site, q.sites[i].site);
    EXPECT_EQ(loaded_sites[i].plugin, q.sites[i].plugin);
    EXPECT_EQ(loaded_sites[i].options, q.sites[i].options);
  }
  auto model = q.model;
  const auto expected = model.forward(input, mask);
  const auto got = loaded.forward(input, mask);
  EXPECT_TRUE(at::equal(expected, got)) << "max |diff| " << (expected - got).abs().max().item<float>();
}

TEST(quantized_checkpoint, every_plugin_round_trips_bit_identically_without_the_float_model) {
  auto plugins = qexp::plugin_registry::discover();
  auto fp32 = qexp::distilbert_classifier::from_folder(golden());
  const auto calibration = some_calibration();
  qexp::test::temp_dir dir;
  std::size_t tried = 0;
  for (const auto& record : plugins.plugins()) {
    if (!record.supported) continue;
    SCOPED_TRACE(record.info->id);
    qexp::layer_selection layers;
    layers.exclude = {"classifier"};  // a site left in fp32 must round-trip too
    const auto q = qexp::apply_recipe(fp32, qexp::single_rule_recipe(record.info->id, {}, layers), plugins, &calibration);
    EXPECT_FALSE(q.sites.empty());
    expect_round_trip(q, plugins, dir.path() / (std::string(record.info->id) + ".safetensors"));
    ++tried;
  }
  EXPECT_GE(tried, 3u);
}

// The example: FFN Linears one scheme, attention another, the classifier fp32, the
// embedding tables INT8; the checkpoint rebuilds the mixed model without the recipe.
TEST(quantized_checkpoint, a_mixed_recipe_reloads_without_the_recipe) {
  auto plugins = qexp::plugin_registry::discover();
  auto fp32 = qexp::distilbert_classifier::from_folder(golden());
  qexp::recipe r;
  r.label = "mixed";
  r.rules.push_back({{{"*.ffn.*"}, {}}, "dynamic-int8", {{"granularity", "per_channel"}}, "", ""});
  r.rules.push_back({{{"*.attention.*"}, {}}, "dynamic-int8", {{"granularity", "per_tensor"}}, "", ""});
  r.rules.push_back({{{"distilbert.embeddings.*"}, {}}, "embedding-int8", {}, "", ""});
  const auto q = qexp::apply_recipe(fp32, r, plugins);
  std::map<std::string, std::string> granularity_of;
  for (const auto& s : q.sites) granularity_of[s.site] = s.plugin + (s.options.count("granularity") ? ":" + s.options.at("granularity") : "");
  EXPECT_EQ(granularity_of.at("distilbert.transformer.layer.1.ffn.lin1"), "dynamic-int8:per_channel");
  EXPECT_EQ(granularity_of.at("distilbert.transformer.layer.0.attention.v_lin"), "dynamic-int8:per_tensor");
  EXPECT_EQ(granularity_of.at("distilbert.embeddings.word_embeddings"), "embedding-int8");
  EXPECT_FALSE(granularity_of.count("classifier"));
  EXPECT_FALSE(granularity_of.count("pre_classifier"));
  EXPECT_EQ(q.sites.size(), 2u + 12u);
  qexp::test::temp_dir dir;
  expect_round_trip(q, plugins, dir.path() / "mixed.safetensors");
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
