#include "static_int8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <qexp/errors.h>
#include <qexp/int8_gemm.h>
#include <qexp/int8_options.h>
#include <qexp/int8_weights.h>
#include <qexp/onednn_support.h>
#include <qexp/plugin_helpers.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "input_cache.h"
#include "kernels.h"

namespace qexp::static_int8 {

const option_spec options[8] = {
    int8_options::weight_granularity("per_channel"),
    int8_options::activation_type("u8"),
    {"activations", option_type::choice, "static",
     "static: one activation scale fixed at calibration; dynamic: the range of each call's input",
     "static|dynamic"},
    {"calibrator", option_type::choice, "minmax",
     "How calibration data becomes the static range: minmax, percentile, entropy (KL), mse",
     "minmax|percentile|entropy|mse"},
    {"percentile", option_type::number, "99.99",
     "calibrator percentile: the share of calibration values (%) inside the range", nullptr, "90", "100"},
    {"smoothquant", option_type::boolean, "false",
     "SmoothQuant: move activation outliers into the weights with a per-input-channel factor"},
    {"alpha", option_type::number, "0.5",
     "SmoothQuant migration strength: s = max|X|^alpha / max|W|^(1-alpha) (used with smoothquant)", nullptr,
     "0", "1"},
    {"kernel", option_type::choice, "auto",
     "auto: qexp's int8_gemm (AVX-512 VNNI where the CPU has it, portable C++ elsewhere); onednn: oneDNN's "
     "brgemm and a dequantize pass; portable: int8_gemm's C++ build",
     "auto|onednn|portable"},
};

// The host has checked every value against `options` (choices and the ranges of percentile and
// alpha) before this runs.
settings parse_settings(const option_values& values) {
  settings s;
  s.weights = int8_options::read_weight_granularity(values);
  s.act_type = int8_options::read_activation_type(values);
  s.mode = get_choice(values, options, "activations", {activation_mode::fixed, activation_mode::dynamic});
  s.calib = get_choice(values, options, "calibrator",
                       {calibrator::minmax, calibrator::percentile, calibrator::entropy, calibrator::mse});
  s.percentile = values.get_number("percentile");
  s.smoothquant = values.get_bool("smoothquant");
  s.alpha = values.get_number("alpha");
  s.kernel = get_choice(values, options, "kernel", {kernel_choice::automatic, kernel_choice::onednn, kernel_choice::portable});
  return s;
}

bool fast_path_supported(const char** reason) {
  // The quantize passes need AVX-512 F/BW/DQ/VL, int8_gemm's kernel VNNI on top.
  if (!fast_kernels_available() || !int8_gemm::vnni_available()) {
    if (reason) *reason = "this CPU lacks AVX-512 (F, BW, DQ, VL) with VNNI";
    return false;
  }
  return true;
}

namespace {

// `kernel: onednn`: row counts whose primitive a layer keeps.
constexpr std::size_t max_cached_primitives = 64;

// FNV-1a: the input group's name as a number a checkpoint can carry.
int64_t group_id_of(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

// ---------------------------------------------------------------------------------------------
// The activation quantization a layer applies, shared (immutable) by the Linears of one group.

struct activation_quant {
  activation_type type = activation_type::u8;
  activation_mode mode = activation_mode::fixed;
  activation_params params;       // fixed mode: the calibrated scale and zero point
  at::Tensor smooth;              // [K] float32 SmoothQuant factors s, or undefined
  std::vector<float> factor;      // fixed mode with smoothing: 1 / (s_j * scale), per channel
  float inv_scale = 1.f;          // fixed mode without smoothing: 1 / scale
  std::vector<float> inv_smooth;  // dynamic mode with smoothing: 1 / s_j

  int32_t lo() const { return type == activation_type::u8 ? 0 : -127; }
  int32_t hi() const { return type == activation_type::u8 ? 255 : 127; }
  bool smoothed() const { return smooth.defined(); }
};

std::shared_ptr<const activation_quant> make_activation_quant(activation_type type, activation_mode mode,
                                                              activation_params params, at::Tensor smooth) {
  auto a = std::make_shared<activation_quant>();
  a->type = type;
  a->mode = mode;
  a->params = params;
  a->smooth = smooth.defined() ? smooth.to(at::kFloat).contiguous() : at::Tensor();
  a->inv_scale = 1.f / params.scale;
  if (a->smooth.defined()) {
    const float* s = a->smooth.data_ptr<float>();
    const int64_t k = a->smooth.numel();
    if (mode == activation_mode::fixed) {
      a->factor.resize(static_cast<std::size_t>(k));
      for (int64_t j = 0; j < k; ++j)
        a->factor[j] = static_cast<float>(1.0 / (static_cast<double>(s[j]) * static_cast<double>(params.scale)));
    } else {
      a->inv_smooth.resize(static_cast<std::size_t>(k));
      for (int64_t j = 0; j < k; ++j) a->inv_smooth[j] = static_cast<float>(1.0 / static_cast<double>(s[j]));
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// The packed Linear.

// Which matmul a layer runs: `kernel: auto` is int8_gemm's VNNI kernel where the CPU has one.
enum class matmul_path { qexp_vnni, onednn, portable };

class static_int8_linear final : public packed_linear {
 public:
  // w_int8: [out, in] int8 in [-127, 127]; scales: [1] or [out] float32; bias [out] or undefined.
  static_int8_linear(matmul_path path, const at::Tensor& w_int8, at::Tensor scales, at::Tensor bias,
                     std::shared_ptr<const activation_quant> act, std::shared_ptr<input_cache> cache, int64_t group_id)
      : path_(path), fast_passes_(path != matmul_path::portable), n_(w_int8.size(0)), k_(w_int8.size(1)),
        lda_(path == matmul_path::onednn ? k_ : int8_gemm::padded_k(k_)), scales_(std::move(scales)),
        bias_(std::move(bias)), act_(std::move(act)), cache_(std::move(cache)), member_(cache_->join()),
        group_id_(group_id) {
    channel_scales_ = scales_.numel() == 1 ? scales_.expand({n_}).contiguous() : scales_;
    if (act_->smoothed() && act_->smooth.numel() != k_)
      throw input_error("static-int8: smoothing vector has " + std::to_string(act_->smooth.numel()) +
                        " entries for a layer with " + std::to_string(k_) + " inputs");
    if (path_ != matmul_path::onednn) {
      packed_ = int8_gemm::packed_weights(w_int8.data_ptr<int8_t>(), n_, k_);
      return;
    }
    // oneDNN: the attribute-free s32 matmul and a dequantize pass (onednn_s8_matmul says why).
    w_sum_ = w_int8.to(at::kInt).sum(1, /*keepdim=*/false, at::kInt).contiguous();
    onednn_ = std::make_unique<onednn_s8_matmul>(w_int8.data_ptr<int8_t>(), n_, k_,
                                                 act_->type == activation_type::u8, max_cached_primitives);
  }

  at::Tensor forward(const at::Tensor& x) override {
    const auto in = linear_input_of(x, k_, n_, "static-int8");
    const at::Tensor& x2 = in.rows;
    const int64_t m = in.m();
    auto y = at::empty({m, n_}, x2.options());
    if (m == 0) return y.view(in.out_shape);

    // The Linears of a group read one input: the first quantizes it, the next reuse the codes.
    std::shared_ptr<const quantized_input> q = cache_->find(x, member_);
    if (!q) {
      auto fresh = cache_->buffer();
      quantize(x2, *fresh);
      q = fresh;
      cache_->remember(x, member_, std::move(fresh));
    }
    multiply(*q, m, y);
    return y.view(in.out_shape);
  }

  // Fixed (calibrated) activation parameters; dynamic ones are one range over the whole call.
  bool rows_independent() const override { return act_->mode == activation_mode::fixed; }

  std::size_t packed_bytes() const override {
    std::size_t bytes = (path_ == matmul_path::onednn ? onednn_->packed_bytes() + w_sum_.nbytes() : packed_.bytes()) +
                        scales_.nbytes() + (bias_.defined() ? bias_.nbytes() : 0);
    bytes += (act_->factor.size() + act_->inv_smooth.size()) * sizeof(float) + sizeof(activation_params);
    return bytes;
  }

  // What forward multiplies the input by: the dequantized W' = W diag(s), times diag(1/s).
  at::Tensor dequantized_weight() const override {
    auto w = plain_weight().to(at::kFloat) * scales_.reshape({-1, 1});
    if (act_->smoothed()) w = w / act_->smooth.reshape({1, -1});
    return w.contiguous();
  }

  void save(tensor_writer& out, const std::string& prefix) const override {
    save_int8_weights(out, prefix, {plain_weight(), scales_, bias_});
    if (act_->mode == activation_mode::fixed) {
      out.add_tensor(prefix + ".input_scale", at::full({1}, act_->params.scale, at::kFloat));
      if (act_->type == activation_type::u8)
        out.add_tensor(prefix + ".input_zero_point", at::full({1}, act_->params.zero_point, at::kInt));
    }
    if (act_->smoothed()) out.add_tensor(prefix + ".smooth", act_->smooth);
    out.add_tensor(prefix + ".input_group", at::full({1}, group_id_, at::kLong));
  }

 private:
  // Rows of lda_ codes (the bytes past k_ zero). qexp's kernel multiplies u8 codes only: s8 codes
  // c become c + 128 with the zero point 128 (the same integers once the zero point is removed).
  void quantize(const at::Tensor& x2, quantized_input& q) const {
    const int64_t m = x2.size(0);
    const float* xp = x2.data_ptr<float>();
    q.codes.resize(static_cast<std::size_t>(m * lda_));
    q.row_ok.assign(static_cast<std::size_t>(m), 1);
    quantize_args args{nullptr, act_->inv_scale, act_->params.zero_point, act_->lo(), act_->hi()};
    if (act_->mode == activation_mode::fixed) {
      q.scale = act_->params.scale;
      q.zero_point = act_->params.zero_point;
      if (act_->smoothed()) args.factor = act_->factor.data();
    } else {
      // The range of this call's (smoothed) input, then its scale: the per-call pass that static
      // activations do without.
      float mn = 0.f, mx = 0.f;
      const float* inv_s = act_->smoothed() ? act_->inv_smooth.data() : nullptr;
      for (int64_t r = 0; r < m; ++r) q.row_ok[r] = range_row(fast_passes_, xp + r * k_, k_, inv_s, mn, mx);
      const activation_params p = params_for({mn, mx}, act_->type);
      q.scale = p.scale;
      q.zero_point = p.zero_point;
      args.zero_point = p.zero_point;
      args.scalar = 1.f / p.scale;
      if (inv_s) {
        q.factor.resize(static_cast<std::size_t>(k_));
        for (int64_t j = 0; j < k_; ++j) q.factor[j] = inv_s[j] * args.scalar;
        args.factor = q.factor.data();
      }
    }
    if (path_ != matmul_path::onednn && act_->type == activation_type::s8) {
      args.zero_point += 128;
      args.lo += 128;
      args.hi += 128;
      q.zero_point += 128;
    }
    uint8_t* codes = q.codes.data();
    char* row_ok = q.row_ok.data();
    const bool fast = fast_passes_;
    const int64_t k = k_, lda = lda_;
    at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (!quantize_row(fast, xp + r * k, k, args, codes + r * lda)) row_ok[r] = 0;
        std::fill(codes + r * lda + k, codes + (r + 1) * lda, uint8_t{0});
      }
    });
  }

  void multiply(const quantized_input& q, int64_t m, at::Tensor& y) {
    float* yp = y.data_ptr<float>();
    const float* b = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    const float* w_scale = channel_scales_.data_ptr<float>();
    const char* row_ok = q.row_ok.data();
    const int64_t n = n_;
    if (path_ != matmul_path::onednn) {
      int8_gemm::dequantize_args d;
      d.a_scale = &q.scale;
      d.a_zero_point = &q.zero_point;
      d.w_scale = w_scale;
      d.bias = b;
      int8_gemm::multiply(q.codes.data(), m, packed_, d, yp, path_ == matmul_path::qexp_vnni);
      // Clamping made an Inf finite: rows that held a NaN or an Inf are NaN, the others untouched.
      for (int64_t r = 0; r < m; ++r)
        if (!row_ok[r]) std::fill(yp + r * n, yp + (r + 1) * n, std::numeric_limits<float>::quiet_NaN());
      return;
    }
    // oneDNN writes s32 accumulators into y's buffer; the dequantize pass turns them into floats.
    auto* acc = static_cast<int32_t*>(y.data_ptr());
    onednn_->multiply(q.codes.data(), m, acc);
    const int32_t* w_sum = w_sum_.data_ptr<int32_t>();
    at::parallel_for(0, m, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (!row_ok[r]) {
          std::fill(yp + r * n, yp + (r + 1) * n, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        dequantize_row(fast_passes_, acc + r * n, n, q.zero_point, w_sum, q.scale, w_scale, b);
      }
    });
  }

  // The [out, in] int8 weight (only packed copies are kept: read it back).
  at::Tensor plain_weight() const {
    auto w = at::empty({n_, k_}, at::kChar);
    if (path_ != matmul_path::onednn) {
      packed_.unpack(w.data_ptr<int8_t>());
      return w;
    }
    onednn_->unpack(w.data_ptr<int8_t>());
    return w;
  }

  matmul_path path_;
  bool fast_passes_;           // AVX-512 quantize/range/dequantize passes
  int64_t n_, k_;
  int64_t lda_;                // codes per row: k_ for oneDNN, padded to 4 for qexp's kernel
  at::Tensor scales_;          // [1] or [out] float32, as saved
  at::Tensor channel_scales_;  // [out] float32
  at::Tensor bias_;            // [out] float32 or undefined
  std::shared_ptr<const activation_quant> act_;
  std::shared_ptr<input_cache> cache_;
  int member_;
  int64_t group_id_;
  int8_gemm::packed_weights packed_;  // qexp's kernel (VNNI or portable)
  // oneDNN
  at::Tensor w_sum_;           // [out] int32 sum over in of the int8 weight, for the zero point
  std::unique_ptr<onednn_s8_matmul> onednn_;
};

// ---------------------------------------------------------------------------------------------
// Weights.



// ---------------------------------------------------------------------------------------------
// Calibration state of one input group.

struct group_state {
  std::string name;
  int64_t id = 0;
  std::vector<layer> members;  // the float layers begin() gave (SmoothQuant reads their weights)
  int64_t k = 0;
  bool any = false;
  // The last rows observed and the sites that saw them: q, k and v get the same tensor per batch,
  // and it is counted once.
  at::Tensor last_rows;
  std::set<std::string> last_seen_by;
  observed_values whole;                 // fixed activations without smoothing
  std::vector<float> ch_min, ch_max;     // SmoothQuant: per input channel, over finite values
  std::vector<histogram> ch_hist;        // SmoothQuant with a histogram calibrator
  bool finished = false;
  std::shared_ptr<const activation_quant> act;  // set at finish_calibration (or first prepare)
  std::shared_ptr<input_cache> cache = std::make_shared<input_cache>();
};

bool same_tensor(const at::Tensor& a, const at::Tensor& b) {
  return a.unsafeGetTensorImpl() == b.unsafeGetTensorImpl() && a.data_ptr() == b.data_ptr() &&
         a.sizes() == b.sizes() && a.strides() == b.strides();
}

class static_int8_quantizer final : public linear_quantizer {
 public:
  static_int8_quantizer(const settings& s, matmul_path path) : settings_(s), path_(path) {}

  void begin(const quantizer_context& context) override {
    groups_.clear();
    group_of_.clear();
    observed_.clear();
    for (const auto& g : context.groups) {
      auto state = std::make_shared<group_state>();
      state->name = g.name;
      state->id = group_id_of(g.name);
      state->members = g.members;
      groups_[g.name] = state;
      for (const auto& m : g.members) group_of_[m.name] = state;
    }
  }

  // Dynamic activations without SmoothQuant have nothing to calibrate.
  bool wants_calibration() const override {
    return settings_.mode == activation_mode::fixed || settings_.smoothquant;
  }

  void observe(const std::string& site, const at::Tensor& rows) override {
    auto& g = group_for(site);
    if (g.finished || !rows.defined() || rows.numel() == 0) return;
    const int64_t k = rows.size(-1);
    if (g.k != 0 && g.k != k)
      throw input_error("static-int8: site '" + site + "': calibration rows have " + std::to_string(k) +
                        " features, earlier ones of its input group had " + std::to_string(g.k));
    g.k = k;
    if (g.last_rows.defined() && same_tensor(g.last_rows, rows) && !g.last_seen_by.count(site)) {
      g.last_seen_by.insert(site);
      observed_.insert(site);
      return;
    }
    g.last_rows = rows;
    g.last_seen_by = {site};
    observed_.insert(site);
    accumulate(g, rows.reshape({-1, k}).to(at::kFloat).contiguous());
  }

  void finish_calibration(const std::vector<std::string>& sites) override {
    for (const auto& site : sites) {
      auto it = group_of_.find(site);
      if (it == group_of_.end()) continue;  // never observed: prepare() says so
      group_state& g = *it->second;
      if (g.finished) continue;
      // SmoothQuant needs the group's weights; a site begin() did not list waits for prepare().
      if (settings_.smoothquant && g.members.empty()) continue;
      finish(g, nullptr);
    }
  }

  std::unique_ptr<packed_linear> prepare(const layer& l) override {
    check_layer(l, "static-int8", true);
    auto it = group_of_.find(l.name);
    std::shared_ptr<group_state> g = it == group_of_.end() ? nullptr : it->second;
    const bool needs_data = settings_.mode == activation_mode::fixed || settings_.smoothquant;
    if (needs_data && (!g || !g->any || !observed_.count(l.name)))
      throw std::runtime_error("static-int8: Linear '" + l.name + "' got no calibration rows (observe) before "
                               "prepare; static activation scales and SmoothQuant need them: give the experiment "
                               "a calibration: section");
    if (!g) {  // dynamic activations without smoothing: nothing to calibrate
      g = std::make_shared<group_state>();
      g->name = l.name;
      g->id = group_id_of(l.name);
      groups_[l.name] = g;
      group_of_[l.name] = g;
    }
    if (!g->finished) finish(*g, &l);
    const int64_t k = l.weight.size(1);
    if (g->k != 0 && g->k != k)
      throw input_error("static-int8: Linear '" + l.name + "' has " + std::to_string(k) +
                        " inputs, its calibration rows had " + std::to_string(g->k));
    auto w = l.weight.to(at::kFloat).contiguous();
    if (g->act->smoothed()) w = w * g->act->smooth.reshape({1, -1});  // W' = W diag(s)
    auto q = quantize_symmetric_int8(w, settings_.weights == weight_granularity::per_tensor,
                                     "static-int8: Linear '" + l.name + "': the smoothed weight overflows float32");
    auto bias = l.bias.defined() ? l.bias.to(at::kFloat).contiguous() : at::Tensor();
    return std::make_unique<static_int8_linear>(path_, q.weight_int8, q.scales, bias, g->act, g->cache, g->id);
  }

  std::unique_ptr<packed_linear> load(const tensor_reader& in, const std::string& prefix) const override {
    const bool per_tensor = settings_.weights == weight_granularity::per_tensor;
    auto w = load_int8_weights(in, prefix, "static-int8", per_tensor);
    const int64_t k = w.weight_int8.size(1);
    const std::string who = "static-int8: tensor '" + prefix;
    if (w.weight_int8.numel() > 0 && w.weight_int8.min().item<int8_t>() < -127)
      throw checkpoint_error(who + ".weight_int8' holds -128; expected [-127, 127]");
    if (!at::isfinite(w.scales).all().item<bool>() || !(w.scales > 0).all().item<bool>())
      throw checkpoint_error(who + ".weight_scale' must hold finite positive scales");
    activation_params params;
    if (settings_.mode == activation_mode::fixed) {
      auto s = read(in, prefix + ".input_scale", at::kFloat, 1);
      params.scale = s.item<float>();
      if (!(params.scale > 0) || !std::isfinite(params.scale) || !std::isfinite(1.f / params.scale))
        throw checkpoint_error(who + ".input_scale' must be a finite positive float32, found " +
                               std::to_string(params.scale));
      if (settings_.act_type == activation_type::u8) {
        params.zero_point = read(in, prefix + ".input_zero_point", at::kInt, 1).item<int32_t>();
        if (params.zero_point < 0 || params.zero_point > 255)
          throw checkpoint_error(who + ".input_zero_point' must be in [0, 255], found " +
                                 std::to_string(params.zero_point));
      }
    }
    at::Tensor smooth;
    if (settings_.smoothquant) {
      smooth = read(in, prefix + ".smooth", at::kFloat, k).contiguous();
      if (!at::isfinite(smooth).all().item<bool>() || !(smooth > 0).all().item<bool>())
        throw checkpoint_error(who + ".smooth' must hold finite positive factors");
    }
    const int64_t group = in.has_tensor(prefix + ".input_group")
                              ? read(in, prefix + ".input_group", at::kLong, 1).item<int64_t>()
                              : group_id_of(prefix);
    // Layers of one saved group with identical activation quantization share the quantized input
    // again, as they did before saving.
    std::shared_ptr<const activation_quant> act;
    std::shared_ptr<input_cache> cache;
    {
      std::lock_guard<std::mutex> lock(load_mutex_);
      for (auto& entry : loaded_groups_) {
        if (entry.id != group) continue;
        auto c = entry.cache.lock();
        if (!c) continue;
        const auto& a = *entry.act;
        if (a.params.scale == params.scale && a.params.zero_point == params.zero_point &&
            a.smoothed() == smooth.defined() && (!smooth.defined() || at::equal(a.smooth, smooth))) {
          act = entry.act;
          cache = c;
          break;
        }
      }
      if (!act) {
        act = make_activation_quant(settings_.act_type, settings_.mode, params, smooth);
        cache = std::make_shared<input_cache>();
        loaded_groups_.push_back({group, act, cache});
      }
    }
    return std::make_unique<static_int8_linear>(path_, w.weight_int8, w.scales, w.bias, act, cache, group);
  }

 private:
  static at::Tensor read(const tensor_reader& in, const std::string& name, at::ScalarType type, int64_t size) {
    auto t = in.tensor(name);
    if (t.scalar_type() != type || t.dim() != 1 || t.size(0) != size)
      throw checkpoint_error("static-int8: tensor '" + name + "' must be " + std::string(c10::toString(type)) + " [" +
                             std::to_string(size) + "], found " + describe_tensor(t));
    return t;
  }

  group_state& group_for(const std::string& site) {
    auto it = group_of_.find(site);
    if (it != group_of_.end()) return *it->second;
    // A site begin() did not list: its own group.
    auto g = std::make_shared<group_state>();
    g->name = site;
    g->id = group_id_of(site);
    groups_[site] = g;
    group_of_[site] = g;
    return *g;
  }

  bool wants_channel_histograms() const {
    return settings_.mode == activation_mode::fixed && settings_.calib != calibrator::minmax;
  }

  void accumulate(group_state& g, const at::Tensor& x) {
    const int64_t m = x.size(0), k = x.size(1);
    const float* p = x.data_ptr<float>();
    g.any = true;
    if (!settings_.smoothquant) {
      if (settings_.mode != activation_mode::fixed) return;  // dynamic: nothing to keep
      double mn = 0, mx = 0;
      for (int64_t i = 0; i < m * k; ++i)
        if (std::isfinite(p[i])) mn = std::min<double>(mn, p[i]), mx = std::max<double>(mx, p[i]);
      g.whole.any = true;
      g.whole.min = std::min(g.whole.min, mn);
      g.whole.max = std::max(g.whole.max, mx);
      if (settings_.calib == calibrator::minmax) return;
      g.whole.hist.cover(std::max(-mn, mx));
      for (int64_t i = 0; i < m * k; ++i)
        if (std::isfinite(p[i])) g.whole.hist.add(p[i]);
      return;
    }
    if (g.ch_min.empty()) {
      g.ch_min.assign(static_cast<std::size_t>(k), 0.f);
      g.ch_max.assign(static_cast<std::size_t>(k), 0.f);
      if (wants_channel_histograms()) g.ch_hist.assign(static_cast<std::size_t>(k), histogram(64));
    }
    std::vector<float> batch_min(static_cast<std::size_t>(k), 0.f), batch_max(static_cast<std::size_t>(k), 0.f);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) {
        const float v = p[r * k + j];
        if (!std::isfinite(v)) continue;
        batch_min[j] = std::min(batch_min[j], v);
        batch_max[j] = std::max(batch_max[j], v);
      }
    for (int64_t j = 0; j < k; ++j) {
      g.ch_min[j] = std::min(g.ch_min[j], batch_min[j]);
      g.ch_max[j] = std::max(g.ch_max[j], batch_max[j]);
    }
    if (g.ch_hist.empty()) return;
    for (int64_t j = 0; j < k; ++j) g.ch_hist[j].cover(std::max(-batch_min[j], batch_max[j]));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) {
        const float v = p[r * k + j];
        if (std::isfinite(v)) g.ch_hist[j].add(v);
      }
  }

