// Fuzzes qexp::safetensors_file (framework/src/safetensors.cpp): the input is a whole
// .safetensors file. A file the reader accepts must hand out every tensor with exactly the bytes
// its header promises; one it refuses must be refused with a checkpoint_error.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>

#include "fuzz_support.h"
#include "qexp/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = qexp::fuzz::scratch_dir() / "model.safetensors";
  qexp::fuzz::write_file(file, qexp::fuzz::as_text(data, size));
  qexp::fuzz::expect_only_qexp_errors([&] {
    std::shared_ptr<qexp::safetensors_file> st;
    try {
      st = qexp::safetensors_file::open(file);
    } catch (const qexp::checkpoint_error&) {
      return;  // refused, as documented
    }
    if (size < 8 || st->file_size() != size) qexp::fuzz::property_failed("accepted a file of the wrong size");
    std::uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | data[i];
    if (header_length > size - 8) qexp::fuzz::property_failed("accepted a header longer than the file");
    const std::uint64_t data_offset = 8 + header_length;
    for (const auto& [key, value] : st->metadata()) (void)key.size(), (void)value.size();
    for (const auto& name : st->names()) {
      const qexp::safetensors_entry& e = st->entry(name);
      if (e.end < e.begin || e.end > size - data_offset) qexp::fuzz::property_failed("entry outside the data", name);
      const at::Tensor t = st->tensor(name);
      const auto bytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
      if (bytes != e.end - e.begin) qexp::fuzz::property_failed("tensor bytes differ from data_offsets", name);
      if (t.sizes().vec() != e.shape) qexp::fuzz::property_failed("tensor shape differs from the header", name);
      if (!t.is_contiguous()) qexp::fuzz::property_failed("tensor is not contiguous", name);
      // Reads every byte (ASan checks the view lies inside the mapping) against the file's bytes.
      if (bytes > 0 && std::memcmp(t.data_ptr(), data + data_offset + e.begin, bytes) != 0)
        qexp::fuzz::property_failed("tensor bytes differ from the file", name);
    }
  });
  return 0;
}
