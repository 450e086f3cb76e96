// Files opened for reading: a folder, a FIFO, a device or a missing file is named for what it is,
// and nothing blocks on a FIFO.
#include "qexp/input_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "qexp/errors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qexp::test::temp_dir;

TEST(input_file, each_kind_of_non_regular_file_is_named) {
  temp_dir dir;
  fs::create_directories(dir.path() / "folder");
  ASSERT_EQ(mkfifo((dir.path() / "fifo").c_str(), 0600), 0);
  qexp::test::write_file(dir.path() / "file", "text");
  fs::create_symlink(dir.path() / "file", dir.path() / "link");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "folder"), "is a directory, expected a regular file");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "fifo"), "is a FIFO, expected a regular file");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "missing"), "no such file");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "file" / "below"), "no such file");
  EXPECT_EQ(qexp::regular_file_problem("/dev/null"), "is a character device, expected a regular file");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "file"), "");
  EXPECT_EQ(qexp::regular_file_problem(dir.path() / "link"), "");  // links are followed
}

TEST(input_file, reading_a_fifo_fails_at_once_instead_of_waiting_for_a_writer) {
  temp_dir dir;
  const fs::path fifo = dir.path() / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  try {
    qexp::read_regular_file(fifo, "dataset");
    FAIL() << "no error";
  } catch (const qexp::input_error& e) {
    EXPECT_EQ(std::string(e.what()), "dataset " + fifo.string() + ": is a FIFO, expected a regular file");
  }
  EXPECT_THROW(qexp::require_regular_file(dir.path(), "model config"), qexp::input_error);
}

TEST(input_file, a_regular_file_is_read_whole) {
  temp_dir dir;
  std::string content(200000, 'x');
  content[123456] = '\0';
  qexp::test::write_file(dir.path() / "big", content);
  EXPECT_EQ(qexp::read_regular_file(dir.path() / "big", "file"), content);
}