  // SmoothQuant factors: s_j = max|X_j|^alpha / max|W_j|^(1-alpha), W over every member.
  at::Tensor smoothing_factors(const group_state& g, const layer* extra) const {
    const int64_t k = g.k;
    std::vector<at::Tensor> weights;
    for (const auto& m : g.members) weights.push_back(m.weight.to(at::kFloat));
    if (weights.empty() && extra) weights.push_back(extra->weight.to(at::kFloat));
    at::Tensor w_max = at::zeros({k}, at::kFloat);
    for (const auto& w : weights) {
      if (w.dim() != 2 || w.size(1) != k) continue;
      auto finite = at::where(at::isfinite(w), w.abs(), at::zeros_like(w));
      w_max = at::maximum(w_max, std::get<0>(finite.max(0)));
    }
    auto s = at::ones({k}, at::kFloat);
    float* sp = s.data_ptr<float>();
    const float* wp = w_max.data_ptr<float>();
    for (int64_t j = 0; j < k; ++j) {
      const double a = std::max(std::abs(static_cast<double>(g.ch_min[j])), static_cast<double>(g.ch_max[j]));
      const double w = wp[j];
      if (!(a > 0) || !(w > 0)) continue;  // a dead channel keeps s = 1
      const double v = std::pow(a, settings_.alpha) / std::pow(w, 1.0 - settings_.alpha);
      sp[j] = static_cast<float>(std::clamp(v, 1e-5, 1e5));
    }
    return s;
  }

