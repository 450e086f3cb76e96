// safetensors reader and writer: round trips, Hugging Face files, and one test per kind of bad
// file, each checking that the error is a checkpoint_error naming the file and the problem.
#include "qexp/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <iostream>
#include <random>
#include <nlohmann/json.hpp>

#include "qexp/errors.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qexp::test::temp_dir;

fs::path golden_model() { return qexp::test::shared_dir() / "golden" / "distilbert-tiny-random"; }

// A safetensors file from a raw header text and `data_bytes` bytes of data (value 0x3f).
std::string raw_file(const std::string& header, std::size_t data_bytes,
                     std::uint64_t declared_length = UINT64_MAX) {
  std::string out(8, '\0');
  const std::uint64_t n = declared_length == UINT64_MAX ? header.size() : declared_length;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\x3f');
}

// Opens `content` written to a temp file and returns the error text (fails if none is thrown).
std::string open_error(const temp_dir& dir, const std::string& content) {
  const fs::path path = dir.path() / "bad.safetensors";
  qexp::test::write_file(path, content);
  try {
    qexp::safetensors_file::open(path);
  } catch (const qexp::checkpoint_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << "no file name in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no checkpoint_error for this file";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "missing '" << (part) << "' in: " << (text)

TEST(safetensors, round_trip_every_dtype_with_metadata) {
  temp_dir dir;
  at::manual_seed(7);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 5})},
      {"f64", at::randn({4}, at::kDouble)},
      {"f16", at::randn({2, 3}).to(at::kHalf)},
      {"bf16", at::randn({7}).to(at::kBFloat16)},
      {"i8", at::randint(-128, 127, {9}, at::kChar)},
      {"u8", at::randint(0, 255, {2, 2, 2}, at::kByte)},
      {"i16", at::randint(-30000, 30000, {3}, at::kShort)},
      {"i32", at::randint(-100000, 100000, {5}, at::kInt)},
      {"i64", at::randint(-100000, 100000, {6}, at::kLong)},
      {"bool", at::randint(0, 2, {4}, at::kLong).to(at::kBool)},
      {"scalar", at::full({}, 2.5f)},
      {"empty", at::empty({0, 3})},
      {"transposed", at::randn({4, 6}).t()},  // not contiguous: the writer must copy it
  };
  qexp::safetensors_writer writer;
  for (const auto& [name, t] : tensors) writer.add_tensor(name, t);
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "round trip");
  const fs::path path = dir.path() / "t.safetensors";
  const auto bytes = writer.write(path);
  EXPECT_EQ(bytes, fs::file_size(path));
  for (const auto& e : fs::directory_iterator(dir.path()))  // the temporary file is gone
    EXPECT_EQ(e.path().filename(), "t.safetensors");

  auto file = qexp::safetensors_file::open(path);
  std::vector<std::string> expected_names;
  for (const auto& t : tensors) expected_names.push_back(t.first);
  EXPECT_EQ(file->names(), expected_names);  // insertion order
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file->has_tensor(name));
    at::Tensor back = file->tensor(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type());
    EXPECT_EQ(back.sizes(), t.sizes());
    EXPECT_TRUE(at::equal(back, t));
  }
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->metadata().at("note"), "round trip");

  // Header padded to 8 bytes, so the data section starts 8-byte aligned.
  const std::string raw = qexp::test::read_file(path);
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | static_cast<std::uint8_t>(raw[i]);
  EXPECT_EQ(header_length % 8, 0u);
}

TEST(safetensors, tensors_outlive_the_file_object_and_writes_stay_private) {
  temp_dir dir;
  qexp::safetensors_writer writer;
  writer.add_tensor("x", at::arange(16, at::kFloat));
  const fs::path path = dir.path() / "x.safetensors";
  writer.write(path);
  at::Tensor x;
  {
    auto file = qexp::safetensors_file::open(path);
    x = file->tensor("x");
  }
  EXPECT_FLOAT_EQ(x[15].item<float>(), 15.0f);  // the mapping is still alive
  x.mul_(2);                                     // copy-on-write: the file is untouched
  EXPECT_FLOAT_EQ(qexp::safetensors_file::open(path)->tensor("x")[15].item<float>(), 15.0f);
}

