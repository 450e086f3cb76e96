// One source, several deliberately broken plugins (chosen by BROKEN_CASE), each built into a
// folder of its own so a test can point --plugin-path at exactly one of them. Cases 10 to 15 load
// fine and exercise the conformance suite (`qexp check-plugin`): four break one promise each, two
// keep them all (an embedding-table plugin and a calibrating one). Cases 16 to 18 load fine and then
// take their process down or never return, for crash isolation. Case 19 throws errors of the wrong
// types for bad input.
#include <qexp/float_linear.h>
#include <qexp/plugin_api.h>

#if BROKEN_CASE >= 10
#include <ATen/ATen.h>
#include <qexp/errors.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

[[maybe_unused]] const qexp::option_spec options[] = {
    {"level", qexp::option_type::integer, "1", "an integer option for type checks", nullptr},
};

class passthrough_quantizer final : public qexp::linear_quantizer {
 public:
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    return qexp::make_float_linear(l);
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return qexp::load_float_linear(in, prefix);
  }
};

[[maybe_unused]] int supported_yes(const char**) { return 1; }
[[maybe_unused]] int supported_no(const char** reason) {
  *reason = "needs an instruction set this test pretends is missing";
  return 0;
}

[[maybe_unused]] qexp::linear_quantizer* create_ok(const qexp::option_values&, std::string*) { return new passthrough_quantizer(); }
[[maybe_unused]] qexp::linear_quantizer* create_fails(const qexp::option_values&, std::string* error) {
  *error = "calibration table missing";
  return nullptr;
}
[[maybe_unused]] qexp::linear_quantizer* create_throws(const qexp::option_values&, std::string*) {
  throw std::runtime_error("out of coffee");
}

#if BROKEN_CASE >= 10
// A float Linear wrapped so that one of its promises can be broken.
class wrapped_linear : public qexp::packed_linear {
 public:
  explicit wrapped_linear(std::unique_ptr<qexp::packed_linear> inner) : inner_(std::move(inner)) {}
  at::Tensor forward(const at::Tensor& x) override { return inner_->forward(x); }
  std::size_t packed_bytes() const override { return inner_->packed_bytes(); }
  at::Tensor dequantized_weight() const override { return inner_->dequantized_weight(); }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override { inner_->save(out, prefix); }

 protected:
  std::unique_ptr<qexp::packed_linear> inner_;
};

// Case 10: reports a weight 1% larger than the one it multiplies by.
class lying_weight_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  at::Tensor dequantized_weight() const override { return inner_->dequantized_weight() * 1.01; }
};

// Case 20: says rows_independent() but adds to each row a term that depends on the other rows of
// the call (1e-3 times how far its norm is below the largest row's): zero on rows of equal norm,
// large on a small row beside large ones.
class row_mixing_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  at::Tensor forward(const at::Tensor& x) override {
    const at::Tensor y = inner_->forward(x);
    if (x.numel() == 0) return y;
    const at::Tensor norms = x.nan_to_num(0, 0, 0).reshape({-1, x.size(-1)}).norm(2, {1}, true);
    auto shape = x.sizes().vec();
    shape.back() = 1;  // one term per row, broadcast over the outputs
    return y + (1e-3 * (norms.max() - norms)).reshape(shape);
  }
  bool rows_independent() const override { return true; }
};

// Case 12: forward throws something that is not a std::exception.
class throwing_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  at::Tensor forward(const at::Tensor&) override { throw 42; }
};

// Crash isolation (measure.isolate, check-plugin): a segfault in forward, an abort in prepare, an
// endless forward.
class segfaulting_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  // UndefinedBehaviorSanitizer would report the store and exit before the signal (tools/sanitize.sh):
  // the crash under test is the segfault a release build gets.
  __attribute__((no_sanitize("null"))) at::Tensor forward(const at::Tensor& x) override {
    volatile int* nowhere = nullptr;
    *nowhere = static_cast<int>(x.numel());
    return inner_->forward(x);
  }
};

class hanging_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  at::Tensor forward(const at::Tensor& x) override {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    return inner_->forward(x);
  }
};

class aborting_quantizer final : public qexp::linear_quantizer {
 public:
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer&) override { std::abort(); }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return qexp::load_float_linear(in, prefix);
  }
};

template <typename Linear>
class wrapping_quantizer final : public qexp::linear_quantizer {
 public:
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    return std::make_unique<Linear>(qexp::make_float_linear(l));
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return std::make_unique<Linear>(qexp::load_float_linear(in, prefix));
  }
};

// Case 11: load() rebuilds a slightly different weight, so outputs are not bit-identical.
class lossy_load_quantizer final : public qexp::linear_quantizer {
 public:
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override { return qexp::make_float_linear(l); }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    qexp::layer l;
    l.name = prefix;
    l.weight = (in.tensor(prefix + ".weight") * (1 + 1e-4)).contiguous();
    if (in.has_tensor(prefix + ".bias")) l.bias = in.tensor(prefix + ".bias");
    return qexp::make_float_linear(l);
  }
};

