// The static-int8 plugin at the layer level, through the plugin API as the host drives it
// (begin / observe / finish_calibration / prepare, the plugin found by plugin_registry::discover):
// - a Linear whose input has a few channels 50x the rest, as BERT's LayerNorm outputs do: a
//   per-tensor static range set by minmax loses the small channels, SmoothQuant and the
//   percentile calibrator win most of it back, measured as SQNR on held-out rows;
// - the fixed-scale arithmetic against a float reference (oneDNN 2.x adds the bias before the
//   output scales: the plugin must carry it so), each calibrator's range on known data;
// - the input group: one scale for q, k and v, and one quantization of their shared input that
//   is reused only when it is safe; save/load; the portable kernels against the fast ones.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "qexp/int8_gemm.h"
#include "qexp/plugin_registry.h"

namespace qexp {
namespace {

const plugin_registry& registry() {
  static const auto* r = new plugin_registry(plugin_registry::discover());
  return *r;
}

at::Generator generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// What `kernel: auto` needs for int8_gemm's VNNI kernel (and `kernel: onednn` for brgemm).
bool fast_path() {
  __builtin_cpu_init();
  return qexp::int8_gemm::vnni_available() && __builtin_cpu_supports("avx512dq");
}

// A checkpoint in memory.
class tensors final : public tensor_writer, public tensor_reader {
 public:
  void add_tensor(const std::string& name, const at::Tensor& t) override { map[name] = t.clone(); }
  bool has_tensor(const std::string& name) const override { return map.count(name) > 0; }
  at::Tensor tensor(const std::string& name) const override { return map.at(name); }
  std::map<std::string, at::Tensor> map;
};

// ---------------------------------------------------------------------------------------------
// The outlier-channel layer.

constexpr std::int64_t in_features = 768, out_features = 768;
const std::vector<std::int64_t> outlier_channels{17, 205, 388, 601};  // 4 of 768, 50x the rest

// Activations as a BERT LayerNorm output gives them: N(0, 1) per channel, a few channels 50x.
at::Tensor activations(std::int64_t rows, std::uint64_t seed) {
  auto gen = generator(seed);
  auto x = at::randn({rows, in_features}, gen);
  for (auto c : outlier_channels) x.select(1, c).mul_(50.0);
  return x.contiguous();
}

// Gaussian weights whose rows have different widths (per-channel weight scales matter), bias 0.1;
// the columns that read the outlier channels multiplied by `outlier_weight`.
layer outlier_layer(const std::string& name, std::uint64_t seed, double outlier_weight = 1.0) {
  auto gen = generator(seed);
  layer l;
  l.name = name;
  l.weight = (at::randn({out_features, in_features}, gen) / std::sqrt(static_cast<double>(in_features)) *
              (at::rand({out_features, 1}, gen) * 1.5 + 0.25))
                 .contiguous();
  for (auto c : outlier_channels) l.weight.select(1, c).mul_(outlier_weight);
  l.bias = at::randn({out_features}, gen) * 0.1;
  return l;
}

double sqnr_db(const at::Tensor& y, const at::Tensor& x, const layer& l) {
  auto ref = at::matmul(x.to(at::kDouble), l.weight.to(at::kDouble).t()) + l.bias.to(at::kDouble);
  const double noise = (y.to(at::kDouble) - ref).pow(2).sum().item<double>();
  const double signal = ref.pow(2).sum().item<double>();
  return 10.0 * std::log10(signal / noise);
}

// begin, 8 calibration batches of 64 rows, finish_calibration, prepare: what the host does (it
// calls observe only when the plugin wants calibration; dynamic activations without SmoothQuant
// do not).
std::unique_ptr<packed_linear> calibrated(linear_quantizer& q, const layer& l, std::uint64_t seed = 1) {
  quantizer_context context;
  context.groups.push_back({l.name, {l}});
  q.begin(context);
  if (q.wants_calibration())
    for (std::uint64_t b = 0; b < 8; ++b) q.observe(l.name, activations(64, seed + b));
  q.finish_calibration({l.name});
  return q.prepare(l);
}

struct sqnr_case {
  const char* label;
  std::map<std::string, std::string> options;
};

std::map<std::string, double> measure_sqnr(const std::vector<sqnr_case>& cases, double outlier_weight) {
  const layer l = outlier_layer("test.outliers", 11, outlier_weight);
  const auto held_out = activations(256, 1000);  // not among the calibration rows
  std::map<std::string, double> out;
  for (const auto& c : cases) {
    auto q = registry().create_linear("static-int8", c.options);
    auto lin = calibrated(*q, l);
    out[c.label] = sqnr_db(lin->forward(held_out), held_out, l);
    std::printf("  %-34s SQNR %6.2f dB\n", c.label, out[c.label]);
  }
  return out;
}

// Each SQNR as a test property (--gtest_output=xml), named with letters, digits and '_' only.
void record(const std::map<std::string, double>& sqnr) {
  for (const auto& [label, db] : sqnr) {
    std::string key = "sqnr_db_";
    for (char ch : label) key += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
    ::testing::Test::RecordProperty(key, std::to_string(db));
  }
}

const std::vector<sqnr_case> sqnr_cases{
    {"minmax", {}},
    {"percentile 99.99", {{"calibrator", "percentile"}}},
    {"percentile 99.9", {{"calibrator", "percentile"}, {"percentile", "99.9"}}},
    {"entropy", {{"calibrator", "entropy"}}},
    {"mse", {{"calibrator", "mse"}}},
    {"smoothquant 0.5", {{"smoothquant", "true"}}},
    {"smoothquant 0.5 + percentile", {{"smoothquant", "true"}, {"calibrator", "percentile"}}},
    {"smoothquant 0.5 + mse", {{"smoothquant", "true"}, {"calibrator", "mse"}}},
    {"smoothquant 0.8", {{"smoothquant", "true"}, {"alpha", "0.8"}}},
    {"dynamic (per call)", {{"activations", "dynamic"}}},
    {"dynamic + smoothquant 0.5", {{"activations", "dynamic"}, {"smoothquant", "true"}}},
};

// Outlier channels read by ordinary weights: they carry most of the output's energy. A per-tensor
// range set by their max leaves the other 764 channels about 1.4 quantization steps per unit of
// their spread; SmoothQuant moves most of the outliers' range into the weights and wins it back;
// clipping the outliers (percentile 99.9, entropy) destroys the signal they carry.
TEST(static_int8, sqnr_when_the_outlier_channels_carry_the_output) {
  std::printf("outlier channels read by ordinary weights (they dominate the output):\n");
  const auto sqnr = measure_sqnr(sqnr_cases, 1.0);
  record(sqnr);
  const double minmax = sqnr.at("minmax");
  // Measured: minmax 20.3 dB, SmoothQuant 0.5 33.2 dB, 0.8 31.4 dB, percentile 99.9 12.1 dB.
  EXPECT_LT(minmax, 22.0);
  EXPECT_GT(sqnr.at("smoothquant 0.5"), minmax + 11.0);
  EXPECT_GT(sqnr.at("smoothquant 0.8"), minmax + 9.0);
  EXPECT_GT(sqnr.at("dynamic + smoothquant 0.5"), sqnr.at("dynamic (per call)") + 11.0);
  EXPECT_LT(sqnr.at("percentile 99.9"), minmax - 5.0);
  EXPECT_LT(sqnr.at("entropy"), minmax - 5.0);
  EXPECT_NEAR(sqnr.at("dynamic (per call)"), minmax, 1.0);  // per call or calibrated: the same max
}

// The same activations, the outlier channels read by weights 0.1x the others (they carry little
// of the output): now the small channels' resolution is what counts, and clipping the outliers'
// range (percentile, entropy) wins it back too.
TEST(static_int8, sqnr_when_the_outlier_channels_carry_little_of_the_output) {
  std::printf("outlier channels read by weights 0.1x the others:\n");
  const auto sqnr = measure_sqnr(sqnr_cases, 0.1);
  record(sqnr);
  const double minmax = sqnr.at("minmax");
  // Measured: minmax 9.7 dB, percentile 99.99 12.1 dB, 99.9 15.6 dB, entropy 15.5 dB, mse 11.3 dB,
  // SmoothQuant 0.5 35.0 dB.
  EXPECT_LT(minmax, 12.0);
  EXPECT_GT(sqnr.at("smoothquant 0.5"), minmax + 20.0);
  EXPECT_GT(sqnr.at("percentile 99.99"), minmax + 1.5);
  EXPECT_GT(sqnr.at("percentile 99.9"), minmax + 4.5);
  EXPECT_GT(sqnr.at("entropy"), minmax + 4.5);
  EXPECT_GT(sqnr.at("mse"), minmax + 1.0);
  EXPECT_GT(sqnr.at("smoothquant 0.5 + percentile"), minmax + 20.0);
}

// ---------------------------------------------------------------------------------------------
// The arithmetic of the fixed scale.

// Quantizes like the plugin documents it: q = clamp(round(x * (1 / scale)), lo - zp, hi - zp) + zp,
// the reciprocal and the product in float32, round half to even; dequantized (q - zp) * scale.
at::Tensor fake_quantized(const at::Tensor& x, float scale, std::int32_t zp, bool u8) {
  const float inv = 1.f / scale;
  const double lo = u8 ? -zp : -127, hi = u8 ? 255 - zp : 127;
  return at::clamp(at::round(x * inv), lo, hi).to(at::kDouble) * static_cast<double>(scale);
}

TEST(static_int8, fixed_scale_output_is_the_float_reference_of_the_saved_scale_and_weights) {
  const layer l = outlier_layer("test.reference", 21);
  for (const char* type : {"u8", "s8"}) {
    SCOPED_TRACE(type);
    auto q = registry().create_linear("static-int8", {{"activation_type", type}, {"calibrator", "percentile"}});
    auto lin = calibrated(*q, l);
    tensors saved;
    lin->save(saved, "p");
    const float scale = saved.tensor("p.input_scale").item<float>();
    const bool u8 = std::string(type) == "u8";
    const std::int32_t zp = u8 ? saved.tensor("p.input_zero_point").item<std::int32_t>() : 0;
    if (u8) {
      EXPECT_GT(zp, 0);  // a zero point the matmul must really handle
    }
    const auto x = activations(37, 77);
    const auto ref = at::matmul(fake_quantized(x, scale, zp, u8), lin->dequantized_weight().to(at::kDouble).t()) +
                     l.bias.to(at::kDouble);
    const auto y = lin->forward(x).to(at::kDouble);
    const double scale_of_y = ref.abs().max().item<double>();
    EXPECT_LT((y - ref).abs().max().item<double>(), 1e-5 * scale_of_y);
    // The same layer without a bias: nothing to carry before the output scales.
    layer no_bias = l;
    no_bias.bias = at::Tensor();
    auto q2 = registry().create_linear("static-int8", {{"activation_type", type}, {"calibrator", "percentile"}});
    auto y2 = calibrated(*q2, no_bias)->forward(x).to(at::kDouble);
    EXPECT_LT((y2 - (ref - l.bias.to(at::kDouble))).abs().max().item<double>(), 1e-5 * scale_of_y);
  }
}

// Each calibrator's range on data whose answer is known: 20000 values uniform in [-1, 1] per
// batch (s8, so the range is symmetric: input_scale = threshold / 127) and one outlier of 10.
float calibrated_scale(const std::map<std::string, std::string>& options, bool one_sided = false) {
  std::map<std::string, std::string> o = options;
  if (!o.count("activation_type")) o["activation_type"] = "s8";
  auto q = registry().create_linear("static-int8", o);
  layer l;
  l.name = "test.ranges";
  l.weight = at::eye(40);
  quantizer_context context;
  context.groups.push_back({l.name, {l}});
  q->begin(context);
  auto gen = generator(5);
  for (int b = 0; b < 4; ++b) {
    auto rows = at::rand({500, 40}, gen) * 2 - 1;
    if (one_sided) rows = rows.abs() * 2;  // [0, 2]
    if (b == 1) rows.index_put_({3, 3}, 10.f);
    if (b == 2) rows.index_put_({4, 4}, std::numeric_limits<float>::quiet_NaN());  // ignored
    q->observe(l.name, rows);
  }
  q->finish_calibration({l.name});
  tensors saved;
  q->prepare(l)->save(saved, "p");
  return saved.tensor("p.input_scale").item<float>();
}

TEST(static_int8, each_calibrator_picks_the_range_its_definition_gives) {
  EXPECT_NEAR(calibrated_scale({}) * 127, 10.0, 1e-5);                                 // max |x|
  EXPECT_NEAR(calibrated_scale({{"calibrator", "percentile"}, {"percentile", "99"}}) * 127, 0.99, 0.01);
  EXPECT_NEAR(calibrated_scale({{"calibrator", "percentile"}, {"percentile", "90"}}) * 127, 0.90, 0.01);
  EXPECT_NEAR(calibrated_scale({{"calibrator", "percentile"}, {"percentile", "100"}}) * 127, 10.0, 1e-5);
  // KL divergence ignores the lone outlier's mass: the threshold stays near the bulk's end, 1.
  const float entropy = calibrated_scale({{"calibrator", "entropy"}}) * 127;
  EXPECT_GT(entropy, 0.8);
  EXPECT_LT(entropy, 1.2);
  // Squared error weighs it: for t in [1, 10], clipping costs (10 - t)^2 and rounding 80000
  // uniform values costs 80000 (t / 127)^2 / 12, minimal at t = 20 / (2 + 80000 / (6 * 127^2)) = 7.08.
  // (The discrete data make the curve ripple by about 0.2 around that.)
  EXPECT_NEAR(calibrated_scale({{"calibrator", "mse"}}) * 127, 7.08, 0.25);
  // u8 over [0, 2] with the outlier: minmax spans [0, 10]; percentile 99 keeps 99% of the values
  // between the 0.5-th and 99.5-th percentiles, [0.01, 1.99], and the range always holds 0.
  EXPECT_NEAR(calibrated_scale({{"activation_type", "u8"}}, true) * 255, 10.0, 1e-5);
  EXPECT_NEAR(calibrated_scale({{"activation_type", "u8"}, {"calibrator", "percentile"}, {"percentile", "99"}}, true) * 255,
              1.99, 0.02);
}

// ---------------------------------------------------------------------------------------------
// Input groups.

struct qkv {
  std::unique_ptr<linear_quantizer> quantizer;
  std::vector<layer> layers;
  std::vector<std::unique_ptr<packed_linear>> packed;
};

// q, k and v of one block: one input group; observe() gets the same rows tensor for each, per
// batch, as the host's observer passes it.
qkv prepare_qkv(const std::map<std::string, std::string>& options) {
  qkv out;
  out.quantizer = registry().create_linear("static-int8", options);
  input_group g{"test.layer.0.attention.qkv", {}};
  for (const char* m : {"q_lin", "k_lin", "v_lin"}) {
    out.layers.push_back(outlier_layer(std::string("test.layer.0.attention.") + m, out.layers.size() + 31));
    g.members.push_back(out.layers.back());
  }
  quantizer_context context;
  context.groups.push_back(g);
  out.quantizer->begin(context);
  std::vector<std::string> names;
  for (const auto& l : out.layers) names.push_back(l.name);
  for (std::uint64_t b = 0; b < 4; ++b) {
    const auto rows = activations(64, 50 + b);
    for (const auto& name : names) out.quantizer->observe(name, rows);
  }
  out.quantizer->finish_calibration(names);
  for (const auto& l : out.layers) out.packed.push_back(out.quantizer->prepare(l));
  return out;
}

TEST(static_int8, an_input_group_shares_one_scale_and_one_smoothing_vector) {
  auto g = prepare_qkv({{"smoothquant", "true"}});
  std::vector<tensors> saved(3);
  for (int i = 0; i < 3; ++i) g.packed[i]->save(saved[i], "p");
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(at::equal(saved[i].tensor("p.input_scale"), saved[0].tensor("p.input_scale")));
    EXPECT_TRUE(at::equal(saved[i].tensor("p.input_zero_point"), saved[0].tensor("p.input_zero_point")));
    EXPECT_TRUE(at::equal(saved[i].tensor("p.smooth"), saved[0].tensor("p.smooth")));
    EXPECT_TRUE(at::equal(saved[i].tensor("p.input_group"), saved[0].tensor("p.input_group")));
  }
  // max|W_j| is taken over the three weights: the smoothing vector differs from q's alone.
  auto alone = registry().create_linear("static-int8", {{"smoothquant", "true"}});
  quantizer_context context;
  context.groups.push_back({g.layers[0].name, {g.layers[0]}});
  alone->begin(context);
  for (std::uint64_t b = 0; b < 4; ++b) alone->observe(g.layers[0].name, activations(64, 50 + b));
  alone->finish_calibration({g.layers[0].name});
  tensors alone_saved;
  alone->prepare(g.layers[0])->save(alone_saved, "p");
  EXPECT_FALSE(at::equal(alone_saved.tensor("p.smooth"), saved[0].tensor("p.smooth")));
}

TEST(static_int8, a_group_reuses_its_quantized_input_only_when_it_is_the_same_input) {
  for (const char* mode : {"static", "dynamic"}) {
    SCOPED_TRACE(mode);
    auto g = prepare_qkv({{"smoothquant", "true"}, {"activations", mode}});
    auto& q = *g.packed[0];
    auto& k = *g.packed[1];
    auto& v = *g.packed[2];
    // Each member alone, on its own copy of the input: nothing to reuse.
    const auto x = activations(25, 99);
    const auto qa = q.forward(x.clone()), ka = k.forward(x.clone()), va = v.forward(x.clone());
    // The host's order, then out of order and repeated: always the same results.
    EXPECT_TRUE(at::equal(q.forward(x), qa));
    EXPECT_TRUE(at::equal(k.forward(x), ka));
    EXPECT_TRUE(at::equal(v.forward(x), va));
    EXPECT_TRUE(at::equal(v.forward(x), va));
    EXPECT_TRUE(at::equal(q.forward(x), qa));
    EXPECT_TRUE(at::equal(q.forward(x), qa));
    EXPECT_TRUE(at::equal(k.forward(x), ka));
    // An in-place write between two members: k must see the new values (version counter).
    auto y = x.clone();
    q.forward(y);
    y.mul_(-0.5);
    EXPECT_TRUE(at::equal(k.forward(y), k.forward(y.clone())));
    // Another tensor over the same memory (from_blob over a buffer rewritten in between): another
    // TensorImpl, so k quantizes again.
    std::vector<float> buffer(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    q.forward(at::from_blob(buffer.data(), x.sizes()));
    for (auto& f : buffer) f *= 2;
    const auto doubled = at::from_blob(buffer.data(), x.sizes());
    EXPECT_TRUE(at::equal(k.forward(doubled), k.forward(doubled.clone())));
    // Another input between two members: v quantizes its own.
    q.forward(x);
    k.forward(activations(25, 98));
    EXPECT_TRUE(at::equal(v.forward(x), va));
    // A view with other strides over the same data is another input.
    const auto wide = activations(50, 97);
    const auto every_other = wide.slice(0, 0, 50, 2);
    q.forward(wide.slice(0, 0, 25));
    EXPECT_TRUE(at::equal(k.forward(every_other), k.forward(every_other.contiguous())));
    // Inference tensors (the host runs under InferenceMode) are reused the same way.
    {
      c10::InferenceMode guard;
      const auto xi = x.clone();
      EXPECT_TRUE(at::equal(q.forward(xi), qa));
      EXPECT_TRUE(at::equal(k.forward(xi), ka));
      EXPECT_TRUE(at::equal(v.forward(xi), va));
    }
  }
}

TEST(static_int8, save_then_load_is_bit_identical_and_keeps_the_group) {
  for (const auto& options : std::vector<std::map<std::string, std::string>>{
           {{"smoothquant", "true"}},
           {{"activation_type", "s8"}, {"calibrator", "entropy"}, {"granularity", "per_tensor"}},
           {{"activations", "dynamic"}, {"smoothquant", "true"}}}) {
    auto g = prepare_qkv(options);
    tensors saved;
    const char* prefixes[] = {"m.q_lin", "m.k_lin", "m.v_lin"};
    for (int i = 0; i < 3; ++i) g.packed[i]->save(saved, prefixes[i]);
    auto fresh = registry().create_linear("static-int8", options);  // never saw begin()
    std::vector<std::unique_ptr<packed_linear>> loaded;
    for (const char* p : prefixes) loaded.push_back(fresh->load(saved, p));
    const auto x = activations(19, 123);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(at::equal(loaded[i]->forward(x), g.packed[i]->forward(x.clone())));
      EXPECT_TRUE(at::equal(loaded[i]->dequantized_weight(), g.packed[i]->dequantized_weight()));
      EXPECT_EQ(loaded[i]->packed_bytes(), g.packed[i]->packed_bytes());
    }
  }
}

TEST(static_int8, kernels_agree_vnni_and_portable_bit_for_bit_onednn_to_rounding) {
  if (!fast_path()) GTEST_SKIP() << "no AVX-512 VNNI: every run would be portable";
  const layer l = outlier_layer("test.kernels", 61);
  for (const auto& options : std::vector<std::map<std::string, std::string>>{
           {}, {{"activation_type", "s8"}}, {{"smoothquant", "true"}}, {{"activations", "dynamic"}},
           {{"activations", "dynamic"}, {"smoothquant", "true"}, {"activation_type", "s8"}}}) {
    auto portable_options = options, onednn_options = options;
    portable_options["kernel"] = "portable";
    onednn_options["kernel"] = "onednn";
    auto fast = calibrated(*registry().create_linear("static-int8", options), l);
    auto portable = calibrated(*registry().create_linear("static-int8", portable_options), l);
    auto onednn = calibrated(*registry().create_linear("static-int8", onednn_options), l);
    EXPECT_TRUE(at::equal(fast->dequantized_weight(), portable->dequantized_weight()));
    EXPECT_TRUE(at::equal(fast->dequantized_weight(), onednn->dequantized_weight()));
    for (std::int64_t m : {1, 7, 64}) {
      const auto x = activations(m, 200 + m);
      const auto a = fast->forward(x), b = portable->forward(x), c = onednn->forward(x);
      // int8_gemm's two builds: the same arithmetic, bit for bit.
      EXPECT_TRUE(at::equal(a, b)) << "M=" << m;
      // oneDNN: the same codes and integer sums; only the float scaling may round differently.
      EXPECT_LT((a - c).abs().max().item<double>(), 1e-5 * a.abs().max().item<double>()) << "M=" << m;
    }
  }
}

TEST(static_int8, many_row_counts_rebuild_evicted_primitives_correctly) {
  if (!fast_path()) GTEST_SKIP() << "no AVX-512 VNNI: no oneDNN primitives";
  const layer l = outlier_layer("test.rows", 71);
  auto lin = calibrated(*registry().create_linear("static-int8", {{"kernel", "onednn"}}), l);
  auto portable = calibrated(*registry().create_linear("static-int8", {{"kernel", "portable"}}), l);
  // 70 row counts (more than the 64 primitives a layer keeps), then the first ones again.
  for (std::int64_t m = 1; m <= 75; ++m) {
    const std::int64_t rows = m <= 70 ? m : m - 70;
    const auto x = activations(rows, 300 + static_cast<std::uint64_t>(m));
    const auto a = lin->forward(x), b = portable->forward(x);
    ASSERT_LT((a - b).abs().max().item<double>(), 1e-5 * a.abs().max().item<double>()) << "M=" << rows;
  }
}

TEST(static_int8, only_static_activations_or_smoothquant_ask_for_calibration) {
  EXPECT_TRUE(registry().create_linear("static-int8", {})->wants_calibration());
  EXPECT_TRUE(registry().create_linear("static-int8", {{"activations", "dynamic"}, {"smoothquant", "true"}})
                  ->wants_calibration());
  EXPECT_FALSE(registry().create_linear("static-int8", {{"activations", "dynamic"}})->wants_calibration());
}

TEST(static_int8, non_finite_weights_and_missing_calibration_are_errors) {
  layer l = outlier_layer("test.bad", 81);
  l.weight[3][5] = std::numeric_limits<float>::infinity();
  auto q = registry().create_linear("static-int8", {});
  try {
    calibrated(*q, l);
    FAIL() << "prepare accepted a weight holding Inf";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("NaN or Inf"), std::string::npos) << e.what();
  }
  const layer good = outlier_layer("test.uncalibrated", 82);
  auto q2 = registry().create_linear("static-int8", {});
  quantizer_context context;
  context.groups.push_back({good.name, {good}});
  q2->begin(context);
  q2->finish_calibration({good.name});
  try {
    q2->prepare(good);
    FAIL() << "prepare without calibration rows succeeded";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("test.uncalibrated"), std::string::npos) << e.what();
  }
  // Dynamic activations without SmoothQuant need no calibration data.
  auto q3 = registry().create_linear("static-int8", {{"activations", "dynamic"}});
  q3->begin(context);
  EXPECT_NO_THROW(q3->prepare(good));
}

}  // namespace
}  // namespace qexp
