// DistilBERT: logits against the Hugging Face golden file (safetensors and pytorch_model.bin,
// single texts and a padded batch), checkpoint and config errors, Linear slots, init-model.
#include "qexp/distilbert.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qexp/errors.h"
#include "qexp/float_linear.h"
#include "qexp/safetensors.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qexp::test::temp_dir;

constexpr double logit_tolerance = 1e-4;

fs::path golden_dir() { return qexp::test::shared_dir() / "golden" / "distilbert-tiny-random"; }

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "missing '" << (part) << "' in: " << (text)

struct golden_case {
  std::vector<std::int64_t> input_ids;
  std::vector<double> logits;
};

std::vector<golden_case> golden_cases() {
  std::ifstream in(golden_dir() / "expected.jsonl");
  std::vector<golden_case> cases;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    cases.push_back({j["input_ids"].get<std::vector<std::int64_t>>(),
                     j["logits"].get<std::vector<double>>()});
  }
  return cases;
}

at::Tensor ids_tensor(const std::vector<std::int64_t>& ids) {
  return at::tensor(ids, at::kLong).view({1, -1});
}

// A folder with the golden config.json and only pytorch_model.bin (symlinks, no copies).
void link_torch_only_folder(const fs::path& dir) {
  fs::create_symlink(golden_dir() / "config.json", dir / "config.json");
  fs::create_symlink(golden_dir() / "pytorch_model.bin", dir / "pytorch_model.bin");
}

double check_single_texts(qexp::distilbert_classifier& model) {
  const auto cases = golden_cases();
  EXPECT_EQ(cases.size(), 18u);
  double worst = 0;
  for (const auto& c : cases) {
    auto ids = ids_tensor(c.input_ids);
    at::Tensor logits = model.forward(ids, at::ones_like(ids));
    EXPECT_EQ(logits.sizes(), at::IntArrayRef({1, 2}));
    EXPECT_EQ(logits.scalar_type(), at::kFloat);
    for (std::size_t i = 0; i < c.logits.size(); ++i)
      worst = std::max(worst, std::abs(logits[0][i].item<double>() - c.logits[i]));
  }
  EXPECT_LT(worst, logit_tolerance);
  return worst;
}

double check_batch(qexp::distilbert_classifier& model) {
  std::ifstream in(golden_dir() / "expected_batch.json");
  auto j = nlohmann::json::parse(in);
  std::vector<at::Tensor> rows, masks;
  for (const auto& r : j["input_ids"]) rows.push_back(at::tensor(r.get<std::vector<std::int64_t>>(), at::kLong));
  for (const auto& r : j["attention_mask"]) masks.push_back(at::tensor(r.get<std::vector<std::int64_t>>(), at::kLong));
  at::Tensor ids = at::stack(rows), mask = at::stack(masks);
  EXPECT_EQ(ids.size(0), 8);
  EXPECT_TRUE(mask.eq(0).any().item<bool>()) << "the golden batch should contain padding";
  at::Tensor logits = model.forward(ids, mask);
  const auto expected = j["logits"].get<std::vector<std::vector<double>>>();
  double worst = 0;
  for (std::size_t b = 0; b < expected.size(); ++b)
    for (std::size_t i = 0; i < expected[b].size(); ++i)
      worst = std::max(worst, std::abs(logits[b][i].item<double>() - expected[b][i]));
  EXPECT_LT(worst, logit_tolerance);
  return worst;
}

TEST(distilbert, golden_logits_from_safetensors) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const double single = check_single_texts(model);
  const double batch = check_batch(model);
  std::cout << "max |logit - golden|, model.safetensors: single " << single << ", batch " << batch
            << "\n";
  RecordProperty("max_abs_logit_diff_single", std::to_string(single));
  RecordProperty("max_abs_logit_diff_batch", std::to_string(batch));
}

TEST(distilbert, golden_logits_from_pytorch_model_bin) {
  temp_dir dir;
  link_torch_only_folder(dir.path());
  auto model = qexp::distilbert_classifier::from_folder(dir.path());
  const double single = check_single_texts(model);
  const double batch = check_batch(model);
  std::cout << "max |logit - golden|, pytorch_model.bin: single " << single << ", batch " << batch
            << "\n";
}

