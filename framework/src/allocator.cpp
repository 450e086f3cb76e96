#include <qexp/allocator.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace qexp {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace qexp
