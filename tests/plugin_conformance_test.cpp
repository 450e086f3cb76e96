// The plugin conformance suite: every plugin the registry discovers, with the option combinations
// worth checking, goes through the same checks (odd shapes, zero, constant, outlier and non-finite
// inputs, the dequantized weight, packed size, save/load) against a float64 reference, each with a
// normalised-MSE budget declared per plugin below (after ggml's test-backend-ops).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qexp/plugin_registry.h"

namespace qexp {
namespace {

// What a plugin promises: output error against x W^T + b computed in double, as normalised MSE
// (sum of squared errors over sum of squared reference values), and its storage per weight.
struct plugin_budget {
  double nmse;              // random Gaussian activations and weights
  double weight_nmse;       // dequantized_weight() against the float weight
  double bytes_per_weight;  // packed_bytes() is about N*K times this, plus per-channel extras;
                            // 0: not declared, only "no more than float32" is checked
};

// Each budget is about 3x the largest value measured with this suite's data (docs/plugins.md lists
// them): activation error (7-bit, 8-bit u8 or s8) plus weight error (per tensor or per channel).
// A plugin without an entry gets the last line.
plugin_budget budget_for(const std::string& id, const std::map<std::string, std::string>& options) {
  auto option = [&](const std::string& name) {
    auto it = options.find(name);
    return it == options.end() ? std::string() : it->second;
  };
  const double per_tensor_weights = 2.5e-4, per_channel_weights = 5e-5;
  if (id == "fp32") return {1e-10, 0.0, 4.0};
  if (id == "dynamic-int8") {
    // Defaults: per-tensor weights, 7-bit activations (reduce_range, what quantize_dynamic does;
    // qnnpack ignores the flag).
    const bool seven_bit = option("reduce_range") != "false" && option("engine") != "qnnpack";
    const double act = seven_bit ? 3e-4 : 8e-5;
    const double wt = option("granularity") == "per_channel" ? per_channel_weights : per_tensor_weights;
    return {3 * (act + wt), 3 * wt, 1.0};
  }
  if (id == "onednn-int8") {
    // Defaults: per-channel weights, u8 per-tensor activations.
    const double act = option("activation_type") == "s8" ? 1e-4 : 8e-5;
    const double wt = option("granularity") == "per_tensor" ? per_tensor_weights : per_channel_weights;
    return {3 * (act + wt), 3 * wt, 1.0};
  }
  // A plugin this suite does not know yet (a new scheme, 4-bit, ...): only sanity.
  return {5e-2, 5e-2, 0.0};
}

struct conformance_case {
  std::string id;
  std::map<std::string, std::string> options;  // only the options that differ from the defaults
  std::string name;
};

struct discovery {
  plugin_registry registry;
  std::vector<conformance_case> cases;
  std::string error;  // set when discovery itself failed: one test reports it
};

std::string sanitize(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// Each plugin with its defaults, then each choice and boolean option changed one at a time, plus
// a few combinations that exercise paths no single change reaches.
std::vector<conformance_case> cases_for(const qexp_plugin_info& info) {
  std::vector<std::map<std::string, std::string>> variants{{}};
  for (std::size_t i = 0; i < info.n_options; ++i) {
    const auto& spec = info.options[i];
    std::vector<std::string> values;
    if (spec.type == option_type::choice) values = qexp::option_choices(spec);
    if (spec.type == option_type::boolean) values = {"true", "false"};
    for (const auto& v : values)
      if (v != spec.default_value) variants.push_back({{spec.name, v}});
  }
  const std::string id = info.id;
  if (id == "dynamic-int8") {
    variants.push_back({{"granularity", "per_channel"}, {"engine", "qnnpack"}});
    variants.push_back({{"granularity", "per_channel"}, {"activation_granularity", "per_token"},
                        {"reduce_range", "false"}});
  }
  if (id == "onednn-int8") {
    variants.push_back({{"activation_type", "s8"}, {"activation_granularity", "per_token"}});
    variants.push_back({{"granularity", "per_tensor"}, {"activation_granularity", "per_token"}});
  }
  std::vector<conformance_case> out;
  for (const auto& options : variants) {
    std::string name = sanitize(id);
    if (options.empty()) name += "_defaults";
    for (const auto& [k, v] : options) name += "_" + sanitize(k) + "_" + sanitize(v);
    out.push_back({id, options, name});
  }
  return out;
}

discovery& discovered() {
  static discovery* d = [] {
    auto* result = new discovery();
    try {
      result->registry = plugin_registry::discover();
      for (const auto& record : result->registry.plugins())
        for (auto& c : cases_for(*record.info)) result->cases.push_back(std::move(c));
    } catch (const std::exception& e) {
      result->error = e.what();
    }
    return result;
  }();
  return *d;
}

// ---------------------------------------------------------------------------------------------
// Reference arithmetic and data.

at::Tensor reference_output(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto y = at::matmul(x.to(at::kDouble), w.to(at::kDouble).t());
  return b.defined() ? y + b.to(at::kDouble) : y;
}

double nmse(const at::Tensor& y, const at::Tensor& ref) {
  const double err = (y.to(at::kDouble) - ref.to(at::kDouble)).pow(2).sum().item<double>();
  const double energy = ref.to(at::kDouble).pow(2).sum().item<double>();
  return energy > 0 ? err / energy : err;
}

struct random_layer {
  layer l;
  random_layer(int64_t k, int64_t n, uint64_t seed, bool with_bias = true) {
    at::manual_seed(seed);
    l.name = "test.linear_" + std::to_string(k) + "x" + std::to_string(n);
    l.weight = at::randn({n, k}) / std::sqrt(static_cast<double>(k));
    // Some rows much wider than others, as in trained layers: per-channel scales should pay off.
    l.weight.mul_(at::rand({n, 1}) * 1.5 + 0.25);
    if (with_bias) l.bias = at::randn({n}) * 0.1;
  }
};

class in_memory_tensors final : public tensor_writer, public tensor_reader {
 public:
  void add_tensor(const std::string& name, const at::Tensor& tensor) override {
    static const std::set<at::ScalarType> allowed{at::kFloat, at::kHalf, at::kChar,
                                                  at::kByte,  at::kInt,  at::kLong};
    ASSERT_TRUE(allowed.count(tensor.scalar_type())) << name << " has dtype " << tensor.scalar_type();
    ASSERT_TRUE(tensor.device().is_cpu()) << name;
    ASSERT_FALSE(tensors.count(name)) << name << " written twice";
    tensors[name] = tensor.clone();  // the layer's own buffers must not leak into the checkpoint
  }
  bool has_tensor(const std::string& name) const override { return tensors.count(name) > 0; }
  at::Tensor tensor(const std::string& name) const override {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error("no tensor " + name);
    return it->second;
  }
  std::map<std::string, at::Tensor> tensors;
};

// ---------------------------------------------------------------------------------------------

class plugin_conformance : public ::testing::TestWithParam<conformance_case> {
 protected:
  void SetUp() override {
    const auto& c = GetParam();
    const auto& record = discovered().registry.find(c.id);
    if (!record.supported) GTEST_SKIP() << c.id << " cannot run here: " << record.unsupported_reason;
    quantizer_ = discovered().registry.create(c.id, c.options);
    ASSERT_TRUE(quantizer_);
    budget_ = budget_for(c.id, c.options);
  }

  std::unique_ptr<packed_linear> prepare(const layer& l) { return quantizer_->prepare(l); }

  // The checks, one per part of the contract. They run in one test per plugin configuration (a
  // process per test under ctest costs a second of libtorch start-up); each failure names its check.
  void odd_shapes_match_the_float64_reference();
  void leading_dimensions_are_kept_and_bias_is_optional();
  void empty_input_gives_an_empty_output();
  void zero_input_gives_the_bias();
  void constant_and_outlier_inputs();
  void non_finite_inputs_poison_only_their_rows();
  void dequantized_weight_is_what_forward_multiplies_by();
  void packed_bytes_match_the_scheme();
  void save_then_load_gives_bit_identical_outputs();
  void wrong_input_width_is_an_error_not_a_crash();

  std::unique_ptr<linear_quantizer> quantizer_;
  plugin_budget budget_{};
};

TEST(plugin_conformance_discovery, finds_the_plugins_of_this_tree) {
  ASSERT_TRUE(discovered().error.empty()) << discovered().error;
  std::set<std::string> ids;
  for (const auto& c : discovered().cases) ids.insert(c.id);
  for (const char* id : {"fp32", "dynamic-int8", "onednn-int8"}) EXPECT_TRUE(ids.count(id)) << id;
}

void plugin_conformance::odd_shapes_match_the_float64_reference() {
  struct shape {
    int64_t m, k, n;
  };
  const std::vector<shape> shapes{{1, 40, 24},  {3, 40, 24},  {17, 40, 24},   {128, 40, 24},
                                  {5, 33, 7},   {17, 100, 19}, {22, 768, 3072}};
  for (const auto& s : shapes) {
    SCOPED_TRACE("M=" + std::to_string(s.m) + " K=" + std::to_string(s.k) + " N=" + std::to_string(s.n));
    random_layer rl(s.k, s.n, 1000 + s.k * 7 + s.n);
    auto lin = prepare(rl.l);
    auto x = at::randn({s.m, s.k});
    auto y = lin->forward(x);
    ASSERT_EQ(y.sizes(), (at::IntArrayRef{s.m, s.n}));
    ASSERT_EQ(y.scalar_type(), at::kFloat);
    ASSERT_TRUE(at::isfinite(y).all().item<bool>());
    const double e = nmse(y, reference_output(x, rl.l.weight, rl.l.bias));
    EXPECT_LE(e, budget_.nmse);
    std::ostringstream text;
    text << std::scientific << e;
    RecordProperty("nmse_" + std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n),
                   text.str());
  }
}

void plugin_conformance::leading_dimensions_are_kept_and_bias_is_optional() {
  random_layer rl(40, 24, 7, /*with_bias=*/false);
  auto lin = prepare(rl.l);
  auto x = at::randn({2, 5, 40});
  auto y = lin->forward(x);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, 5, 24}));
  EXPECT_LE(nmse(y, reference_output(x, rl.l.weight, at::Tensor())), budget_.nmse);
}