TEST(distilbert, pytorch_model_bin_holds_the_same_tensors_as_safetensors) {
  auto bin = qexp::torch_checkpoint_file::open(golden_dir() / "pytorch_model.bin");
  auto st = qexp::safetensors_file::open(golden_dir() / "model.safetensors");
  EXPECT_EQ(bin->names(), st->names());
  for (const auto& name : st->names()) EXPECT_TRUE(at::equal(bin->tensor(name), st->tensor(name))) << name;
}

TEST(distilbert, unreadable_pytorch_model_bin_says_so) {
  temp_dir dir;
  fs::create_symlink(golden_dir() / "config.json", dir.path() / "config.json");
  qexp::test::write_file(dir.path() / "pytorch_model.bin", "this is not a zip archive");
  try {
    qexp::distilbert_classifier::from_folder(dir.path());
    FAIL() << "no error";
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_CONTAINS(e.what(), "pytorch_model.bin");
    EXPECT_CONTAINS(e.what(), "libtorch cannot read this");
  }
}

// The golden padded batch, as token ids and mask.
std::pair<at::Tensor, at::Tensor> golden_batch() {
  std::ifstream in(golden_dir() / "expected_batch.json");
  auto j = nlohmann::json::parse(in);
  std::vector<at::Tensor> rows, masks;
  for (const auto& r : j["input_ids"]) rows.push_back(at::tensor(r.get<std::vector<std::int64_t>>(), at::kLong));
  for (const auto& r : j["attention_mask"]) masks.push_back(at::tensor(r.get<std::vector<std::int64_t>>(), at::kLong));
  return {at::stack(rows), at::stack(masks)};
}

TEST(distilbert, every_saved_stage_input_gives_the_forward_logits) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto [ids, mask] = golden_batch();
  const at::Tensor expected = model.forward(ids, mask);
  std::vector<qexp::distilbert_classifier::stage_input> saved;
  EXPECT_TRUE(at::equal(model.forward_saving_stages(ids, mask, saved), expected));
  const std::int64_t n_layers = model.config().n_layers;
  ASSERT_EQ(static_cast<std::int64_t>(saved.size()), n_layers + 1);
  for (std::int64_t k = 0; k <= n_layers; ++k) {
    EXPECT_EQ(saved[k].stage, k + 1);
    // Bitwise: the same kernels on the same rows; and the saved input survives the calls.
    EXPECT_TRUE(at::equal(model.forward_from(saved[k]), expected)) << "stage " << k + 1;
    EXPECT_TRUE(at::equal(model.forward_from(saved[k]), expected)) << "stage " << k + 1 << ", again";
  }
}

TEST(distilbert, a_model_changed_from_a_stage_on_runs_from_that_stage) {
  auto fp32 = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto [ids, mask] = golden_batch();
  std::vector<qexp::distilbert_classifier::stage_input> saved;
  fp32.forward_saving_stages(ids, mask, saved);
  for (const std::string site : {"distilbert.transformer.layer.1.ffn.lin1", "pre_classifier"}) {
    qexp::layer l = fp32.float_layer(site);
    l.weight = l.weight * 0.5;
    auto changed = fp32;
    changed.replace_linear(site, qexp::make_float_linear(l));
    const std::int64_t stage = fp32.stage_of(site);
    const at::Tensor from_stage = changed.forward_from(saved.at(static_cast<std::size_t>(stage - 1)));
    EXPECT_TRUE(at::equal(from_stage, changed.forward(ids, mask))) << site;
    EXPECT_FALSE(at::allclose(from_stage, fp32.forward(ids, mask))) << site << ": the change should show";
  }
}

// Wraps a Linear, says rows_independent() as told, and counts the rows it is given.
class row_counting_linear final : public qexp::packed_linear {
 public:
  row_counting_linear(std::shared_ptr<qexp::packed_linear> inner, bool independent)
      : inner_(std::move(inner)), independent_(independent) {}
  at::Tensor forward(const at::Tensor& x) override {
    rows_seen.push_back(x.size(0));
    return inner_->forward(x);
  }
  std::size_t packed_bytes() const override { return inner_->packed_bytes(); }
  at::Tensor dequantized_weight() const override { return inner_->dequantized_weight(); }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override { inner_->save(out, prefix); }
  bool rows_independent() const override { return independent_; }
  std::vector<std::int64_t> rows_seen;

