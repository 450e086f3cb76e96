// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// 8 bytes little-endian header length N, N bytes of JSON header, then the raw tensor data.
//
// The reader maps the file and validates the whole header when it opens, so every later
// `tensor()` call is a cheap view of the mapping. Any inconsistency (truncation, a header that
// lies about sizes, overlapping ranges, unknown dtypes) is reported as one checkpoint_error line
// naming the file and the tensor or byte offset, with what was expected and what was found.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qexp/plugin_api.h"

namespace qexp {

// One tensor entry of a safetensors header, after validation.
struct safetensors_entry {
  std::string dtype;                 // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range inside the data section
};

class safetensors_file : public tensor_reader {
 public:
  // Maps and validates `path`; throws checkpoint_error naming the file and the problem.
  static std::shared_ptr<safetensors_file> open(const std::filesystem::path& path);

  bool has_tensor(const std::string& name) const override;
  // A CPU tensor viewing the mapping (copy-on-write, so writing to it never touches the file).
  // The tensor keeps the mapping alive. Throws checkpoint_error when `name` is absent.
  at::Tensor tensor(const std::string& name) const override;
  // Tensor names in the order the header lists them.
  std::vector<std::string> names() const;
  const safetensors_entry& entry(const std::string& name) const;
  // The "__metadata__" object (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const;
  const std::filesystem::path& path() const;
  std::uint64_t file_size() const;

  struct mapping;  // the mmap'd bytes; shared with every tensor handed out

 private:
  safetensors_file() = default;

  std::filesystem::path path_;
  std::shared_ptr<mapping> mapping_;
  std::uint64_t data_offset_ = 0;  // 8 + header length
  std::vector<std::string> order_;
  std::map<std::string, safetensors_entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one safetensors file. Tensors are written in insertion order
// (header and data alike), so a model saved in module order reads back in module order; the
// header is padded with spaces to a multiple of 8 bytes as Hugging Face's writer does, which keeps
// every tensor's data 8-byte aligned when each tensor's size is a multiple of 8 bytes.
class safetensors_writer : public tensor_writer {
 public:
  // Supported dtypes: float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64, bool.
  // Keeps a reference to (a contiguous CPU version of) the tensor until write().
  // Throws input_error on a duplicate or reserved name or an unsupported dtype.
  void add_tensor(const std::string& name, const at::Tensor& t) override;
  void set_metadata(const std::string& key, const std::string& value);
  // Writes `path` whole or not at all (write_file_atomically, qexp/atomic_file.h), so readers never
  // see a half-written file. Returns the number of bytes written. Throws input_error on I/O failure.
  std::uint64_t write(const std::filesystem::path& path) const;

  std::size_t size() const { return tensors_.size(); }

 private:
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
};

// The safetensors dtype name of a torch dtype ("F32", ...); throws input_error if unsupported.
std::string safetensors_dtype_name(at::ScalarType type);

}  // namespace qexp
