#include "qexp/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qexp/atomic_file.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/text.h"

namespace qexp {
namespace {

struct dtype_info {
  const char* name;
  at::ScalarType type;
  std::size_t bytes;
};

// The dtypes libtorch 1.13 can hold. Newer safetensors dtypes (U16, U32, U64, F8_*) have no
// torch type here and are reported as unsupported rather than misread.
constexpr dtype_info dtype_table[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const dtype_info* find_dtype(const std::string& name) {
  for (const auto& d : dtype_table)
    if (name == d.name) return &d;
  return nullptr;
}

const dtype_info* find_dtype(at::ScalarType type) {
  for (const auto& d : dtype_table)
    if (type == d.type) return &d;
  return nullptr;
}

std::string known_dtypes() {
  std::string s;
  for (const auto& d : dtype_table) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string json_kind(const nlohmann::ordered_json& j) {
  if (j.is_number_unsigned()) return "a non-negative integer";
  if (j.is_number_integer()) return "a negative integer " + j.dump();
  if (j.is_number_float()) return "a number " + j.dump();
  return std::string(j.type_name());
}

}  // namespace

struct safetensors_file::mapping {
  void* address = nullptr;
  std::size_t size = 0;
  ~mapping() {
    if (address) munmap(address, size);
  }
  const std::uint8_t* bytes() const { return static_cast<const std::uint8_t*>(address); }
};

std::shared_ptr<safetensors_file> safetensors_file::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  auto fail = [&file](const std::string& what) -> checkpoint_error {
    return checkpoint_error(file + ": " + what);
  };

  int fd = -1;
  try {
    fd = open_regular_file(path, "");
  } catch (const input_error& e) {
    throw checkpoint_error(e.what());
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw fail(std::string("cannot stat: ") + std::strerror(e));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw fail("file is " + std::to_string(size) +
               " bytes; a safetensors file needs at least the 8-byte header length");
  }
  auto map = std::make_shared<mapping>();
  // Private and writable: tensors handed out may be modified in place by callers without ever
  // reaching the file (pages are copied on first write only).
  void* address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (address == MAP_FAILED) throw fail(std::string("cannot map: ") + std::strerror(map_errno));
  map->address = address;
  map->size = size;

  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | map->bytes()[i];
  if (header_length > size - 8)
    throw fail("header length " + std::to_string(header_length) +
               " (bytes 0-7) runs past the end of the file: only " + std::to_string(size - 8) +
               " bytes follow");
  if (header_length < 2)
    throw fail("header length " + std::to_string(header_length) +
               " at byte offset 0 is too small for a JSON object");

  const char* header_begin = reinterpret_cast<const char*>(map->bytes() + 8);
  // nlohmann's parser stops at a NUL byte as at the end of the text, so "{...}\0garbage" would
  // pass; the format allows only spaces after the JSON object.
  if (const void* nul = std::memchr(header_begin, '\0', header_length))
    throw fail("NUL byte at byte offset " + std::to_string(8 + (static_cast<const char*>(nul) - header_begin)) +
               " inside the header (bytes 8-" + std::to_string(8 + header_length) +
               "): expected JSON text, padded with spaces only");
  // ordered_json keeps the header's order, which names() reports.
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(header_begin, header_begin + header_length);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw fail("header (bytes 8-" + std::to_string(8 + header_length) +
               ") is not valid JSON: parse error near byte offset " +
               std::to_string(8 + e.byte) + ": expected a JSON object");
  } catch (const nlohmann::ordered_json::exception& e) {
    throw fail("header (bytes 8-" + std::to_string(8 + header_length) + ") cannot be read: " + one_line(e.what()) +
               "; expected a JSON object");
  }
  if (!header.is_object())
    throw fail("header at byte offset 8 is JSON " + std::string(header.type_name()) +
               "; expected an object of tensor entries");