 private:
  std::shared_ptr<qexp::packed_linear> inner_;
  bool independent_;
};

// The classifier reads the [CLS] rows only: once the last block's attention is done, its out_lin,
// lin1 and lin2 run on those rows alone when all three say rows_independent(), with the logits of
// the whole computation (bitwise: the float kernels' rows do not depend on each other).
TEST(distilbert, the_last_block_runs_on_cls_rows_when_its_linears_are_row_independent) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto [ids, mask] = golden_batch();
  const std::int64_t real_rows = mask.sum().item<std::int64_t>(), sequences = ids.size(0);
  ASSERT_GT(real_rows, sequences);
  const std::string last = "distilbert.transformer.layer." + std::to_string(model.config().n_layers - 1) + ".";
  const auto wrap = [&](qexp::distilbert_classifier& m, const std::string& site, bool independent) {
    auto counting = std::make_shared<row_counting_linear>(qexp::make_float_linear(m.float_layer(site)), independent);
    m.replace_linear(site, counting);
    return counting;
  };
  // Every rows_seen entry is one forward's call.
  std::vector<qexp::distilbert_classifier::stage_input> saved;
  const at::Tensor whole = model.forward_saving_stages(ids, mask, saved);  // saving stages: every row
  auto cls_only = model;
  auto lin1 = wrap(cls_only, last + "ffn.lin1", true);
  auto q = wrap(cls_only, last + "attention.q_lin", true);
  EXPECT_TRUE(at::equal(cls_only.forward(ids, mask), whole));
  EXPECT_EQ(lin1->rows_seen, std::vector<std::int64_t>{sequences});
  EXPECT_EQ(q->rows_seen, std::vector<std::int64_t>{real_rows});  // keys and values need every row
  // An observer sees every row.
  cls_only.set_linear_observer([](const std::string&, const at::Tensor&, const at::Tensor&) {});
  EXPECT_TRUE(at::equal(cls_only.forward(ids, mask), whole));
  EXPECT_EQ(lin1->rows_seen.back(), real_rows);
  // One Linear of the three that takes a statistic across rows keeps the whole block on every row.
  auto all_rows = model;
  auto lin1_all = wrap(all_rows, last + "ffn.lin1", true);
  wrap(all_rows, last + "ffn.lin2", false);
  EXPECT_TRUE(at::equal(all_rows.forward(ids, mask), whole));
  EXPECT_EQ(lin1_all->rows_seen, std::vector<std::int64_t>{real_rows});
}

TEST(distilbert, forward_from_refuses_an_input_of_another_shape_or_stage) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto [ids, mask] = golden_batch();
  std::vector<qexp::distilbert_classifier::stage_input> saved;
  model.forward_saving_stages(ids, mask, saved);
  auto wrong_stage = saved[0];
  wrong_stage.stage = model.config().n_layers + 2;
  EXPECT_THROW(model.forward_from(wrong_stage), qexp::input_error);
  auto wrong_width = saved[0];
  wrong_width.hidden = wrong_width.hidden.narrow(1, 0, 3);
  EXPECT_THROW(model.forward_from(wrong_width), qexp::input_error);
  EXPECT_THROW(model.forward_from(qexp::distilbert_classifier::stage_input{}), qexp::input_error);
}

TEST(distilbert, padding_does_not_change_a_text_s_logits) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto c = golden_cases()[1];
  auto alone = model.forward(ids_tensor(c.input_ids));
  auto padded_ids = c.input_ids;
  padded_ids.resize(c.input_ids.size() + 7, 0);
  auto ids = ids_tensor(padded_ids);
  auto mask = at::zeros_like(ids);
  mask.narrow(1, 0, static_cast<std::int64_t>(c.input_ids.size())).fill_(1);
  auto padded = model.forward(ids, mask);
  EXPECT_TRUE(at::allclose(alone, padded, 1e-5, 1e-5));
}

