// How the panel kernels (int8_gemm, int4_gemm, float_gemm) cut the rows of a call into register
// blocks. Plain integer arithmetic and no standard-library templates, so that the AVX-512 files
// may include it (each instantiation takes that file's own lambda).
#pragma once

#include <cstdint>

namespace qexp::detail {

// Rows [0, m) in blocks of at most `max_rows`, as even as possible (25 rows, at most 6: five
// blocks of 5, not 4 x 6 + 1), and `lines` prefetch lines shared out among the blocks in order.
// Calls block(first_row, rows, first_line, lines_of_this_block) for each block.
template <class Block>
inline void for_each_row_block(std::int64_t m, std::int64_t max_rows, std::int64_t lines, Block&& block) {
  const std::int64_t count = (m + max_rows - 1) / max_rows;
  if (count <= 0) return;
  const std::int64_t base = m / count, extra = m % count;
  std::int64_t r = 0, line = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t rows = base + (i < extra ? 1 : 0);
    const std::int64_t share = lines * (i + 1) / count - line;
    block(r, rows, line, share);
    r += rows;
    line += share;
  }
}

}  // namespace qexp::detail
