#include "qexp/float_linear.h"

#include <ATen/ATen.h>

#include <dnnl.hpp>
#include <mutex>
#include <unordered_map>

#include "qexp/errors.h"
#include "qexp/float_gemm.h"
#include "qexp/plugin_helpers.h"

namespace qexp {

const char* to_string(float_backend backend) {
  switch (backend) {
    case float_backend::blas: return "blas";
    case float_backend::onednn: return "onednn";
    case float_backend::qexp: break;
  }
  return "qexp";
}

// qexp's float_gemm where the CPU has AVX-512 (faster than oneDNN's f32 matmul on the full-size
// DistilBERT, docs/benchmarks.md); elsewhere its kernel would be the portable C++ one, and oneDNN
// with its weights kept in the blocked layout is the fastest (1.75x OpenBLAS at one thread).
float_backend default_float_backend() {
  return float_gemm::avx512_available() ? float_backend::qexp : float_backend::onednn;
}

namespace {

class float_linear_base : public packed_linear {
 public:
  explicit float_linear_base(const layer& l)
      : weight_(l.weight.to(at::kFloat).contiguous()),
        bias_(l.bias.defined() ? l.bias.to(at::kFloat).contiguous() : at::Tensor()) {}

  std::size_t packed_bytes() const override {
    return weight_.nbytes() + (bias_.defined() ? bias_.nbytes() : 0);
  }
  at::Tensor dequantized_weight() const override { return weight_; }
  bool rows_independent() const override { return true; }
  void save(tensor_writer& out, const std::string& prefix) const override {
    out.add_tensor(prefix + ".weight", weight_);
    if (bias_.defined()) out.add_tensor(prefix + ".bias", bias_);
  }

 protected:
  at::Tensor weight_;  // [out, in]
  at::Tensor bias_;
};

class blas_linear final : public float_linear_base {
 public:
  explicit blas_linear(const layer& l) : float_linear_base(l), weight_t_(weight_.t()) {}

  at::Tensor forward(const at::Tensor& x) override {
    const auto in = linear_input_of(x, weight_.size(1), weight_.size(0), "float Linear");
    auto y = bias_.defined() ? at::addmm(bias_, in.rows, weight_t_) : at::mm(in.rows, weight_t_);
    return y.view(in.out_shape);
  }

 private:
  at::Tensor weight_t_;  // a transposed view: BLAS takes it as op(B) = W^T without a copy
};

// qexp's float_gemm on weights packed once into its panels.
class qexp_linear final : public float_linear_base {
 public:
  explicit qexp_linear(const layer& l)
      : float_linear_base(l), packed_(weight_.data_ptr<float>(), weight_.size(0), weight_.size(1)) {}

  at::Tensor forward(const at::Tensor& x) override {
    const int64_t k = weight_.size(1), n = weight_.size(0);
    const auto in = linear_input_of(x, k, n, "float Linear");
    auto y = at::empty({in.m(), n}, in.rows.options());
    float_gemm::multiply(in.rows.data_ptr<float>(), k, in.m(), packed_,
                         bias_.defined() ? bias_.data_ptr<float>() : nullptr, y.data_ptr<float>(), n);
    return y.view(in.out_shape);
  }

 private:
  float_gemm::packed_weights packed_;
};

// oneDNN f32 matmul. The weights are reordered once into the blocked layout the matmul
// implementation prefers (asked of a primitive built for a typical row count), so no call pays a
// reorder; one primitive per distinct row count is cached, since sequence lengths repeat across a
// dataset, and each is built on that same blocked layout. A row count whose primitive cannot take
// the blocked layout falls back to reading the plain weight in place.
class onednn_linear final : public float_linear_base {
 public:
  explicit onednn_linear(const layer& l)
      : float_linear_base(l), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const int64_t k = weight_.size(1), n = weight_.size(0);
    plain_wei_md_ = dnnl::memory::desc({k, n}, dt::f32, tag::ba);
    if (bias_.defined()) {
      bias_md_ = dnnl::memory::desc({1, n}, dt::f32, tag::ab);
      bias_mem_ = dnnl::memory(bias_md_, engine_, bias_.data_ptr());
    }
    constexpr int64_t typical_rows = 32;
    const auto any_wei = dnnl::memory::desc({k, n}, dt::f32, tag::any);
    const auto src_md = dnnl::memory::desc({typical_rows, k}, dt::f32, tag::ab);
    const auto dst_md = dnnl::memory::desc({typical_rows, n}, dt::f32, tag::ab);
    const auto desc = bias_.defined() ? dnnl::matmul::desc(src_md, any_wei, bias_md_, dst_md)
                                      : dnnl::matmul::desc(src_md, any_wei, dst_md);
    const dnnl::matmul::primitive_desc pd(desc, engine_);
    blocked_wei_md_ = pd.weights_desc();
    blocked_ = at::empty({static_cast<int64_t>(blocked_wei_md_.get_size())}, at::kByte);
    blocked_wei_mem_ = dnnl::memory(blocked_wei_md_, engine_, blocked_.data_ptr());
    dnnl::memory plain(plain_wei_md_, engine_, weight_.data_ptr());
    dnnl::reorder(plain, blocked_wei_mem_).execute(stream_, plain, blocked_wei_mem_);
    stream_.wait();
    plain_wei_mem_ = plain;
  }