// Cases 13 and 14: a float embedding table, honest (13) or reporting a table 1% larger than the
// one it looks up from (14).
template <bool lie>
class float_table_quantizer final : public qexp::table_quantizer {
  class float_table final : public qexp::packed_table {
   public:
    explicit float_table(std::unique_ptr<qexp::packed_table> inner) : inner_(std::move(inner)) {}
    at::Tensor lookup(const at::Tensor& ids) override { return inner_->lookup(ids); }
    std::size_t packed_bytes() const override { return inner_->packed_bytes(); }
    at::Tensor dequantized_table() const override {
      return lie ? inner_->dequantized_table() * 1.01 : inner_->dequantized_table();
    }
    void save(qexp::tensor_writer& out, const std::string& prefix) const override { inner_->save(out, prefix); }

   private:
    std::unique_ptr<qexp::packed_table> inner_;
  };

 public:
  std::unique_ptr<qexp::packed_table> prepare(const qexp::table& t) override {
    return std::make_unique<float_table>(qexp::make_float_table(t));
  }
  std::unique_ptr<qexp::packed_table> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return std::make_unique<float_table>(qexp::make_float_table({prefix, in.tensor(prefix + ".weight")}));
  }
};

// Case 19: a float Linear and a float table that refuse bad input, but with errors of other types
// than the contract names (std::invalid_argument for a wrong width instead of qexp::input_error,
// std::runtime_error for an id out of range instead of std::out_of_range).
class untyped_width_linear final : public wrapped_linear {
 public:
  using wrapped_linear::wrapped_linear;
  at::Tensor forward(const at::Tensor& x) override {
    if (x.dim() < 1 || x.size(-1) != inner_->dequantized_weight().size(1))
      throw std::invalid_argument("input width differs from the layer's");
    return inner_->forward(x);
  }
};

class untyped_id_table_quantizer final : public qexp::table_quantizer {
  class table final : public qexp::packed_table {
   public:
    explicit table(at::Tensor weight) : weight_(std::move(weight)) {}
    at::Tensor lookup(const at::Tensor& ids) override {
      if (ids.numel() > 0 && (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= weight_.size(0)))
        throw std::runtime_error("id out of range");
      return at::embedding(weight_, ids);
    }
    std::size_t packed_bytes() const override { return weight_.nbytes(); }
    at::Tensor dequantized_table() const override { return weight_; }
    void save(qexp::tensor_writer& out, const std::string& prefix) const override { out.add_tensor(prefix + ".weight", weight_); }

   private:
    at::Tensor weight_;
  };

 public:
  std::unique_ptr<qexp::packed_table> prepare(const qexp::table& t) override {
    return std::make_unique<table>(t.weight.contiguous());
  }
  std::unique_ptr<qexp::packed_table> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return std::make_unique<table>(in.tensor(prefix + ".weight"));
  }
};

// Case 15: a correct calibrating scheme: activations rounded to a static symmetric 8-bit grid whose
// step comes from calibration (max |x| / 127 over what observe() saw), float weights. prepare()
// refuses to run out of order, so the suite's calibration sequence is checked too.
class static_activation_linear final : public wrapped_linear {
 public:
  static_activation_linear(std::unique_ptr<qexp::packed_linear> inner, float scale, std::int64_t in_features)
      : wrapped_linear(std::move(inner)), scale_(scale), in_features_(in_features) {}
  at::Tensor forward(const at::Tensor& x) override {
    if (x.dim() < 1 || x.size(-1) != in_features_) throw qexp::input_error("input width differs from the layer's");
    auto q = (x / scale_).round().clamp(-127, 127) * scale_;
    return inner_->forward(at::where(at::isfinite(x), q, x).contiguous());
  }
  std::size_t packed_bytes() const override { return inner_->packed_bytes() + sizeof(float); }
  void save(qexp::tensor_writer& out, const std::string& prefix) const override {
    inner_->save(out, prefix);
    out.add_tensor(prefix + ".input_scale", at::full({1}, scale_));
  }

 private:
  float scale_;
  std::int64_t in_features_;
};

class calibrating_quantizer final : public qexp::linear_quantizer {
 public:
  void begin(const qexp::quantizer_context& context) override {
    for (const auto& group : context.groups)
      for (const auto& member : group.members) sites_.insert(member.name);
  }
  bool wants_calibration() const override { return true; }
  void observe(const std::string& site, const at::Tensor& rows) override {
    if (!sites_.count(site)) throw std::logic_error("observe() for '" + site + "', which begin() did not name");
    auto finite = rows.masked_select(at::isfinite(rows));
    if (finite.numel() > 0) absmax_[site] = std::max(absmax_[site], finite.abs().max().item<float>());
  }
  void finish_calibration(const std::vector<std::string>& sites) override {
    finished_.insert(sites.begin(), sites.end());
  }
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) override {
    if (!finished_.count(l.name)) throw std::logic_error("prepare() of '" + l.name + "' before its calibration finished");
    const float scale = absmax_[l.name] > 0 ? absmax_[l.name] / 127 : 1.0f;
    return std::make_unique<static_activation_linear>(qexp::make_float_linear(l), scale, l.weight.size(1));
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    auto inner = qexp::load_float_linear(in, prefix);
    const auto in_features = inner->dequantized_weight().size(1);
    return std::make_unique<static_activation_linear>(std::move(inner),
                                                      in.tensor(prefix + ".input_scale").item<float>(), in_features);
  }

 private:
  std::set<std::string> sites_, finished_;
  std::map<std::string, float> absmax_;
};

