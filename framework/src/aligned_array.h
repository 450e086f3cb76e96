// Zeroed, 64-byte aligned arrays for the packed weights of the matmul kernels (int8_gemm,
// int4_gemm): panels are read with aligned 512-bit loads, and the zero padding is part of the
// layout (padded channels and input positions multiply as zero).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace qexp::detail {

template <class T>
std::shared_ptr<T> aligned_array(std::size_t count) {
  const std::size_t bytes = std::max<std::size_t>(64, (count * sizeof(T) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::shared_ptr<T>(static_cast<T*>(p), [](T* q) { std::free(q); });
}

}  // namespace qexp::detail
