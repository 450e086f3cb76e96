#include "qexp/onednn_support.h"

#include <string>

#include "qexp/errors.h"

namespace qexp {

dnnl::engine& onednn_cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool onednn_int8_vnni_available(const char** reason) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
    if (reason) *reason = "this CPU lacks AVX-512 (F, BW, DQ, VL)";
    return false;
  }
  if (!__builtin_cpu_supports("avx512vnni")) {
    if (reason) *reason = "this CPU lacks AVX-512 VNNI, which the int8 brgemm kernel needs";
    return false;
  }
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto vnni = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_vnni);
  if ((isa & vnni) != vnni) {
    if (reason) *reason = "oneDNN is limited below avx512_core_vnni (ONEDNN_MAX_CPU_ISA?)";
    return false;
  }
  return true;
}

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
// Row count of the primitive that picks the weights' blocked layout: brgemm's layout depends on N,
// K and the data types, and the primitive of any other M accepts it.
constexpr std::int64_t layout_probe_rows = 32;
}  // namespace

onednn_s8_matmul::onednn_s8_matmul(const std::int8_t* w, std::int64_t n, std::int64_t k, bool u8_codes,
                                   std::size_t capacity)
    : n_(n), k_(k), u8_codes_(u8_codes), capacity_(capacity > 0 ? capacity : 1) {
  auto& engine = onednn_cpu_engine();
  weights_md_ = describe(layout_probe_rows, dnnl::memory::desc({k_, n_}, dt::s8, tag::any)).weights_desc();
  weights_ = dnnl::memory(weights_md_, engine);
  // W is [N, K] row-major: the matmul's K x N weights in `ba` order. With s8 codes the blocked
  // layout also carries the compensation oneDNN needs, computed by this reorder.
  dnnl::memory plain({{k_, n_}, dt::s8, tag::ba}, engine, const_cast<std::int8_t*>(w));
  dnnl::stream stream(engine);
  dnnl::reorder(plain, weights_).execute(stream, plain, weights_);
  stream.wait();
}

dnnl::matmul::primitive_desc onednn_s8_matmul::describe(std::int64_t m, const dnnl::memory::desc& weights_md) const {
  dnnl::memory::desc src_md({m, k_}, u8_codes_ ? dt::u8 : dt::s8, tag::ab);
  dnnl::memory::desc dst_md({m, n_}, dt::s32, tag::ab);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, weights_md, dst_md), onednn_cpu_engine());
}

std::shared_ptr<const onednn_s8_matmul::primitive> onednn_s8_matmul::primitive_for(std::int64_t m) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = by_rows_.find(m);
  if (it != by_rows_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  dnnl::matmul::primitive_desc pd;
  try {
    pd = describe(m, weights_md_);
  } catch (const dnnl::error& e) {
    throw plugin_error("oneDNN has no int8 matmul for " + std::to_string(m) + " x " + std::to_string(k_) + " x " +
                       std::to_string(n_) + " with the weights' packed layout: " + e.what());
  }
  if (by_rows_.size() >= capacity_) {
    by_rows_.erase(lru_.back());
    lru_.pop_back();
  }
  auto p = std::make_shared<const primitive>(primitive{pd.src_desc(), pd.dst_desc(), dnnl::matmul(pd)});
  lru_.push_front(m);
  by_rows_.emplace(m, std::make_pair(p, lru_.begin()));
  return p;
}

void onednn_s8_matmul::multiply(const std::uint8_t* codes, std::int64_t m, std::int32_t* acc) {
  const auto p = primitive_for(m);
  auto& engine = onednn_cpu_engine();
  dnnl::memory src(p->src_md, engine, const_cast<std::uint8_t*>(codes));
  dnnl::memory dst(p->dst_md, engine, acc);
  dnnl::stream stream(engine);
  p->matmul.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst}});
  stream.wait();
}

void onednn_s8_matmul::unpack(std::int8_t* w) const {
  auto& engine = onednn_cpu_engine();
  dnnl::memory plain({{k_, n_}, dt::s8, tag::ba}, engine, w);
  dnnl::stream stream(engine);
  dnnl::reorder(weights_, plain).execute(stream, const_cast<dnnl::memory&>(weights_), plain);
  stream.wait();
}

}  // namespace qexp