// Hugging Face's DistilBERT forward written plainly in the padded [B, T, D] layout (masked_fill
// with the lowest float, softmax, every position computed), from the model's own float tensors:
// an independent check of forward's packed rows, which skip padding.
at::Tensor padded_reference_forward(const qexp::distilbert_classifier& model, const at::Tensor& ids,
                                    const at::Tensor& mask) {
  const auto& c = model.config();
  std::map<std::string, at::Tensor> t;
  for (const auto& [name, tensor] : model.non_linear_tensors()) t[name] = tensor;
  const auto linear = [&](const std::string& name, const at::Tensor& x) {
    const auto l = model.float_layer(name);
    return at::linear(x, l.weight, l.bias);
  };
  const auto norm = [&](const std::string& name, const at::Tensor& x) {
    return at::layer_norm(x, {c.dim}, t[name + ".weight"], t[name + ".bias"], 1e-12);
  };
  const std::int64_t batch = ids.size(0), tokens = ids.size(1), head_dim = c.head_dim();
  at::Tensor x = at::embedding(t["distilbert.embeddings.word_embeddings.weight"], ids) +
                 t["distilbert.embeddings.position_embeddings.weight"].narrow(0, 0, tokens);
  x = norm("distilbert.embeddings.LayerNorm", x);
  const auto heads = [&](const at::Tensor& y) { return y.view({batch, tokens, c.n_heads, head_dim}).transpose(1, 2); };
  const at::Tensor masked = mask.eq(0).view({batch, 1, 1, tokens});
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "distilbert.transformer.layer." + std::to_string(i) + ".";
    auto q = heads(linear(p + "attention.q_lin", x)) / std::sqrt(static_cast<double>(head_dim));
    auto k = heads(linear(p + "attention.k_lin", x));
    auto v = heads(linear(p + "attention.v_lin", x));
    auto scores = at::matmul(q, k.transpose(2, 3)).masked_fill(masked, std::numeric_limits<float>::lowest());
    auto context = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({batch, tokens, c.dim});
    x = norm(p + "sa_layer_norm", linear(p + "attention.out_lin", context) + x);
    x = norm(p + "output_layer_norm", linear(p + "ffn.lin2", at::gelu(linear(p + "ffn.lin1", x))) + x);
  }
  return linear("classifier", at::relu(linear("pre_classifier", x.select(1, 0))));
}

TEST(distilbert, masks_with_holes_and_a_masked_first_token_match_the_padded_reference) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto cases = golden_cases();
  const std::int64_t batch = 4, tokens = 12;
  auto ids = at::zeros({batch, tokens}, at::kLong), mask = at::zeros({batch, tokens}, at::kLong);
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& text = cases[static_cast<std::size_t>(b)].input_ids;
    const auto n = std::min<std::int64_t>(static_cast<std::int64_t>(text.size()), tokens);
    ids[b].narrow(0, 0, n).copy_(at::tensor(text, at::kLong).narrow(0, 0, n));
    mask[b].narrow(0, 0, n).fill_(1);
  }
  mask[1][3] = 0;                                       // a hole inside the text
  mask[2].fill_(0), mask[2].narrow(0, 4, 5).fill_(1);   // left padding: position 0 masked
  mask[3].fill_(1);                                     // no padding at all
  const auto expected = padded_reference_forward(model, ids, mask);
  const auto packed = model.forward(ids, mask);
  EXPECT_TRUE(at::allclose(packed, expected, 1e-5, 1e-5)) << packed << expected;
  std::size_t observed_rows = 0;
  model.set_linear_observer([&](const std::string& name, const at::Tensor& in, const at::Tensor&) {
    if (name.find("layer.1.ffn.lin1") != std::string::npos) observed_rows = static_cast<std::size_t>(in.size(0));
  });
  EXPECT_TRUE(at::allclose(model.forward(ids, mask), expected, 1e-5, 1e-5));
  // Padding is not computed: the real tokens plus each masked position 0.
  EXPECT_EQ(observed_rows, static_cast<std::size_t>(mask.sum().item<std::int64_t>() + 1));
}

TEST(distilbert, a_sequence_masked_entirely_gives_finite_logits_and_leaves_the_others_alone) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto text = golden_cases()[1].input_ids;
  auto ids = at::stack({at::tensor(text, at::kLong), at::tensor(text, at::kLong)});
  auto mask = at::ones_like(ids);
  mask[1].fill_(0);
  const auto logits = model.forward(ids, mask);
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>()) << logits;
  EXPECT_TRUE(at::allclose(logits[0], model.forward(ids_tensor(text))[0], 1e-5, 1e-5));
}