  std::shared_ptr<safetensors_file> result(new safetensors_file());
  result->path_ = path;
  result->data_offset_ = 8 + header_length;
  const std::uint64_t data_size = size - result->data_offset_;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::ordered_json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object())
        throw fail("\"__metadata__\" is " + json_kind(value) + "; expected an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string())
          throw fail("\"__metadata__\" key '" + m.key() + "' is " + json_kind(m.value()) +
                     "; expected a string");
        result->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!value.is_object())
      throw fail(where + "entry is " + json_kind(value) +
                 "; expected an object with dtype, shape and data_offsets");
    for (auto field = value.begin(); field != value.end(); ++field)
      if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
        throw fail(where + "unknown field '" + field.key() +
                   "'; expected only dtype, shape and data_offsets");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!value.contains(field)) throw fail(where + "missing field '" + field + "'");

    safetensors_entry entry;
    const auto& dtype = value["dtype"];
    if (!dtype.is_string()) throw fail(where + "dtype is " + json_kind(dtype) + "; expected a string");
    entry.dtype = dtype.get<std::string>();
    const dtype_info* info = find_dtype(entry.dtype);
    if (!info)
      throw fail(where + "unknown or unsupported dtype '" + entry.dtype + "'; expected one of " +
                 known_dtypes());

    const auto& shape = value["shape"];
    if (!shape.is_array()) throw fail(where + "shape is " + json_kind(shape) + "; expected an array");
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned())
        throw fail(where + "shape " + shape.dump() + " has " + json_kind(dim) +
                   "; expected non-negative integers");
      const auto d = dim.get<std::uint64_t>();
      if (d > static_cast<std::uint64_t>(INT64_MAX)) overflow = true;
      entry.shape.push_back(static_cast<std::int64_t>(d));
      if (__builtin_mul_overflow(numel, d, &numel)) overflow = true;
    }
    std::uint64_t expected_bytes = 0;
    if (overflow || __builtin_mul_overflow(numel, info->bytes, &expected_bytes))
      throw fail(where + "shape " + shape.dump() + " is too large to address");

    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw fail(where + "data_offsets is " + offsets.dump() +
                 "; expected [begin, end] with non-negative integers");
    entry.begin = offsets[0].get<std::uint64_t>();
    entry.end = offsets[1].get<std::uint64_t>();
    if (entry.end < entry.begin)
      throw fail(where + "data_offsets [" + std::to_string(entry.begin) + ", " +
                 std::to_string(entry.end) + "] end before begin");
    if (entry.end > data_size)
      throw fail(where + "data_offsets [" + std::to_string(entry.begin) + ", " +
                 std::to_string(entry.end) + "] run past the data section, which is " +
                 std::to_string(data_size) + " bytes (file offset " +
                 std::to_string(result->data_offset_ + entry.end) + " > file size " +
                 std::to_string(size) + ")");
    if (entry.end - entry.begin != expected_bytes)
      throw fail(where + "dtype " + entry.dtype + " shape " + shape_text(entry.shape) +
                 " needs " + std::to_string(expected_bytes) + " bytes but data_offsets [" +
                 std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "] hold " +
                 std::to_string(entry.end - entry.begin));
    result->order_.push_back(name);
    result->entries_.emplace(name, std::move(entry));
  }

  // Ranges must not share bytes: sort by start and compare neighbours. Empty tensors own no bytes.
  std::vector<const std::pair<const std::string, safetensors_entry>*> by_offset;
  for (const auto& e : result->entries_)
    if (e.second.end > e.second.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->second.begin < b->second.begin ||
           (a->second.begin == b->second.begin && a->first < b->first);
  });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& prev = *by_offset[i - 1];
    const auto& cur = *by_offset[i];
    if (cur.second.begin < prev.second.end)
      throw fail("tensor '" + cur.first + "': data_offsets [" + std::to_string(cur.second.begin) +
                 ", " + std::to_string(cur.second.end) + "] overlap tensor '" + prev.first +
                 "' [" + std::to_string(prev.second.begin) + ", " +
                 std::to_string(prev.second.end) + "]; expected disjoint ranges");
  }
  result->mapping_ = std::move(map);
  return result;
}

bool safetensors_file::has_tensor(const std::string& name) const {
  return entries_.count(name) != 0;
}

const safetensors_entry& safetensors_file::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw checkpoint_error(path_.string() + ": tensor '" + name + "' not found (the file has " +
                           std::to_string(entries_.size()) + " tensors)");
  return it->second;
}

at::Tensor safetensors_file::tensor(const std::string& name) const {
  const safetensors_entry& e = entry(name);
  const dtype_info* info = find_dtype(e.dtype);
  auto options = at::TensorOptions().dtype(info->type).device(at::kCPU);
  if (e.end == e.begin) return at::empty(e.shape, options);
  std::uint8_t* data = static_cast<std::uint8_t*>(mapping_->address) + data_offset_ + e.begin;
  if (reinterpret_cast<std::uintptr_t>(data) % info->bytes != 0) {
    // The format does not promise alignment; kernels may assume it, so hand out a copy.
    auto copy = at::empty(e.shape, options);
    std::memcpy(copy.data_ptr(), data, e.end - e.begin);
    return copy;
  }
  auto keep_alive = new std::shared_ptr<mapping>(mapping_);
  return at::from_blob(
      data, e.shape, [keep_alive](void*) { delete keep_alive; }, options);
}

std::vector<std::string> safetensors_file::names() const { return order_; }

const std::map<std::string, std::string>& safetensors_file::metadata() const { return metadata_; }

const std::filesystem::path& safetensors_file::path() const { return path_; }

std::uint64_t safetensors_file::file_size() const { return mapping_->size; }

std::string safetensors_dtype_name(at::ScalarType type) {
  const dtype_info* info = find_dtype(type);
  if (!info)
    throw input_error(std::string("safetensors cannot store dtype ") + c10::toString(type) +
                      "; supported: " + known_dtypes());
  return info->name;
}

void safetensors_writer::add_tensor(const std::string& name, const at::Tensor& t) {
  if (name.empty() || name == "__metadata__")
    throw input_error("safetensors tensor name '" + name + "' is reserved or empty");
  if (!t.defined()) throw input_error("safetensors tensor '" + name + "' is undefined");
  for (const auto& existing : tensors_)
    if (existing.first == name)
      throw input_error("safetensors tensor '" + name + "' was added twice");
  safetensors_dtype_name(t.scalar_type());  // validates the dtype now, not at write time
  tensors_.emplace_back(name, t.device().is_cpu() ? t.contiguous() : t.cpu().contiguous());
}

void safetensors_writer::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::uint64_t safetensors_writer::write(const std::filesystem::path& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    const std::uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  char length[8];
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(static_cast<std::uint8_t>(n >> (8 * i)));
  std::vector<std::string_view> parts{{length, 8}, text};
  for (const auto& entry : tensors_) {
    const at::Tensor& t = entry.second;
    parts.emplace_back(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
  }
  try {
    write_file_atomically(path, parts);
  } catch (const error& e) {
    throw input_error(e.what());  // a checkpoint that cannot be written is an input error (exit 4), as before
  }
  return 8 + text.size() + offset;
}

}  // namespace qexp
