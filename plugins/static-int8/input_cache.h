// The quantized input shared by the Linears of one input group (q, k and v of a block).
//
// The host calls q_lin, k_lin and v_lin one after another on the same tensor, and with a static
// (or per-call, but shared) activation quantization the three would compute the same codes. The
// first member called quantizes; the next member reuses the codes only when
//   - it is called with the very same input: the same tensor object (TensorImpl), data pointer,
//     sizes and strides, and, for tensors that track it (not inference tensors), the same version
//     counter, i.e. no in-place write since;
//   - the previous call in the group was on that input: any call on another input replaces it;
//   - it has not used these codes yet: a member called twice on one input quantizes again.
// The cache holds a reference to that input tensor, so its memory cannot be freed and handed to a
// new tensor at the same address while the codes are kept; once every member has had them, both
// are let go. Anything else (a member called alone,
// out of order, on another input) just quantizes again: the cache can cost a quantize pass, never
// give wrong codes. Members of one cache always share one activation quantization (the group's
// scale, zero point and smoothing vector), which is what makes the codes interchangeable.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace qexp::static_int8 {

struct quantized_input {
  std::vector<std::uint8_t> codes;  // [m, k] u8 or s8 codes
  std::vector<char> row_ok;         // [m]: 0 where the input row held a NaN or an Inf
  std::vector<float> factor;        // dynamic activations with smoothing: this call's factors
  float scale = 1.f;                // dynamic activations: this call's scale and zero point
  std::int32_t zero_point = 0;
};

class input_cache {
 public:
  // A member index for a new Linear of the group (-1 past 64: it never reuses).
  int join() {
    std::lock_guard<std::mutex> lock(mutex_);
    return members_ < 64 ? members_++ : -1;
  }

  // The codes of the previous call, when `x` is its input and `member` has not used them yet.
  std::shared_ptr<const quantized_input> find(const at::Tensor& x, int member) {
    if (member < 0) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!last_ || !same_input(x)) return nullptr;
    const std::uint64_t bit = std::uint64_t{1} << member;
    if (served_ & bit) return nullptr;
    served_ |= bit;
    std::shared_ptr<const quantized_input> codes = last_;
    if (served_ == all_members()) {
      // Every member has its codes: let go of the input now rather than at the group's next
      // call, so its memory goes back to the allocator as soon as the model drops it (held
      // longer, a large batch's block input kept the allocator from reusing its memory).
      spare_ = std::move(last_);
      input_ = at::Tensor();
    }
    return codes;
  }

  // A buffer to quantize into: the one of an earlier call when nobody holds it any more.
  std::shared_ptr<quantized_input> buffer() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (spare_ && spare_.use_count() == 1) return std::move(spare_);
    return std::make_shared<quantized_input>();
  }

  // Records `q` as the quantization of `x`, used by `member`.
  void remember(const at::Tensor& x, int member, std::shared_ptr<quantized_input> q) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (last_ && last_.use_count() == 1) spare_ = std::move(last_);
    if (members_ < 2 || member < 0) {  // nobody to share with: keep only the buffer
      spare_ = std::move(q);
      last_.reset();
      input_ = at::Tensor();
      return;
    }
    input_ = x;
    version_ = tracks_version(x) ? x._version() : -1;
    last_ = std::move(q);
    served_ = std::uint64_t{1} << member;
  }

 private:
  static bool tracks_version(const at::Tensor& x) { return !x.is_inference(); }
  std::uint64_t all_members() const { return members_ >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << members_) - 1; }

  bool same_input(const at::Tensor& x) const {
    return input_.defined() && input_.unsafeGetTensorImpl() == x.unsafeGetTensorImpl() &&
           input_.data_ptr() == x.data_ptr() && input_.sizes() == x.sizes() && input_.strides() == x.strides() &&
           (tracks_version(x) ? x._version() == version_ : version_ == -1);
  }

  std::mutex mutex_;
  int members_ = 0;
  at::Tensor input_;  // held: its memory cannot be reused by another tensor meanwhile
  std::int64_t version_ = -1;
  std::shared_ptr<quantized_input> last_;
  std::uint64_t served_ = 0;
  std::shared_ptr<quantized_input> spare_;
};

}  // namespace qexp::static_int8