TEST(distilbert, wide_heads_and_long_sequences_match_the_padded_reference) {
  // The golden model's heads are 8 wide; this one's are 64 (DistilBERT-base's width), and its
  // sequences run past several 16-key tiles of the attention kernel.
  qexp::distilbert_config c;
  c.dim = 128, c.n_layers = 2, c.n_heads = 2, c.hidden_dim = 256, c.vocab_size = 500;
  auto model = qexp::distilbert_classifier::random(c, 7);
  const std::int64_t batch = 3, tokens = 45;
  auto ids = at::randint(1, c.vocab_size, {batch, tokens}, at::kLong);
  auto mask = at::ones({batch, tokens}, at::kLong);
  mask[0].narrow(0, 17, tokens - 17).fill_(0);
  mask[1].narrow(0, 33, tokens - 33).fill_(0);
  const auto expected = padded_reference_forward(model, ids, mask);
  EXPECT_TRUE(at::allclose(model.forward(ids, mask), expected, 1e-5, 1e-5));
  for (std::int64_t b = 0; b < batch; ++b) {  // and each sequence alone, unpadded
    const auto length = mask[b].sum().item<std::int64_t>();
    const auto alone = model.forward(ids[b].narrow(0, 0, length).unsqueeze(0));
    EXPECT_TRUE(at::allclose(alone[0], expected[b], 1e-5, 1e-5)) << "sequence " << b;
  }
}

// Writes a model folder with the golden config and the golden tensors after `edit`.
void write_edited_folder(const fs::path& dir,
                         const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  auto golden = qexp::safetensors_file::open(golden_dir() / "model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& name : golden->names()) tensors.emplace_back(name, golden->tensor(name));
  edit(tensors);
  qexp::safetensors_writer writer;
  for (const auto& [name, t] : tensors) writer.add_tensor(name, t);
  writer.write(dir / "model.safetensors");
  fs::create_symlink(golden_dir() / "config.json", dir / "config.json");
}

std::string load_error(const fs::path& dir) {
  try {
    qexp::distilbert_classifier::from_folder(dir);
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    return e.what();
  }
  ADD_FAILURE() << "no checkpoint_error";
  return "";
}

TEST(distilbert, missing_tensor_is_named_with_its_expected_shape) {
  temp_dir dir;
  write_edited_folder(dir.path(), [](auto& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                 [](const auto& t) {
                                   return t.first == "distilbert.transformer.layer.1.ffn.lin2.weight";
                                 }),
                  tensors.end());
  });
  const auto message = load_error(dir.path());
  EXPECT_CONTAINS(message, "tensor 'distilbert.transformer.layer.1.ffn.lin2.weight' is missing");
  EXPECT_CONTAINS(message, "expected shape [32, 64]");
  EXPECT_CONTAINS(message, "model.safetensors");
}

TEST(distilbert, mis_shaped_tensor_reports_expected_and_found) {
  temp_dir dir;
  write_edited_folder(dir.path(), [](auto& tensors) {
    for (auto& t : tensors)
      if (t.first == "pre_classifier.weight") t.second = at::zeros({32, 31});
  });
  const auto message = load_error(dir.path());
  EXPECT_CONTAINS(message, "tensor 'pre_classifier.weight': expected shape [32, 32], found [32, 31]");
}

TEST(distilbert, half_precision_checkpoint_loads_as_float) {
  temp_dir dir;
  write_edited_folder(dir.path(), [](auto& tensors) {
    for (auto& t : tensors) t.second = t.second.to(at::kHalf);
  });
  auto model = qexp::distilbert_classifier::from_folder(dir.path());
  auto c = golden_cases()[0];
  auto logits = model.forward(ids_tensor(c.input_ids));
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_NEAR(logits[0][0].item<double>(), c.logits[0], 0.05);  // fp16 weights: loose
}

