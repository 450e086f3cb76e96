// How the process's allocator treats freed memory. libtorch's CPU tensors come from glibc's
// malloc, which hands blocks above its mmap threshold (at least 128 KiB) and free memory at the top
// of the heap back to the kernel; the next tensor of that size then page-faults every 4 KiB page in
// again, zeroed by the kernel. A forward at batch 32 allocates and frees tens of MB per layer, and
// in `e2e_bench` page faults were 13% of the samples (`perf record`) before this.
#pragma once

namespace qexp {

// Keeps freed memory in the process for reuse: blocks up to glibc's largest mmap threshold
// (32 MiB) come from the heap, and the heap is not trimmed below 1 GiB of free space. Call once,
// early in main(); a no-op where the C library is not glibc.
void keep_freed_memory_for_reuse();

}  // namespace qexp