  at::Tensor forward(const at::Tensor& x) override {
    const int64_t k = weight_.size(1), n = weight_.size(0);
    const auto in = linear_input_of(x, k, n, "float Linear");
    const at::Tensor& x2 = in.rows;
    const int64_t m = in.m();
    auto y = at::empty({m, n}, x2.options());
    // oneDNN divides by the row count while creating a primitive: no rows, nothing to compute.
    if (m == 0) return y.view(in.out_shape);
    std::lock_guard<std::mutex> lock(mutex_);  // the cache and the stream are per layer
    auto& entry = primitive_for(m);
    dnnl::memory src(entry.src_md, engine_, x2.data_ptr());
    dnnl::memory dst(entry.dst_md, engine_, y.data_ptr());
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, entry.blocked ? blocked_wei_mem_ : plain_wei_mem_},
        {DNNL_ARG_DST, dst}};
    if (bias_.defined()) args.emplace(DNNL_ARG_BIAS, bias_mem_);
    entry.matmul.execute(stream_, args);
    stream_.wait();
    return y.view(in.out_shape);
  }

 private:
  struct cached_primitive {
    dnnl::memory::desc src_md, dst_md;
    dnnl::matmul matmul;
    bool blocked = true;
  };

  cached_primitive& primitive_for(int64_t m) {
    auto it = cache_.find(m);
    if (it != cache_.end()) return it->second;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const int64_t k = weight_.size(1), n = weight_.size(0);
    cached_primitive p;
    p.src_md = dnnl::memory::desc({m, k}, dt::f32, tag::ab);
    p.dst_md = dnnl::memory::desc({m, n}, dt::f32, tag::ab);
    const auto make = [&](const dnnl::memory::desc& wei_md) {
      const auto desc = bias_.defined() ? dnnl::matmul::desc(p.src_md, wei_md, bias_md_, p.dst_md)
                                        : dnnl::matmul::desc(p.src_md, wei_md, p.dst_md);
      return dnnl::matmul(dnnl::matmul::primitive_desc(desc, engine_));
    };
    try {
      p.matmul = make(blocked_wei_md_);
    } catch (const dnnl::error&) {
      p.blocked = false;
      p.matmul = make(plain_wei_md_);
    }
    return cache_.emplace(m, std::move(p)).first->second;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::memory::desc plain_wei_md_, blocked_wei_md_, bias_md_;
  dnnl::memory plain_wei_mem_, blocked_wei_mem_, bias_mem_;
  at::Tensor blocked_;  // owns the blocked weight bytes
  std::mutex mutex_;
  std::unordered_map<int64_t, cached_primitive> cache_;
};

}  // namespace

std::unique_ptr<packed_linear> make_float_linear(const layer& l, float_backend backend) {
  check_layer(l, "float", false);  // the float path computes NaN and Inf as they are
  switch (backend) {
    case float_backend::blas: return std::make_unique<blas_linear>(l);
    case float_backend::onednn: return std::make_unique<onednn_linear>(l);
    case float_backend::qexp: break;
  }
  return std::make_unique<qexp_linear>(l);
}

std::unique_ptr<packed_linear> load_float_linear(const tensor_reader& in, const std::string& prefix,
                                                 float_backend backend) {
  layer l;
  l.name = prefix;
  l.weight = in.tensor(prefix + ".weight");
  if (in.has_tensor(prefix + ".bias")) l.bias = in.tensor(prefix + ".bias");
  return make_float_linear(l, backend);
}

namespace {

class float_table final : public packed_table {
 public:
  explicit float_table(at::Tensor weight) : weight_(std::move(weight)) {}
  // at::embedding's own range check throws a c10::IndexError; the table contract (and the
  // conformance suite) says std::out_of_range, as every plugin's table throws.
  at::Tensor lookup(const at::Tensor& ids) override {
    checked_ids(ids, weight_.size(0), "float table");
    return at::embedding(weight_, ids);
  }
  std::size_t packed_bytes() const override { return weight_.nbytes(); }
  at::Tensor dequantized_table() const override { return weight_; }
  void save(tensor_writer& out, const std::string& prefix) const override { out.add_tensor(prefix + ".weight", weight_); }

 private:
  at::Tensor weight_;
};

}  // namespace

std::unique_ptr<packed_table> make_float_table(const table& t) {
  return std::make_unique<float_table>(t.weight.to(at::kFloat).contiguous());
}

}  // namespace qexp