// Writes config.json = golden config after `edit`, returns the from_json_file error.
std::string config_error_for(const std::function<void(nlohmann::json&)>& edit) {
  temp_dir dir;
  std::ifstream in(golden_dir() / "config.json");
  auto j = nlohmann::json::parse(in);
  edit(j);
  const fs::path path = dir.path() / "config.json";
  qexp::test::write_file(path, j.dump(2));
  try {
    qexp::distilbert_config::from_json_file(path);
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_CONTAINS(e.what(), path.string());
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(distilbert, config_missing_field) {
  const auto message = config_error_for([](nlohmann::json& j) { j.erase("n_heads"); });
  EXPECT_CONTAINS(message, "key 'n_heads': missing");
}

TEST(distilbert, config_wrong_type) {
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["dim"] = "32"; }),
                  "key 'dim': expected an integer, found string \"32\"");
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["sinusoidal_pos_embds"] = 1; }),
                  "key 'sinusoidal_pos_embds': expected true or false, found integer 1");
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["activation"] = "swish"; }),
                  "key 'activation': expected \"gelu\" or \"relu\"");
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["n_heads"] = 5; }), "divisible");
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["id2label"] = {{"0", "A"}, {"2", "B"}}; }),
                  "key 'id2label'");
}

TEST(distilbert, config_numbers_out_of_range_name_the_file_and_key) {
  // 1e400 does not fit a double: nlohmann throws out_of_range, not parse_error.
  temp_dir dir;
  const fs::path path = dir.path() / "config.json";
  std::string text = qexp::test::read_file(golden_dir() / "config.json");
  const auto at = text.find("\"dim\": 32");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 10, "\"dim\": 1e400");
  qexp::test::write_file(path, text);
  try {
    qexp::distilbert_config::from_json_file(path);
    ADD_FAILURE() << "no error";
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_CONTAINS(e.what(), path.string() + ": ");
    EXPECT_CONTAINS(e.what(), "1e400");
  }
  // A sinusoidal table of 2^50 rows is refused by the config check, before any allocation.
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) {
                    j["sinusoidal_pos_embds"] = true;
                    j["max_position_embeddings"] = std::int64_t{1} << 50;
                  }),
                  "key 'max_position_embeddings': expected an integer in [1, 65536], found 1125899906842624");
  EXPECT_CONTAINS(config_error_for([](nlohmann::json& j) { j["vocab_size"] = 18446744073709551615ull; }),
                  "key 'vocab_size': expected an integer in [1, 16777216]");
}

TEST(distilbert, config_round_trips_through_json) {
  auto c = qexp::distilbert_config::from_json_file(golden_dir() / "config.json");
  EXPECT_EQ(c.dim, 32);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.id2label, (std::vector<std::string>{"NEGATIVE", "POSITIVE"}));
  auto back = qexp::distilbert_config::from_json(c.to_json(), "to_json");
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_THROW(qexp::distilbert_config::preset("bert-large"), qexp::config_error);
}

// A Linear that ignores its input: logits become exactly its bias.
class constant_linear : public qexp::packed_linear {
 public:
  explicit constant_linear(at::Tensor value) : value_(std::move(value)) {}
  at::Tensor forward(const at::Tensor& x) override {
    return value_.expand({x.size(0), value_.size(0)}).contiguous();
  }
  std::size_t packed_bytes() const override { return 0; }
  at::Tensor dequantized_weight() const override { return at::Tensor(); }
  void save(qexp::tensor_writer&, const std::string&) const override {}

 private:
  at::Tensor value_;
};

TEST(distilbert, copies_have_independent_linear_slots) {
  auto fp32 = qexp::distilbert_classifier::from_folder(golden_dir());
  auto ids = ids_tensor(golden_cases()[0].input_ids);
  const auto before = fp32.forward(ids);
  auto quantized = fp32;
  quantized.replace_linear("classifier",
                           std::make_shared<constant_linear>(at::tensor({3.0f, -3.0f})));
  EXPECT_TRUE(at::equal(quantized.forward(ids), at::tensor({3.0f, -3.0f}).view({1, 2})));
  EXPECT_TRUE(at::equal(fp32.forward(ids), before));
  // The float layer is unchanged by replacement and rebuilds the original output.
  auto copy = quantized;
  copy.replace_linear("classifier", qexp::make_float_linear(quantized.float_layer("classifier")));
  EXPECT_TRUE(at::allclose(copy.forward(ids), before));
  EXPECT_THROW(fp32.replace_linear("no.such.layer", nullptr), qexp::input_error);
  EXPECT_THROW(fp32.linear("no.such.layer"), qexp::input_error);
}