TEST(safetensors, reads_hugging_face_file_and_writes_it_back_byte_for_byte) {
  const fs::path golden = golden_model() / "model.safetensors";
  auto file = qexp::safetensors_file::open(golden);
  EXPECT_EQ(file->names().size(), 40u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  auto word = file->tensor("distilbert.embeddings.word_embeddings.weight");
  EXPECT_EQ(word.sizes(), at::IntArrayRef({30522, 32}));
  EXPECT_EQ(word.scalar_type(), at::kFloat);

  // The golden file lists tensors in module order with a space-padded header, as this writer
  // does; writing its tensors back in the same order must give the same bytes.
  temp_dir dir;
  qexp::safetensors_writer writer;
  for (const auto& name : file->names()) writer.add_tensor(name, file->tensor(name));
  for (const auto& [key, value] : file->metadata()) writer.set_metadata(key, value);
  const fs::path copy = dir.path() / "copy.safetensors";
  writer.write(copy);
  EXPECT_EQ(qexp::test::read_file(copy), qexp::test::read_file(golden));
}

TEST(safetensors, missing_tensor_names_it) {
  temp_dir dir;
  qexp::safetensors_writer writer;
  writer.add_tensor("present", at::zeros({2}));
  writer.write(dir.path() / "m.safetensors");
  auto file = qexp::safetensors_file::open(dir.path() / "m.safetensors");
  EXPECT_FALSE(file->has_tensor("absent"));
  try {
    file->tensor("absent");
    FAIL() << "no error";
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_CONTAINS(e.what(), "'absent' not found");
    EXPECT_CONTAINS(e.what(), "m.safetensors");
  }
}

TEST(safetensors, empty_file) {
  temp_dir dir;
  EXPECT_CONTAINS(open_error(dir, ""), "file is 0 bytes");
}

TEST(safetensors, file_shorter_than_the_length_field) {
  temp_dir dir;
  EXPECT_CONTAINS(open_error(dir, std::string("\x10\x00\x00", 3)), "file is 3 bytes");
}

TEST(safetensors, header_length_beyond_the_file) {
  temp_dir dir;
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const auto message = open_error(dir, raw_file(header, 4, 1000000));
  EXPECT_CONTAINS(message, "header length 1000000");
  EXPECT_CONTAINS(message, "runs past the end of the file");
  // A length near 2^64 must not wrap around either.
  EXPECT_CONTAINS(open_error(dir, raw_file(header, 4, UINT64_MAX - 3)), "runs past the end");
}

TEST(safetensors, truncated_file) {
  temp_dir dir;
  qexp::safetensors_writer writer;
  writer.add_tensor("weight", at::ones({64}));
  writer.add_tensor("bias", at::ones({64}));
  const fs::path good = dir.path() / "good.safetensors";
  writer.write(good);
  const std::string full = qexp::test::read_file(good);
  // Cut inside the data section: the last tensor's range now runs past the end.
  auto message = open_error(dir, full.substr(0, full.size() - 10));
  EXPECT_CONTAINS(message, "tensor 'bias'");
  EXPECT_CONTAINS(message, "run past the data section");
  // Cut inside the header.
  message = open_error(dir, full.substr(0, 30));
  EXPECT_CONTAINS(message, "runs past the end of the file");
}

TEST(safetensors, header_that_is_not_json) {
  temp_dir dir;
  const auto message = open_error(dir, raw_file("{\"a\": [1, 2", 0));
  EXPECT_CONTAINS(message, "not valid JSON");
  EXPECT_CONTAINS(message, "byte offset");
  EXPECT_CONTAINS(open_error(dir, raw_file("[1, 2, 3]", 0)), "expected an object");
}

TEST(safetensors, a_header_followed_by_nul_and_garbage_names_the_byte) {
  temp_dir dir;
  const std::string header = "{\"__metadata__\": {}}";
  const auto message = open_error(dir, raw_file(header + std::string(3, '\0') + "garbage", 0));
  EXPECT_CONTAINS(message, "NUL byte at byte offset " + std::to_string(8 + header.size()));
  // Trailing spaces are the padding the format allows.
  const fs::path padded = dir.path() / "padded.safetensors";
  qexp::test::write_file(padded, raw_file(header + "    ", 0));
  EXPECT_NO_THROW(qexp::safetensors_file::open(padded));
}

TEST(safetensors, a_fifo_or_a_folder_is_refused_without_blocking) {
  temp_dir dir;
  const fs::path fifo = dir.path() / "fifo.safetensors";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    qexp::safetensors_file::open(fifo);
    ADD_FAILURE() << "no error";
  } catch (const qexp::checkpoint_error& e) {
    EXPECT_EQ(std::string(e.what()), fifo.string() + ": is a FIFO, expected a regular file");
  }
  EXPECT_THROW(qexp::safetensors_file::open(dir.path()), qexp::checkpoint_error);
}