  void finish(group_state& g, const layer* extra) {
    g.finished = true;
    at::Tensor smooth;
    if (settings_.smoothquant && g.any) smooth = smoothing_factors(g, extra);
    activation_params params;
    if (settings_.mode == activation_mode::fixed && g.any) {
      observed_values v;
      if (!smooth.defined()) {
        v = std::move(g.whole);
      } else {
        // The smoothed input x_j / s_j: extremes from the per-channel ones, histogram from the
        // per-channel histograms, each bin spread over the bins it lands on once divided by s_j.
        const float* s = smooth.data_ptr<float>();
        v.any = true;
        for (int64_t j = 0; j < g.k; ++j) {
          v.min = std::min(v.min, static_cast<double>(g.ch_min[j]) / s[j]);
          v.max = std::max(v.max, static_cast<double>(g.ch_max[j]) / s[j]);
        }
        if (!g.ch_hist.empty()) {
          v.hist.cover(std::max(-v.min, v.max));
          for (int64_t j = 0; j < g.k; ++j) {
            const histogram& h = g.ch_hist[j];
            const std::vector<double> counts = h.counts();
            if (counts.empty()) {  // a channel that was only ever 0
              v.hist.add_zeros(h.total());
              continue;
            }
            const double w = h.width() / s[j];
            for (std::int64_t b = 0; b < 2 * h.half(); ++b) {
              const double c = counts[static_cast<std::size_t>(b)];
              if (c == 0) continue;
              const double a = static_cast<double>(b - h.half()) * w;
              v.hist.add_spread(a, a + w, c);
            }
          }
        }
      }
      params = params_for(calibrate(v, settings_.calib, settings_.act_type, settings_.percentile), settings_.act_type);
    }
    g.act = make_activation_quant(settings_.act_type, settings_.mode, params, smooth);
    // The statistics are no longer needed.
    g.whole = observed_values{};
    g.ch_hist.clear();
    g.ch_hist.shrink_to_fit();
    g.last_rows = at::Tensor();
  }