TEST(distilbert, linear_names_and_observer_follow_model_order) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  const auto names = model.linear_names();
  ASSERT_EQ(names.size(), 14u);
  EXPECT_EQ(names[0], "distilbert.transformer.layer.0.attention.q_lin");
  EXPECT_EQ(names[5], "distilbert.transformer.layer.0.ffn.lin2");
  EXPECT_EQ(names[12], "pre_classifier");
  EXPECT_EQ(names[13], "classifier");
  EXPECT_EQ(model.float_layer("distilbert.transformer.layer.1.ffn.lin1").weight.sizes(),
            at::IntArrayRef({64, 32}));

  auto ids = ids_tensor(golden_cases()[2].input_ids);
  const auto plain = model.forward(ids);
  std::vector<std::string> seen;
  std::vector<at::Tensor> inputs, outputs;
  model.set_linear_observer([&](const std::string& name, const at::Tensor& in, const at::Tensor& out) {
    seen.push_back(name);
    inputs.push_back(in);
    outputs.push_back(out);
    EXPECT_EQ(in.size(-1), model.float_layer(name).weight.size(1)) << name;
  });
  const auto observed = model.forward(ids);
  EXPECT_EQ(seen, names);
  EXPECT_TRUE(at::equal(plain, observed));
  // The kept tensors were not modified in place afterwards (q_lin's output is scaled, the
  // residual adds to out_lin's and lin2's, GELU to lin1's).
  for (std::size_t i = 0; i < names.size(); ++i)
    EXPECT_TRUE(at::equal(outputs[i], model.linear(names[i]).forward(inputs[i]))) << names[i];
  EXPECT_TRUE(at::equal(outputs.back(), observed));
  model.set_linear_observer(nullptr);
  seen.clear();
  model.forward(ids);
  EXPECT_TRUE(seen.empty());
}

TEST(distilbert, bad_inputs_are_input_errors) {
  auto model = qexp::distilbert_classifier::from_folder(golden_dir());
  EXPECT_THROW(model.forward(at::tensor({101, 40000, 102}, at::kLong).view({1, 3})), qexp::input_error);
  EXPECT_THROW(model.forward(at::zeros({1, 513}, at::kLong)), qexp::input_error);
  EXPECT_THROW(model.forward(at::zeros({3}, at::kLong)), qexp::input_error);
  EXPECT_THROW(model.forward(at::zeros({1, 4}, at::kLong), at::ones({1, 5}, at::kLong)), qexp::input_error);
}

TEST(distilbert, save_float_then_from_folder_gives_the_same_logits) {
  temp_dir dir;
  auto model = qexp::distilbert_classifier::random(qexp::distilbert_config::preset("distilbert-tiny"), 11);
  model.save_float(dir.path());
  auto back = qexp::distilbert_classifier::from_folder(dir.path());
  auto ids = ids_tensor(golden_cases()[3].input_ids);
  EXPECT_TRUE(at::equal(model.forward(ids), back.forward(ids)));
  // Hugging Face's state_dict names and order.
  auto file = qexp::safetensors_file::open(dir.path() / "model.safetensors");
  auto golden = qexp::safetensors_file::open(golden_dir() / "model.safetensors");
  EXPECT_EQ(file->names(), golden->names());
  EXPECT_EQ(model.non_linear_tensors().size(), 4u + 4u * 2u);
}