template <typename Quantizer>
qexp::linear_quantizer* create_linear_of(const qexp::option_values&, std::string*) {
  return new Quantizer();
}
template <typename Quantizer>
qexp::table_quantizer* create_table_of(const qexp::option_values&, std::string*) {
  return new Quantizer();
}

[[maybe_unused]] void float_table_budget(const qexp::option_values&, qexp::conformance_budget* out) {
  out->table_nmse = 0;
  out->bytes_per_entry = 4;
}
[[maybe_unused]] void calibrating_budget(const qexp::option_values&, qexp::conformance_budget* out) {
  out->output_nmse = 0.2;  // 8-bit static activations whose range includes an outlier channel
  out->weight_nmse = 0;
}
#endif

}  // namespace

#if BROKEN_CASE == 1  // no entry point at all
extern "C" __attribute__((visibility("default"))) int some_other_symbol() { return 42; }
#elif BROKEN_CASE == 2  // a future API version
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION + 98, "future", "9.0.0", "from the future",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 3  // built against another libtorch
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION, "old-torch", "1.0.0", "other torch",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR + 7, QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 4  // the other C++ string ABI
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION, "old-abi", "1.0.0", "other ABI",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, 1 - QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 5  // a valid plugin, built twice into one folder: duplicate id
QEXP_PLUGIN("twin", "1.0.0", "a plugin whose id is taken twice", options, supported_yes, create_ok)
#elif BROKEN_CASE == 6
QEXP_PLUGIN("failing-factory", "1.0.0", "its factory reports an error", options, supported_yes, create_fails)
#elif BROKEN_CASE == 7
QEXP_PLUGIN("throwing-factory", "1.0.0", "its factory throws", options, supported_yes, create_throws)
#elif BROKEN_CASE == 8
QEXP_PLUGIN("not-here", "1.0.0", "cannot run on this CPU", options, supported_no, create_ok)
#elif BROKEN_CASE == 9  // a good plugin, for the happy path of option checks
QEXP_PLUGIN("options-check", "1.0.0", "accepts one integer option", options, supported_yes, create_ok)
#elif BROKEN_CASE == 10
QEXP_PLUGIN("lying-weight", "1.0.0", "dequantized_weight() is not what forward multiplies by", options,
            supported_yes, create_linear_of<wrapping_quantizer<lying_weight_linear>>)
#elif BROKEN_CASE == 11
QEXP_PLUGIN("lossy-load", "1.0.0", "load() is not bit-identical", options, supported_yes,
            create_linear_of<lossy_load_quantizer>)
#elif BROKEN_CASE == 12
QEXP_PLUGIN("throws-int", "1.0.0", "forward throws an int", options, supported_yes,
            create_linear_of<wrapping_quantizer<throwing_linear>>)
#elif BROKEN_CASE == 13
QEXP_PLUGIN("float-table", "1.0.0", "a float embedding table that keeps every promise", options, supported_yes,
            nullptr, create_table_of<float_table_quantizer<false>>, float_table_budget)
#elif BROKEN_CASE == 14
QEXP_PLUGIN("lying-table", "1.0.0", "dequantized_table() is not what lookup reads", options, supported_yes,
            nullptr, create_table_of<float_table_quantizer<true>>, float_table_budget)
#elif BROKEN_CASE == 15
QEXP_PLUGIN("calibrating", "1.0.0", "static 8-bit activations from calibration, keeps every promise", options,
            supported_yes, create_linear_of<calibrating_quantizer>, nullptr, calibrating_budget)
#elif BROKEN_CASE == 16
QEXP_PLUGIN("segfaults", "1.0.0", "forward writes through a null pointer", options, supported_yes,
            create_linear_of<wrapping_quantizer<segfaulting_linear>>)
#elif BROKEN_CASE == 17
QEXP_PLUGIN("aborts", "1.0.0", "prepare calls std::abort", options, supported_yes, create_linear_of<aborting_quantizer>)
#elif BROKEN_CASE == 18
QEXP_PLUGIN("hangs", "1.0.0", "forward never returns", options, supported_yes,
            create_linear_of<wrapping_quantizer<hanging_linear>>)
#elif BROKEN_CASE == 19
QEXP_PLUGIN("untyped-errors", "1.0.0", "refuses bad input with errors of the wrong types", options, supported_yes,
            create_linear_of<wrapping_quantizer<untyped_width_linear>>, create_table_of<untyped_id_table_quantizer>,
            float_table_budget)
#elif BROKEN_CASE == 20
QEXP_PLUGIN("row-mixing", "1.0.0", "says rows_independent() but mixes the rows of a call", options, supported_yes,
            create_linear_of<wrapping_quantizer<row_mixing_linear>>)
#else
#error "set BROKEN_CASE"
#endif