  settings settings_;
  matmul_path path_;
  std::map<std::string, std::shared_ptr<group_state>> groups_;    // by group name
  std::map<std::string, std::shared_ptr<group_state>> group_of_;  // by site
  std::set<std::string> observed_;                                // sites that got rows

  struct loaded_group {
    int64_t id;
    std::shared_ptr<const activation_quant> act;
    std::weak_ptr<input_cache> cache;
  };
  mutable std::mutex load_mutex_;
  mutable std::vector<loaded_group> loaded_groups_;
};

}  // namespace

std::unique_ptr<linear_quantizer> make_quantizer(const settings& s) {
  matmul_path path = matmul_path::portable;
  if (s.kernel == kernel_choice::onednn) {
    const char* reason = nullptr;
    if (!fast_kernels_available() || !onednn_int8_vnni_available(&reason))
      throw plugin_error(std::string("static-int8: kernel 'onednn' needs oneDNN's AVX-512 VNNI matmul: ") +
                         (reason ? reason : "this CPU lacks AVX-512 (F, BW, DQ, VL)"));
    path = matmul_path::onednn;
  } else if (s.kernel == kernel_choice::automatic && fast_path_supported(nullptr)) {
    path = matmul_path::qexp_vnni;
  }
  return std::make_unique<static_int8_quantizer>(s, path);
}

}  // namespace qexp::static_int8