TEST(distilbert, sinusoidal_positions_match_hugging_face_formula) {
  const auto table = qexp::sinusoidal_position_embeddings(512, 32);
  EXPECT_FLOAT_EQ(table[0][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(table[0][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(table[7][4].item<float>(), static_cast<float>(std::sin(7 / std::pow(10000.0, 4.0 / 32))));
  EXPECT_FLOAT_EQ(table[7][5].item<float>(), static_cast<float>(std::cos(7 / std::pow(10000.0, 4.0 / 32))));
  // A sinusoidal checkpoint without the table loads and uses the computed one.
  auto c = qexp::distilbert_config::preset("distilbert-tiny");
  c.sinusoidal_pos_embds = true;
  auto model = qexp::distilbert_classifier::random(c, 5);
  qexp::safetensors_writer writer;
  for (const auto& [name, t] : model.non_linear_tensors())
    if (name != "distilbert.embeddings.position_embeddings.weight") writer.add_tensor(name, t);
  for (const auto& name : model.linear_names()) {
    writer.add_tensor(name + ".weight", model.float_layer(name).weight);
    writer.add_tensor(name + ".bias", model.float_layer(name).bias);
  }
  temp_dir dir;
  writer.write(dir.path() / "w.safetensors");
  auto file = qexp::safetensors_file::open(dir.path() / "w.safetensors");
  auto back = qexp::distilbert_classifier::from_tensors(c, *file, "w.safetensors");
  auto ids = ids_tensor(golden_cases()[0].input_ids);
  EXPECT_TRUE(at::equal(model.forward(ids), back.forward(ids)));
}

TEST(distilbert, init_model_then_from_folder_is_deterministic) {
  temp_dir dir;
  const auto a = dir.path() / "a", b = dir.path() / "b", c = dir.path() / "c";
  auto r = qexp::test::run_qexp("init-model --preset distilbert-tiny --seed 42 --out '" + a.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = qexp::test::run_qexp("init-model --preset distilbert-tiny --seed 42 --out '" + b.string() +
                           "' --vocab '" + (golden_dir() / "vocab.txt").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = qexp::test::run_qexp("init-model --preset distilbert-tiny --seed 43 --out '" + c.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* file : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(a / file)) << file;
  EXPECT_EQ(qexp::test::read_file(a / "model.safetensors"), qexp::test::read_file(b / "model.safetensors"));
  EXPECT_NE(qexp::test::read_file(a / "model.safetensors"), qexp::test::read_file(c / "model.safetensors"));
  auto tokenizer_config = nlohmann::json::parse(qexp::test::read_file(a / "tokenizer_config.json"));
  EXPECT_EQ(tokenizer_config["do_lower_case"], true);

  auto loaded = qexp::distilbert_classifier::from_folder(a);
  auto in_process = qexp::distilbert_classifier::random(qexp::distilbert_config::preset("distilbert-tiny"), 42);
  auto ids = ids_tensor(golden_cases()[4].input_ids);
  EXPECT_TRUE(at::equal(loaded.forward(ids), in_process.forward(ids)));
  // Hugging Face's init: N(0, 0.02) weights, zero biases, padding row zero.
  auto w = loaded.float_layer("distilbert.transformer.layer.0.ffn.lin1").weight;
  EXPECT_NEAR(w.std().item<double>(), 0.02, 0.002);
  EXPECT_EQ(loaded.float_layer("classifier").bias.abs().sum().item<double>(), 0.0);

  r = qexp::test::run_qexp("init-model --preset distilbert-huge --out '" + c.string() + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = qexp::test::run_qexp("init-model --preset distilbert-tiny --out '" + c.string() +
                           "' --vocab /no/such/vocab.txt");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_CONTAINS(r.output, "/no/such/vocab.txt");
}

TEST(distilbert, predict_cli_matches_golden_logits) {
  temp_dir dir;
  std::string input;
  std::ifstream in(golden_dir() / "expected.jsonl");
  std::vector<std::vector<double>> expected;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    input += j["text"].get<std::string>() + "\n";
    expected.push_back(j["logits"].get<std::vector<double>>());
  }
  qexp::test::write_file(dir.path() / "in.txt", input);
  auto r = qexp::test::run_qexp("predict --json --model '" + golden_dir().string() + "' < '" +
                                (dir.path() / "in.txt").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream out(r.output);
  std::size_t row = 0;
  while (std::getline(out, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line);
    ASSERT_LT(row, expected.size());
    const auto logits = j["logits"].get<std::vector<double>>();
    for (std::size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(logits[i], expected[row][i], logit_tolerance);
    const auto p = j["probabilities"].get<std::vector<double>>();
    EXPECT_NEAR(p[0] + p[1], 1.0, 1e-6);
    EXPECT_EQ(j["label"], logits[1] > logits[0] ? "POSITIVE" : "NEGATIVE");
    ++row;
  }
  EXPECT_EQ(row, expected.size());
}

}  // namespace
