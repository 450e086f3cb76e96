#include "qexp/conformance.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <set>

#include "qexp/errors.h"
#include "qexp/text.h"

namespace qexp {
namespace {

// ---------------------------------------------------------------------------------------------
// Reporting.

// Thrown by a check that found the plugin wrong; never escapes this file.
struct check_failure {
  std::string detail;
};

[[noreturn]] void fail(const std::string& detail) { throw check_failure{detail}; }

std::string sci(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", v);
  return text;
}

// packed_bytes() of a [rows, per_row] weight or table: about rows * per_row * `declared` bytes
// plus a few words per row, and at least `at_least` more; 0 declared: only "no more than float32".
void check_packed_bytes(conformance_check& r, std::size_t packed, std::int64_t per_row, std::int64_t rows,
                        double declared, double at_least, const std::string& unit) {
  const double bytes = static_cast<double>(packed);
  const double count = static_cast<double>(per_row * rows);
  r.measured["bytes_per_" + unit] = bytes / count;
  r.detail = sci(bytes / count) + " bytes per " + unit;
  if (declared == 0) {
    if (!(bytes > 0)) fail("packed_bytes() is 0");
    if (bytes > 4.0 * count + 16.0 * static_cast<double>(rows) + 4096)
      fail("packed_bytes() " + std::to_string(packed) + " is more than float32");
    return;
  }
  const double declared_bytes = count * declared;
  if (bytes < declared_bytes + at_least)
    fail("packed_bytes() " + std::to_string(packed) + " is less than the declared " + sci(declared) + " bytes per " +
         unit + (at_least > 0 ? " plus the float bias" : ""));
  if (bytes > declared_bytes * 1.02 + 16.0 * static_cast<double>(rows) + 4096)
    fail("packed_bytes() " + std::to_string(packed) + " is " + sci(bytes / count) + " bytes per " + unit +
         ", the plugin declares " + sci(declared));
}

conformance_check run_check(const std::string& name, const std::function<void(conformance_check&)>& body) {
  conformance_check out;
  out.name = name;
  try {
    body(out);
    out.passed = true;
  } catch (const check_failure& f) {
    out.detail = one_line(f.detail, 300);
  } catch (const std::exception& e) {
    out.detail = "threw: " + one_line(error_message(e), 300);
  } catch (...) {
    out.detail = "threw something that is not a std::exception";
  }
  if (!out.passed && out.detail.empty()) out.detail = "failed (no detail)";
  return out;
}

// Runs `body`, which must throw `Expected`, the type the contract names for that mistake
// (docs/writing-a-plugin.md): any other exception would reach the user with another exit code, or
// none. `what` describes the call and `expected` names the type for the message.
template <typename Expected>
void require_throw(const std::string& what, const char* expected, const std::function<void()>& body) {
  try {
    body();
  } catch (const Expected&) {
    return;
  } catch (const std::exception& e) {
    fail(what + " threw '" + one_line(error_message(e), 200) + "', which is not a " + expected);
  } catch (...) {
    fail(what + " threw something that is not a std::exception");
  }
  fail(what + " returned instead of throwing");
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

bool all_finite(const at::Tensor& t) { return t.numel() == 0 || at::isfinite(t).all().item<bool>(); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Generator generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// A Gaussian Linear whose rows have different widths, as in trained layers, so that per-channel
// scales pay off.
layer random_layer(std::int64_t k, std::int64_t n, std::uint64_t seed, bool with_bias = true) {
  auto gen = generator(seed);
  layer l;
  l.name = "test.linear_" + std::to_string(k) + "x" + std::to_string(n);
  l.weight = at::randn({n, k}, gen) / std::sqrt(static_cast<double>(k));
  l.weight.mul_(at::rand({n, 1}, gen) * 1.5 + 0.25);
  l.weight = l.weight.contiguous();
  if (with_bias) l.bias = at::randn({n}, gen) * 0.1;
  return l;
}

table random_table(std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
  auto gen = generator(seed);
  table t;
  t.name = "test.embeddings_" + std::to_string(rows) + "x" + std::to_string(dim);
  t.weight = (at::randn({rows, dim}, gen) * (at::rand({rows, 1}, gen) * 1.5 + 0.25)).contiguous();
  return t;
}

// The calibration data of a k-wide layer (see conformance.h).
std::vector<at::Tensor> calibration_batches(std::int64_t k) {
  auto gen = generator(0);
  std::vector<at::Tensor> batches;
  for (int b = 0; b < 4; ++b) {
    auto rows = at::randn({32, k}, gen);
    if (b == 2) rows.select(1, k / 3).mul_(20.0);
    batches.push_back(rows.contiguous());
  }
  return batches;
}

// A checkpoint in memory that records what a real one would refuse.
class in_memory_tensors final : public tensor_writer, public tensor_reader {
 public:
  void add_tensor(const std::string& name, const at::Tensor& tensor) override {
    static const std::set<at::ScalarType> allowed{at::kFloat, at::kHalf, at::kChar, at::kByte, at::kInt, at::kLong};
    if (!tensor.defined()) {
      problems.push_back(name + " is an undefined tensor");
      return;
    }
    if (!allowed.count(tensor.scalar_type()))
      problems.push_back(name + " has dtype " + std::string(c10::toString(tensor.scalar_type())));
    if (!tensor.device().is_cpu()) problems.push_back(name + " is not on the CPU");
    if (tensors.count(name)) problems.push_back(name + " written twice");
    tensors[name] = tensor.clone();  // the layer's own buffers must not leak into the checkpoint
  }
  bool has_tensor(const std::string& name) const override { return tensors.count(name) > 0; }
  at::Tensor tensor(const std::string& name) const override {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw checkpoint_error("conformance checkpoint: no tensor '" + name + "'");
    return it->second;
  }
  // Fails the check when anything was refused or a name lacks the prefix.
  void require_clean(const std::string& prefix) const {
    if (!problems.empty()) fail("save(): " + problems.front());
    if (tensors.empty()) fail("save() wrote no tensors");
    for (const auto& entry : tensors)
      if (entry.first.rfind(prefix + ".", 0) != 0)
        fail("save() wrote '" + entry.first + "', not under the prefix '" + prefix + ".'");
  }

  std::map<std::string, at::Tensor> tensors;
  std::vector<std::string> problems;
};

// ---------------------------------------------------------------------------------------------
// Linear checks.

class linear_suite {
 public:
  linear_suite(const plugin_registry& registry, const conformance_case& c, const conformance_budget& budget)
      : registry_(registry), case_(c), budget_(budget) {}

  std::unique_ptr<linear_quantizer> fresh() const {
    auto q = registry_.create_linear(case_.plugin, case_.options);
    if (!q) fail("create_linear returned null");
    return q;
  }

  // begin, calibration when wanted, prepare: what the host does for one site.
  std::unique_ptr<packed_linear> prepare(const layer& l) {
    auto q = fresh();
    quantizer_context context;
    context.seed = 0;
    context.groups.push_back({l.name + ".input", {l}});
    q->begin(context);
    calibrates_ = q->wants_calibration();
    if (calibrates_) {
      for (const auto& rows : calibration_batches(l.weight.size(1))) q->observe(l.name, rows);
      q->finish_calibration({l.name});
    }
    auto packed = q->prepare(l);
    if (!packed) fail("prepare() returned null for " + l.name);
    quantizers_.push_back(std::move(q));  // kept alive as long as what it prepared may be
    return packed;
  }

  std::vector<conformance_check> run() {
    std::vector<conformance_check> out;
    auto add = [&](const char* name, void (linear_suite::*check)(conformance_check&)) {
      out.push_back(run_check(std::string("linear.") + name, [&](conformance_check& r) { (this->*check)(r); }));
    };
    add("odd_shapes_match_the_float64_reference", &linear_suite::odd_shapes);
    add("leading_dimensions_are_kept_and_bias_is_optional", &linear_suite::leading_dimensions);
    add("empty_input_gives_an_empty_output", &linear_suite::empty_input);
    add("zero_input_gives_the_bias", &linear_suite::zero_input);
    add("constant_and_outlier_inputs", &linear_suite::constant_and_outlier);
    add("non_finite_inputs_poison_only_their_rows", &linear_suite::non_finite);
    add("dequantized_weight_is_what_forward_multiplies_by", &linear_suite::dequantized_weight);
    add("packed_bytes_match_the_scheme", &linear_suite::packed_bytes);
    add("save_then_load_gives_bit_identical_outputs", &linear_suite::save_load);
    add("wrong_input_width_is_an_error_not_a_crash", &linear_suite::wrong_width);
    add("prepare_keeps_the_float_weight", &linear_suite::keeps_float_weight);
    add("rows_independent_holds_when_claimed", &linear_suite::rows_independent);
    return out;
  }

 private:
  // Output checks shared by several checks: shape, dtype, finiteness, error against the budget.
  double require_accurate(const at::Tensor& y, const at::Tensor& x, const layer& l, double budget,
                          const std::string& what) {
    const double e = nmse(y, reference_output(x, l.weight, l.bias));
    if (!(e <= budget)) fail(what + ": nmse " + sci(e) + " above the budget " + sci(budget));
    return e;
  }

  void odd_shapes(conformance_check& r) {
    struct shape {
      std::int64_t m, k, n;
    };
    const std::vector<shape> shapes{{1, 40, 24}, {3, 40, 24},   {17, 40, 24},   {128, 40, 24},
                                    {5, 33, 7},  {17, 100, 19}, {22, 768, 3072}};
    double worst = 0;
    for (const auto& s : shapes) {
      const std::string where = "M=" + std::to_string(s.m) + " K=" + std::to_string(s.k) + " N=" + std::to_string(s.n);
      const layer l = random_layer(s.k, s.n, 1000 + s.k * 7 + s.n);
      auto lin = prepare(l);
      auto gen = generator(2000 + s.m);
      auto x = at::randn({s.m, s.k}, gen);
      auto y = lin->forward(x);
      if (y.sizes() != at::IntArrayRef{s.m, s.n})
        fail(where + ": output shape " + shape_text(y.sizes()) + ", expected " + shape_text({s.m, s.n}));
      if (y.scalar_type() != at::kFloat) fail(where + ": output dtype " + std::string(c10::toString(y.scalar_type())));
      if (!all_finite(y)) fail(where + ": non-finite output for finite input");
      const double e = require_accurate(y, x, l, budget_.output_nmse, where);
      r.measured["nmse_" + std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n)] = e;
      worst = std::max(worst, e);
    }
    r.measured["worst_nmse"] = worst;
    r.detail = "worst nmse " + sci(worst) + " (budget " + sci(budget_.output_nmse) + ")";
  }

  void leading_dimensions(conformance_check&) {
    const layer l = random_layer(40, 24, 7, /*with_bias=*/false);
    auto lin = prepare(l);
    auto gen = generator(8);
    auto x = at::randn({2, 5, 40}, gen);
    auto y = lin->forward(x);
    if (y.sizes() != at::IntArrayRef{2, 5, 24})
      fail("input [2, 5, 40] gave " + shape_text(y.sizes()) + ", expected [2, 5, 24]");
    require_accurate(y, x, l, budget_.output_nmse, "no bias, input [2, 5, 40]");
  }

  // A batch can be empty (a filtered dataset, a split with no rows): [0, in] -> [0, out].
  void empty_input(conformance_check&) {
    const layer l = random_layer(40, 24, 37);
    auto lin = prepare(l);
    auto y = lin->forward(at::zeros({0, 40}));
    if (y.sizes() != at::IntArrayRef{0, 24}) fail("input [0, 40] gave " + shape_text(y.sizes()) + ", expected [0, 24]");
    y = lin->forward(at::zeros({2, 0, 40}));
    if (y.sizes() != at::IntArrayRef{2, 0, 24})
      fail("input [2, 0, 40] gave " + shape_text(y.sizes()) + ", expected [2, 0, 24]");
  }

  // A Linear that says rows_independent() gives each row alone what it gives that row among
  // others: rows of scales 1e-3 to 1e3, so that a range taken over the whole call (which the
  // claim rules out) would quantize the small rows on the large rows' grid.
  void rows_independent(conformance_check& r) {
    const layer l = random_layer(40, 24, 41);
    auto lin = prepare(l);
    if (!lin->rows_independent()) {
      r.detail = "not claimed: the model runs this Linear on every row";
      return;
    }
    auto gen = generator(42);
    const auto x = at::randn({7, 40}, gen) * at::pow(10.0, at::arange(-3, 4, at::kDouble)).to(at::kFloat).reshape({7, 1});
    const auto whole = lin->forward(x);
    double worst = 0;
    for (std::int64_t row = 0; row < x.size(0); ++row) {
      const auto alone = lin->forward(x.narrow(0, row, 1));
      const double scale = std::max(whole[row].abs().max().item<double>(), 1e-30);
      const double diff = max_abs_diff(alone[0], whole[row]) / scale;
      if (!(diff <= 1e-4))
        fail("row " + std::to_string(row) + " alone differs from its row of the whole call by " + sci(diff) +
             " of its largest output: rows_independent() says it should not");
      worst = std::max(worst, diff);
    }
    r.measured["rows_independent_worst_relative_diff"] = worst;
    r.detail = "claimed; worst relative difference " + sci(worst);
  }

  void zero_input(conformance_check&) {
    const layer l = random_layer(40, 24, 11);
    auto lin = prepare(l);
    for (std::int64_t m : {1, 6}) {
      auto y = lin->forward(at::zeros({m, 40}));
      if (y.sizes() != at::IntArrayRef{m, 24}) fail("M=" + std::to_string(m) + ": output shape " + shape_text(y.sizes()));
      if (!all_finite(y)) fail("M=" + std::to_string(m) + ": non-finite output for an all-zero input");
      auto expected = l.bias.expand({m, 24});
      if (!at::allclose(y, expected, 0, 1e-6))
        fail("M=" + std::to_string(m) + ": zero input does not give the bias (max |diff| " +
             sci(max_abs_diff(y, expected)) + ")");
    }
  }

  void constant_and_outlier(conformance_check& r) {
    const layer l = random_layer(96, 40, 13);
    auto lin = prepare(l);
    for (float c : {0.5f, -3.f, 1e-3f}) {
      auto x = at::full({4, 96}, c);
      auto y = lin->forward(x);
      if (!all_finite(y)) fail("constant " + sci(c) + ": non-finite output");
      require_accurate(y, x, l, budget_.output_nmse, "constant input " + sci(c));
    }
    // A few activations 100x the rest, as in transformer residual streams: per-tensor schemes lose
    // the small values' resolution, so the budget is 10x looser, but nothing may overflow or go NaN.
    auto gen = generator(14);
    auto x = at::randn({8, 96}, gen);
    x.index_put_({2, 5}, 300.f);
    x.index_put_({6, 50}, -250.f);
    auto y = lin->forward(x);
    if (!all_finite(y)) fail("outliers 300 and -250: non-finite output");
    r.measured["outlier_nmse"] = require_accurate(y, x, l, 10 * budget_.output_nmse, "outliers 300 and -250 (10x budget)");
  }

  // An output row whose input row holds a NaN or an Inf is entirely non-finite; every other row is
  // finite and as accurate as usual.
  void non_finite(conformance_check&) {
    const layer l = random_layer(40, 24, 17);
    auto lin = prepare(l);
    auto gen = generator(18);
    auto x = at::randn({6, 40}, gen);
    const float inf = std::numeric_limits<float>::infinity();
    x.index_put_({1, 3}, std::numeric_limits<float>::quiet_NaN());
    x.index_put_({3, 0}, inf);
    x.index_put_({4, 39}, -inf);
    auto y = lin->forward(x);
    if (y.sizes() != at::IntArrayRef{6, 24}) fail("output shape " + shape_text(y.sizes()) + ", expected [6, 24]");
    const std::set<std::int64_t> bad{1, 3, 4};
    std::vector<std::int64_t> good_rows;
    for (std::int64_t row = 0; row < 6; ++row) {
      if (bad.count(row)) {
        if (at::isfinite(y[row]).any().item<bool>())
          fail("row " + std::to_string(row) + " (input holds NaN or Inf) has finite outputs");
      } else {
        if (!all_finite(y[row])) fail("row " + std::to_string(row) + " (finite input) has non-finite outputs");
        good_rows.push_back(row);
      }
    }
    auto idx = at::tensor(good_rows, at::kLong);
    const double e =
        nmse(y.index_select(0, idx), reference_output(x.index_select(0, idx), l.weight, l.bias));
    if (!(e <= budget_.output_nmse))
      fail("finite rows beside non-finite ones: nmse " + sci(e) + " above the budget " + sci(budget_.output_nmse));
  }

  // One-hot rows v * e_i quantize to c_i * e_i under any per-row, per-tensor or per-input-channel
  // activation scheme, so output row i reads c_i * W_dq[:, i] + b: the weight the layer really
  // multiplies by must be the one dequantized_weight() reports. Without calibration the one-hot
  // value is the end of its row's range and quantizes exactly (c_i = v); a calibrated scheme
  // quantizes v to its own grid, so c_i is fitted and only required to be near v.
  void dequantized_weight(conformance_check& r) {
    const std::int64_t k = 40, n = 24;
    const layer l = random_layer(k, n, 19);
    auto lin = prepare(l);
    auto w_dq = lin->dequantized_weight();
    if (w_dq.sizes() != at::IntArrayRef{n, k})
      fail("dequantized_weight() is " + shape_text(w_dq.sizes()) + ", expected [24, 40]");
    if (w_dq.scalar_type() != at::kFloat)
      fail("dequantized_weight() dtype " + std::string(c10::toString(w_dq.scalar_type())) + ", expected float32");
    const double weight_error = nmse(w_dq, l.weight);
    r.measured["weight_nmse"] = weight_error;
    if (!(weight_error <= budget_.weight_nmse))
      fail("dequantized weight nmse " + sci(weight_error) + " above the budget " + sci(budget_.weight_nmse));
    const auto wt = w_dq.t().to(at::kDouble);  // [k, n]: row i is what a one-hot row i multiplies
    const auto b = l.bias.to(at::kDouble);
    for (double v : {1.0, -2.5}) {
      auto y = lin->forward(at::eye(k) * v);
      if (y.sizes() != at::IntArrayRef{k, n}) fail("one-hot input: output shape " + shape_text(y.sizes()));
      at::Tensor c = at::full({k, 1}, v, at::kDouble);
      if (calibrates_) {
        const auto energy = wt.pow(2).sum(1, true);
        const auto fitted = ((y.to(at::kDouble) - b) * wt).sum(1, true) / energy.clamp_min(1e-300);
        c = at::where(energy > 0, fitted, c);
        const double worst = (c / v - 1).abs().max().item<double>();
        if (!(worst <= 0.5))
          fail("one-hot " + sci(v) + ": the output is a multiple " + sci(worst + 1) +
               " away from v of dequantized_weight(): not the weight forward multiplies by");
      }
      auto expected = (wt * c + b).to(at::kFloat);
      if (!at::allclose(y, expected, 1e-5, 1e-6))
        fail("one-hot " + sci(v) + ": forward differs from v * dequantized_weight() + bias by up to " +
             sci(max_abs_diff(y, expected)));
    }
    // And on ordinary inputs the output is as close to x W_dq^T + b as the budget allows.
    auto gen = generator(20);
    auto x = at::randn({17, k}, gen);
    const double e = nmse(lin->forward(x), reference_output(x, w_dq, l.bias));
    if (!(e <= budget_.output_nmse))
      fail("against x dequantized_weight()^T + b: nmse " + sci(e) + " above the budget " + sci(budget_.output_nmse));
    r.detail = "weight nmse " + sci(weight_error) + " (budget " + sci(budget_.weight_nmse) + ")";
  }

  void packed_bytes(conformance_check& r) {
    const std::int64_t k = 768, n = 3072;
    const layer l = random_layer(k, n, 23);
    // Beyond the weights: the float bias at least, and a few words per output channel.
    check_packed_bytes(r, prepare(l)->packed_bytes(), k, n, budget_.bytes_per_weight, 4.0 * n, "weight");
  }

  void save_load(conformance_check&) {
    const std::string prefix = "layer.3.ffn";
    for (bool with_bias : {true, false}) {
      const std::string where = with_bias ? "with bias" : "without bias";
      const layer l = random_layer(100, 19, 29, with_bias);
      auto lin = prepare(l);
      in_memory_tensors store;
      lin->save(store, prefix);
      store.require_clean(prefix);
      // A fresh quantizer, as a later process would have: nothing but the checkpoint is shared.
      auto fresh_quantizer = fresh();
      auto loaded = fresh_quantizer->load(store, prefix);
      if (!loaded) fail(where + ": load() returned null");
      auto gen = generator(30);
      for (std::int64_t m : {1, 9, 64}) {
        auto x = at::randn({m, 100}, gen);
        auto a = lin->forward(x), b = loaded->forward(x);
        if (a.sizes() != b.sizes() || !at::equal(a, b))
          fail(where + ", M=" + std::to_string(m) + ": the loaded layer's output differs (max |diff| " +
               (a.sizes() == b.sizes() ? sci(max_abs_diff(a, b)) : std::string("shape")) + ")");
      }
      auto wa = lin->dequantized_weight(), wb = loaded->dequantized_weight();
      if (wa.sizes() != wb.sizes() || !at::equal(wa, wb))
        fail(where + ": the loaded layer's dequantized_weight() differs");
      if (lin->packed_bytes() != loaded->packed_bytes())
        fail(where + ": packed_bytes() " + std::to_string(lin->packed_bytes()) + " before save, " +
             std::to_string(loaded->packed_bytes()) + " after load");
      loaded.reset();
      quantizers_.push_back(std::move(fresh_quantizer));
    }
  }

  void wrong_width(conformance_check&) {
    const layer l = random_layer(40, 24, 31);
    auto lin = prepare(l);
    auto gen = generator(32);
    // A wrong width is the caller's input: qexp::input_error, exit 4, in every Linear.
    require_throw<input_error>("forward() on a [3, 41] input to a 40-wide layer", "qexp::input_error",
                               [&] { lin->forward(at::randn({3, 41}, gen)); });
  }

  void keeps_float_weight(conformance_check&) {
    const layer l = random_layer(64, 48, 41);
    const auto weight = l.weight.clone(), bias = l.bias.clone();
    auto lin = prepare(l);
    auto gen = generator(42);
    lin->forward(at::randn({5, 64}, gen));
    if (!at::equal(l.weight, weight)) fail("prepare() or forward() changed the layer's float weight");
    if (!at::equal(l.bias, bias)) fail("prepare() or forward() changed the layer's float bias");
  }

  const plugin_registry& registry_;
  const conformance_case& case_;
  conformance_budget budget_;
  bool calibrates_ = false;
  std::vector<std::unique_ptr<linear_quantizer>> quantizers_;
};

// ---------------------------------------------------------------------------------------------
// Embedding-table checks.

class table_suite {
 public:
  table_suite(const plugin_registry& registry, const conformance_case& c, const conformance_budget& budget)
      : registry_(registry), case_(c), budget_(budget) {}

  std::unique_ptr<table_quantizer> fresh() const {
    auto q = registry_.create_table(case_.plugin, case_.options);
    if (!q) fail("create_table returned null");
    return q;
  }

  std::unique_ptr<packed_table> prepare(const table& t) {
    auto q = fresh();
    auto packed = q->prepare(t);
    if (!packed) fail("prepare() returned null for " + t.name);
    quantizers_.push_back(std::move(q));
    return packed;
  }

  std::vector<conformance_check> run() {
    std::vector<conformance_check> out;
    auto add = [&](const char* name, void (table_suite::*check)(conformance_check&)) {
      out.push_back(run_check(std::string("table.") + name, [&](conformance_check& r) { (this->*check)(r); }));
    };
    add("lookup_matches_the_dequantized_and_float_tables", &table_suite::lookup_matches);
    add("lookup_gives_n_by_dim_float32", &table_suite::lookup_shape);
    add("empty_id_list_gives_an_empty_output", &table_suite::empty_ids);
    add("zero_rows_look_up_as_zeros", &table_suite::zero_rows);
    add("packed_bytes_match_the_scheme", &table_suite::packed_bytes);
    add("save_then_load_gives_bit_identical_lookups", &table_suite::save_load);
    add("out_of_range_id_is_an_error_not_a_crash", &table_suite::out_of_range);
    add("prepare_keeps_the_float_table", &table_suite::keeps_float_table);
    return out;
  }

 private:
  static at::Tensor random_ids(std::int64_t rows, std::int64_t count, std::uint64_t seed) {
    auto gen = generator(seed);
    auto ids = at::randint(rows, {count}, gen, at::kLong);
    ids[0].fill_(0);
    ids[count - 1].fill_(rows - 1);
    return ids;
  }

  void lookup_matches(conformance_check& r) {
    struct shape {
      std::int64_t rows, dim;
    };
    double worst = 0, worst_table = 0;
    for (const auto& s : std::vector<shape>{{1000, 64}, {37, 13}, {512, 768}, {3000, 100}}) {
      const std::string where = std::to_string(s.rows) + "x" + std::to_string(s.dim);
      const table t = random_table(s.rows, s.dim, 3000 + s.rows + s.dim);
      auto packed = prepare(t);
      auto dq = packed->dequantized_table();
      if (dq.sizes() != at::IntArrayRef{s.rows, s.dim})
        fail(where + ": dequantized_table() is " + shape_text(dq.sizes()));
      if (dq.scalar_type() != at::kFloat)
        fail(where + ": dequantized_table() dtype " + std::string(c10::toString(dq.scalar_type())));
      auto ids = random_ids(s.rows, 257, 4000 + s.rows);
      auto y = packed->lookup(ids);
      if (y.sizes() != at::IntArrayRef{257, s.dim}) fail(where + ": lookup of 257 ids gave " + shape_text(y.sizes()));
      auto expected = dq.index_select(0, ids);
      if (!at::allclose(y, expected, 1e-5, 1e-6))
        fail(where + ": lookup() differs from the rows of dequantized_table() by up to " +
             sci(max_abs_diff(y, expected)));
      const double table_error = nmse(dq, t.weight);
      if (!(table_error <= budget_.table_nmse))
        fail(where + ": dequantized_table() nmse " + sci(table_error) + " above the budget " + sci(budget_.table_nmse));
      const double e = nmse(y, t.weight.index_select(0, ids));
      if (!(e <= budget_.table_nmse))
        fail(where + ": lookup() nmse " + sci(e) + " against the float rows, above the budget " + sci(budget_.table_nmse));
      r.measured["nmse_" + where] = e;
      worst = std::max(worst, e);
      worst_table = std::max(worst_table, table_error);
    }
    r.measured["worst_nmse"] = worst;
    r.measured["table_nmse"] = worst_table;
    r.detail = "worst nmse " + sci(std::max(worst, worst_table)) + " (budget " + sci(budget_.table_nmse) + ")";
  }

  void lookup_shape(conformance_check&) {
    const table t = random_table(100, 48, 51);
    auto packed = prepare(t);
    for (std::int64_t n : {1, 7, 300}) {
      auto y = packed->lookup(random_ids(100, n, 52 + n));
      const std::string where = std::to_string(n) + " ids";
      if (y.sizes() != at::IntArrayRef{n, 48}) fail(where + ": output " + shape_text(y.sizes()) + ", expected [n, 48]");
      if (y.scalar_type() != at::kFloat) fail(where + ": output dtype " + std::string(c10::toString(y.scalar_type())));
      if (!y.is_contiguous()) fail(where + ": output is not contiguous");
      if (!y.device().is_cpu()) fail(where + ": output is not on the CPU");
      if (!all_finite(y)) fail(where + ": non-finite output for a finite table");
    }
  }

  void empty_ids(conformance_check&) {
    const table t = random_table(100, 48, 53);
    auto packed = prepare(t);
    auto y = packed->lookup(at::empty({0}, at::kLong));
    if (y.sizes() != at::IntArrayRef{0, 48}) fail("no ids gave " + shape_text(y.sizes()) + ", expected [0, 48]");
  }

  // Padding rows are often all zero: no scale of 0 may be divided by.
  void zero_rows(conformance_check&) {
    table t = random_table(64, 32, 55);
    t.weight[0].zero_();
    t.weight[17].zero_();
    auto packed = prepare(t);
    auto y = packed->lookup(at::tensor(std::vector<std::int64_t>{0, 17, 5}, at::kLong));
    if (!all_finite(y)) fail("non-finite output for a table with all-zero rows");
    const double worst = y.slice(0, 0, 2).abs().max().item<double>();
    if (!(worst <= 1e-6)) fail("an all-zero row looks up as non-zero (max |value| " + sci(worst) + ")");
  }

  void packed_bytes(conformance_check& r) {
    const std::int64_t rows = 2000, dim = 768;
    // Beyond the entries: a scale (and zero point) or a few per row.
    check_packed_bytes(r, prepare(random_table(rows, dim, 57))->packed_bytes(), dim, rows, budget_.bytes_per_entry,
                       0.0, "entry");
  }

  void save_load(conformance_check&) {
    const std::string prefix = "distilbert.embeddings.word_embeddings";
    const table t = random_table(300, 40, 59);
    auto packed = prepare(t);
    in_memory_tensors store;
    packed->save(store, prefix);
    store.require_clean(prefix);
    auto fresh_quantizer = fresh();
    auto loaded = fresh_quantizer->load(store, prefix);
    if (!loaded) fail("load() returned null");
    for (std::int64_t n : {1, 9, 200}) {
      auto ids = random_ids(300, n, 60 + n);
      auto a = packed->lookup(ids), b = loaded->lookup(ids);
      if (a.sizes() != b.sizes() || !at::equal(a, b))
        fail(std::to_string(n) + " ids: the loaded table's lookup differs");
    }
    auto da = packed->dequantized_table(), db = loaded->dequantized_table();
    if (da.sizes() != db.sizes() || !at::equal(da, db)) fail("the loaded table's dequantized_table() differs");
    if (packed->packed_bytes() != loaded->packed_bytes())
      fail("packed_bytes() " + std::to_string(packed->packed_bytes()) + " before save, " +
           std::to_string(loaded->packed_bytes()) + " after load");
    loaded.reset();
    quantizers_.push_back(std::move(fresh_quantizer));
  }

  void out_of_range(conformance_check&) {
    const table t = random_table(50, 16, 61);
    auto packed = prepare(t);
    require_throw<std::out_of_range>("lookup() of id 50 in a 50-row table", "std::out_of_range",
                                     [&] { packed->lookup(at::tensor(std::vector<std::int64_t>{3, 50}, at::kLong)); });
    require_throw<std::out_of_range>("lookup() of id -1", "std::out_of_range",
                                     [&] { packed->lookup(at::tensor(std::vector<std::int64_t>{-1, 2}, at::kLong)); });
  }

  void keeps_float_table(conformance_check&) {
    const table t = random_table(200, 24, 63);
    const auto weight = t.weight.clone();
    auto packed = prepare(t);
    packed->lookup(random_ids(200, 20, 64));
    if (!at::equal(t.weight, weight)) fail("prepare() or lookup() changed the float table");
  }

  const plugin_registry& registry_;
  const conformance_case& case_;
  conformance_budget budget_;
  std::vector<std::unique_ptr<table_quantizer>> quantizers_;
};

std::string check_budget(const conformance_budget& b) {
  const std::pair<const char*, double> fields[] = {{"output_nmse", b.output_nmse},
                                                   {"weight_nmse", b.weight_nmse},
                                                   {"bytes_per_weight", b.bytes_per_weight},
                                                   {"table_nmse", b.table_nmse},
                                                   {"bytes_per_entry", b.bytes_per_entry}};
  for (const auto& [name, value] : fields)
    if (!std::isfinite(value) || value < 0) return std::string("budget ") + name + " is " + sci(value);
  return "";
}

// Numbers in a range bound as option text: the integer inside the bound for integer options.
std::string bound_value(const option_spec& spec, const char* bound, bool is_min) {
  const double v = std::strtod(bound, nullptr);
  if (spec.type == option_type::number) return bound;
  const double rounded = is_min ? std::ceil(v) : std::floor(v);
  return std::to_string(static_cast<long long>(rounded));
}

bool same_value(const option_spec& spec, const std::string& a, const std::string& b) {
  if (spec.type == option_type::integer || spec.type == option_type::number) {
    char* end_a = nullptr;
    char* end_b = nullptr;
    const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
    if (*end_a == '\0' && *end_b == '\0' && !a.empty() && !b.empty()) return x == y;
  }
  return a == b;
}

}  // namespace

std::string conformance_case_name(const std::map<std::string, std::string>& options) {
  if (options.empty()) return "defaults";
  std::string name;
  for (const auto& [k, v] : options) name += (name.empty() ? "" : ",") + k + "=" + v;
  return name;
}

std::vector<conformance_case> conformance_cases(const qexp_plugin_info& info) {
  std::vector<std::map<std::string, std::string>> sets{{}};
  auto spec_of = [&](const std::string& name) -> const option_spec* {
    for (std::size_t i = 0; i < info.n_options; ++i)
      if (name == info.options[i].name) return &info.options[i];
    return nullptr;
  };
  for (std::size_t i = 0; i < info.n_options; ++i) {
    const option_spec& spec = info.options[i];
    std::vector<std::string> values;
    switch (spec.type) {
      case option_type::choice: values = option_choices(spec); break;
      case option_type::boolean: values = {"true", "false"}; break;
      case option_type::integer:
      case option_type::number:
        if (spec.min) values.push_back(bound_value(spec, spec.min, true));
        if (spec.max) values.push_back(bound_value(spec, spec.max, false));
        break;
      case option_type::string:
      case option_type::path: break;  // only through the plugin's variants
    }
    for (const auto& v : values)
      if (!same_value(spec, v, spec.default_value)) sets.push_back({{spec.name, v}});
  }
  if (info.variants)
    for (const char* const* v = info.variants; *v; ++v) {
      auto options = parse_option_list(*v, std::string("plugin '") + info.id + "': variant");
      // Options given at their default say nothing new; an unknown one is left for the suite to
      // report (resolving the options fails).
      for (auto it = options.begin(); it != options.end();) {
        const option_spec* spec = spec_of(it->first);
        it = spec && same_value(*spec, it->second, spec->default_value) ? options.erase(it) : std::next(it);
      }
      sets.push_back(std::move(options));
    }
  std::vector<conformance_case> out;
  for (auto& options : sets) {
    if (std::any_of(out.begin(), out.end(), [&](const conformance_case& c) { return c.options == options; }))
      continue;
    out.push_back({info.id, options, conformance_case_name(options)});
  }
  return out;
}

std::vector<conformance_check> run_conformance(const plugin_registry& registry, const conformance_case& c) {
  const plugin_record& record = registry.find(c.plugin);
  if (!record.supported) {
    conformance_check skipped;
    skipped.name = "supported";
    skipped.skipped = true;
    skipped.detail = one_line("cannot run on this CPU: " + record.unsupported_reason, 300);
    return {skipped};
  }
  std::vector<conformance_check> out;
  conformance_budget budget;
  {
    auto setup = run_check("options_and_budget", [&](conformance_check& r) {
      const option_values values = registry.resolve_options(c.plugin, c.options);
      budget = registry.budget(c.plugin, values);
      const std::string bad = check_budget(budget);
      if (!bad.empty()) fail(bad);
      std::string text;
      if (record.info->create_linear)
        text += "output_nmse " + sci(budget.output_nmse) + ", weight_nmse " + sci(budget.weight_nmse) +
                ", bytes_per_weight " + sci(budget.bytes_per_weight);
      if (record.info->create_table)
        text += std::string(text.empty() ? "" : ", ") + "table_nmse " + sci(budget.table_nmse) +
                ", bytes_per_entry " + sci(budget.bytes_per_entry);
      r.detail = "budget: " + text;
    });
    const bool ok = setup.passed;
    out.push_back(std::move(setup));
    if (!ok) return out;
  }
  if (record.info->create_linear) {
    linear_suite suite(registry, c, budget);
    auto created = run_check("linear.create_quantizer", [&](conformance_check&) { suite.fresh(); });
    const bool ok = created.passed;
    out.push_back(std::move(created));
    if (ok)
      for (auto& check : suite.run()) out.push_back(std::move(check));
  }
  if (record.info->create_table) {
    table_suite suite(registry, c, budget);
    auto created = run_check("table.create_quantizer", [&](conformance_check&) { suite.fresh(); });
    const bool ok = created.passed;
    out.push_back(std::move(created));
    if (ok)
      for (auto& check : suite.run()) out.push_back(std::move(check));
  }
  return out;
}

}  // namespace qexp