// A batch can be empty (a filtered dataset, a split with no rows): [0, in] -> [0, out].
void plugin_conformance::empty_input_gives_an_empty_output() {
  random_layer rl(40, 24, 37);
  auto lin = prepare(rl.l);
  auto y = lin->forward(at::zeros({0, 40}));
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{0, 24}));
  EXPECT_EQ(lin->forward(at::zeros({2, 0, 40})).sizes(), (at::IntArrayRef{2, 0, 24}));
}

void plugin_conformance::zero_input_gives_the_bias() {
  random_layer rl(40, 24, 11);
  auto lin = prepare(rl.l);
  for (int64_t m : {1, 6}) {
    auto y = lin->forward(at::zeros({m, 40}));
    ASSERT_TRUE(at::isfinite(y).all().item<bool>()) << "M=" << m;
    EXPECT_TRUE(at::allclose(y, rl.l.bias.expand({m, 24}), 0, 1e-6)) << "M=" << m;
  }
}

void plugin_conformance::constant_and_outlier_inputs() {
  random_layer rl(96, 40, 13);
  auto lin = prepare(rl.l);
  for (float c : {0.5f, -3.f, 1e-3f}) {
    auto x = at::full({4, 96}, c);
    auto y = lin->forward(x);
    ASSERT_TRUE(at::isfinite(y).all().item<bool>()) << c;
    EXPECT_LE(nmse(y, reference_output(x, rl.l.weight, rl.l.bias)), budget_.nmse) << "constant " << c;
  }
  // A few activations 100x the rest, as in transformer residual streams: per-tensor schemes lose
  // the small values' resolution, so the budget is looser, but nothing may overflow or go NaN.
  auto x = at::randn({8, 96});
  x.index_put_({2, 5}, 300.f);
  x.index_put_({6, 50}, -250.f);
  auto y = lin->forward(x);
  ASSERT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_LE(nmse(y, reference_output(x, rl.l.weight, rl.l.bias)), 10 * budget_.nmse);
}