TEST(safetensors, header_lying_about_sizes) {
  temp_dir dir;
  // [2, 3] F32 needs 24 bytes, the range holds 16.
  const auto message = open_error(
      dir, raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 24));
  EXPECT_CONTAINS(message, "tensor 'w'");
  EXPECT_CONTAINS(message, "needs 24 bytes");
  EXPECT_CONTAINS(message, "hold 16");
}

TEST(safetensors, overlapping_ranges) {
  temp_dir dir;
  const auto message = open_error(
      dir, raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                    R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                    24));
  EXPECT_CONTAINS(message, "overlap");
  EXPECT_CONTAINS(message, "tensor 'b'");
  EXPECT_CONTAINS(message, "'a' [0, 16]");
}

TEST(safetensors, unknown_dtype) {
  temp_dir dir;
  const auto message =
      open_error(dir, raw_file(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16));
  EXPECT_CONTAINS(message, "tensor 'w'");
  EXPECT_CONTAINS(message, "dtype 'F128'");
  EXPECT_CONTAINS(message, "expected one of F64, F32");
}

TEST(safetensors, malformed_entries) {
  temp_dir dir;
  EXPECT_CONTAINS(open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
                  "negative integer");
  EXPECT_CONTAINS(open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4)),
                  "missing field 'data_offsets'");
  EXPECT_CONTAINS(open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4)),
                  "end before begin");
  EXPECT_CONTAINS(open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4)),
                  "unknown field 'x'");
  EXPECT_CONTAINS(
      open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4)),
      "too large");
}

TEST(safetensors, metadata_must_map_strings_to_strings) {
  temp_dir dir;
  const auto message = open_error(dir, raw_file(R"({"__metadata__":{"format":3}})", 0));
  EXPECT_CONTAINS(message, "\"__metadata__\" key 'format'");
  EXPECT_CONTAINS(message, "expected a string");
}

// Random corruption of a valid file's length field and header: every outcome must be either a
// clean open whose tensors all read back, or a checkpoint_error; never a crash or another error.
TEST(safetensors, corrupted_headers_never_crash) {
  temp_dir dir;
  qexp::safetensors_writer writer;
  writer.add_tensor("a", at::arange(6, at::kFloat).view({2, 3}));
  writer.add_tensor("b", at::arange(4, at::kLong));
  writer.add_tensor("c", at::ones({3}, at::kHalf));
  writer.set_metadata("format", "pt");
  const fs::path good = dir.path() / "good.safetensors";
  writer.write(good);
  const std::string original = qexp::test::read_file(good);
  std::uint64_t header_end = 8;
  for (int i = 7; i >= 0; --i) header_end = (header_end << 8) | static_cast<std::uint8_t>(original[i]);
  header_end += 8;
  std::mt19937 rng(1234);
  int opened = 0, rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = original;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      const std::size_t at = rng() % header_end;
      const char replacements[] = "0123456789[]{}\",:-. eFIUx\x00\xff";
      bytes[at] = replacements[rng() % (sizeof(replacements) - 1)];
    }
    if (rng() % 10 == 0) bytes.resize(rng() % bytes.size());
    const fs::path path = dir.path() / "fuzz.safetensors";
    qexp::test::write_file(path, bytes);
    try {
      auto file = qexp::safetensors_file::open(path);
      for (const auto& name : file->names()) file->tensor(name).clone();
      ++opened;
    } catch (const qexp::checkpoint_error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  std::cout << "corrupted headers: " << opened << " still valid, " << rejected << " rejected\n";
}

TEST(safetensors, writer_rejects_bad_tensors) {
  qexp::safetensors_writer writer;
  writer.add_tensor("a", at::zeros({1}));
  EXPECT_THROW(writer.add_tensor("a", at::zeros({1})), qexp::input_error);
  EXPECT_THROW(writer.add_tensor("__metadata__", at::zeros({1})), qexp::input_error);
  EXPECT_THROW(writer.add_tensor("c", at::zeros({1}, at::kComplexFloat)), qexp::input_error);
  temp_dir dir;
  EXPECT_THROW(writer.write(dir.path() / "no-such-folder" / "x.safetensors"), qexp::input_error);
}

}  // namespace