// The documented behaviour of every plugin: an output row whose input row holds a NaN or an Inf is
// entirely non-finite; every other row is finite and as accurate as usual.
void plugin_conformance::non_finite_inputs_poison_only_their_rows() {
  random_layer rl(40, 24, 17);
  auto lin = prepare(rl.l);
  auto x = at::randn({6, 40});
  const float inf = std::numeric_limits<float>::infinity();
  x.index_put_({1, 3}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({3, 0}, inf);
  x.index_put_({4, 39}, -inf);
  auto y = lin->forward(x);
  const std::set<int64_t> bad{1, 3, 4};
  std::vector<int64_t> good_rows;
  for (int64_t r = 0; r < 6; ++r) {
    if (bad.count(r)) {
      EXPECT_FALSE(at::isfinite(y[r]).any().item<bool>()) << "row " << r << ": " << y[r];
    } else {
      EXPECT_TRUE(at::isfinite(y[r]).all().item<bool>()) << "row " << r;
      good_rows.push_back(r);
    }
  }
  auto idx = at::tensor(good_rows, at::kLong);
  EXPECT_LE(nmse(y.index_select(0, idx), reference_output(x.index_select(0, idx), rl.l.weight, rl.l.bias)),
            budget_.nmse);
}

// One-hot rows quantize exactly under any per-row or per-tensor activation scheme (the value is
// the range's end point), so the output reads back v * W_dq^T + b: the weight the layer really
// multiplies by must be the one dequantized_weight() reports.
void plugin_conformance::dequantized_weight_is_what_forward_multiplies_by() {
  const int64_t k = 40, n = 24;
  random_layer rl(k, n, 19);
  auto lin = prepare(rl.l);
  auto w_dq = lin->dequantized_weight();
  ASSERT_EQ(w_dq.sizes(), (at::IntArrayRef{n, k}));
  ASSERT_EQ(w_dq.scalar_type(), at::kFloat);
  const double weight_error = nmse(w_dq, rl.l.weight);
  EXPECT_LE(weight_error, budget_.weight_nmse);
  std::ostringstream text;
  text << std::scientific << weight_error;
  RecordProperty("weight_nmse", text.str());
  for (float v : {1.f, -2.5f}) {
    auto y = lin->forward(at::eye(k) * v);
    auto expected = (w_dq.t().to(at::kDouble) * v + rl.l.bias.to(at::kDouble)).to(at::kFloat);
    EXPECT_TRUE(at::allclose(y, expected, 1e-5, 1e-6))
        << "v=" << v << " max |diff| " << (y - expected).abs().max().item<float>();
  }
  // And on ordinary inputs the output is closer to x W_dq^T + b than the budget allows for
  // activation quantization alone.
  auto x = at::randn({17, k});
  EXPECT_LE(nmse(lin->forward(x), reference_output(x, w_dq, rl.l.bias)), budget_.nmse);
}

void plugin_conformance::packed_bytes_match_the_scheme() {
  const int64_t k = 768, n = 3072;
  random_layer rl(k, n, 23);
  auto lin = prepare(rl.l);
  const double bytes = static_cast<double>(lin->packed_bytes());
  if (budget_.bytes_per_weight == 0) {
    EXPECT_GT(bytes, 0.0);
    EXPECT_LE(bytes, 4.0 * n * k + 16.0 * n + 4096) << "more than a float32 layer";
    return;
  }
  const double weights = static_cast<double>(n * k) * budget_.bytes_per_weight;
  // Beyond the weights: the bias, scales and per-channel sums, a few words per output channel.
  EXPECT_GE(bytes, weights + 4.0 * n);  // the float bias at least
  EXPECT_LE(bytes, weights * 1.02 + 16.0 * n + 4096) << "bytes per weight: " << bytes / (n * k);
}

void plugin_conformance::save_then_load_gives_bit_identical_outputs() {
  for (bool with_bias : {true, false}) {
    SCOPED_TRACE(with_bias ? "with bias" : "without bias");
    random_layer rl(100, 19, 29, with_bias);
    auto lin = prepare(rl.l);
    in_memory_tensors store;
    lin->save(store, "layer.3.ffn");
    ASSERT_FALSE(store.tensors.empty());
    for (const auto& [name, t] : store.tensors) EXPECT_EQ(name.rfind("layer.3.ffn.", 0), 0u) << name;
    // A fresh quantizer, as a later process would have: nothing but the checkpoint is shared.
    auto fresh = discovered().registry.create(GetParam().id, GetParam().options);
    auto loaded = fresh->load(store, "layer.3.ffn");
    for (int64_t m : {1, 9, 64}) {
      auto x = at::randn({m, 100});
      EXPECT_TRUE(at::equal(lin->forward(x), loaded->forward(x))) << "M=" << m;
    }
    EXPECT_TRUE(at::equal(lin->dequantized_weight(), loaded->dequantized_weight()));
    EXPECT_EQ(lin->packed_bytes(), loaded->packed_bytes());
  }
}

void plugin_conformance::wrong_input_width_is_an_error_not_a_crash() {
  random_layer rl(40, 24, 31);
  auto lin = prepare(rl.l);
  EXPECT_ANY_THROW(lin->forward(at::randn({3, 41})));
}

TEST_P(plugin_conformance, meets_the_plugin_contract) {
  {
    SCOPED_TRACE("check: odd_shapes_match_the_float64_reference");
    odd_shapes_match_the_float64_reference();
  }
  {
    SCOPED_TRACE("check: leading_dimensions_are_kept_and_bias_is_optional");
    leading_dimensions_are_kept_and_bias_is_optional();
  }
  {
    SCOPED_TRACE("check: empty_input_gives_an_empty_output");
    empty_input_gives_an_empty_output();
  }
  {
    SCOPED_TRACE("check: zero_input_gives_the_bias");
    zero_input_gives_the_bias();
  }
  {
    SCOPED_TRACE("check: constant_and_outlier_inputs");
    constant_and_outlier_inputs();
  }
  {
    SCOPED_TRACE("check: non_finite_inputs_poison_only_their_rows");
    non_finite_inputs_poison_only_their_rows();
  }
  {
    SCOPED_TRACE("check: dequantized_weight_is_what_forward_multiplies_by");
    dequantized_weight_is_what_forward_multiplies_by();
  }
  {
    SCOPED_TRACE("check: packed_bytes_match_the_scheme");
    packed_bytes_match_the_scheme();
  }
  {
    SCOPED_TRACE("check: save_then_load_gives_bit_identical_outputs");
    save_then_load_gives_bit_identical_outputs();
  }
  {
    SCOPED_TRACE("check: wrong_input_width_is_an_error_not_a_crash");
    wrong_input_width_is_an_error_not_a_crash();
  }
}

void PrintTo(const conformance_case& c, std::ostream* os) {
  *os << c.id << " {";
  for (const auto& [k, v] : c.options) *os << " " << k << ": " << v;
  *os << " }";
}

std::string case_name(const ::testing::TestParamInfo<conformance_case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(every_plugin, plugin_conformance, ::testing::ValuesIn(discovered().cases), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(plugin_conformance);

}  // namespace
}  // namespace qexp
