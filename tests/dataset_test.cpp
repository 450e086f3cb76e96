// SST-2 TSV reading: the shared dev set, and each malformed input named by file and line.
#include "qexp/dataset.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "qexp/errors.h"
#include "test_support.h"

using qexp::test::temp_dir;
using qexp::test::write_file;

namespace {
std::string read_error(const std::string& content) {
  temp_dir dir;
  write_file(dir.path() / "d.tsv", content);
  try {
    qexp::read_sentence_tsv(dir.path() / "d.tsv");
  } catch (const qexp::input_error& e) {
    std::string m = e.what();
    return m.substr(m.find("d.tsv"));
  }
  return "";
}
}  // namespace

TEST(dataset, reads_the_sst2_dev_set) {
  auto dev = qexp::read_sentence_tsv(qexp::test::shared_dir() / "data/sst2/dev.tsv");
  ASSERT_EQ(dev.size(), 872u);
  EXPECT_EQ(dev.sentences[0], "it 's a charming and often affecting journey . ");
  EXPECT_EQ(dev.labels[0], 1);
  EXPECT_EQ(std::count(dev.labels.begin(), dev.labels.end(), 1), 444);
}

TEST(dataset, a_limit_keeps_the_first_rows) {
  auto dev = qexp::read_sentence_tsv(qexp::test::shared_dir() / "data/sst2/dev.tsv", 5);
  EXPECT_EQ(dev.size(), 5u);
  EXPECT_EQ(dev.labels[1], 0);
}

TEST(dataset, splits_on_the_last_tab) {
  temp_dir dir;
  write_file(dir.path() / "d.tsv", "sentence\tlabel\na\ttab inside\t1\r\n");
  auto d = qexp::read_sentence_tsv(dir.path() / "d.tsv");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d.sentences[0], "a\ttab inside");
}

TEST(dataset, malformed_files_name_the_line) {
  EXPECT_EQ(read_error(""), "d.tsv: empty file, expected a header line");
  EXPECT_EQ(read_error("text,label\n"), "d.tsv:1: expected the header 'sentence<TAB>label', found 'text,label'");
  EXPECT_EQ(read_error("sentence\tlabel\ngood\t1\nno tab here\n"), "d.tsv:3: expected sentence<TAB>label, found no tab");
  EXPECT_EQ(read_error("sentence\tlabel\nbad\tpositive\n"), "d.tsv:2: expected a non-negative integer label, found 'positive'");
  EXPECT_THROW(qexp::read_sentence_tsv("/no/such.tsv"), qexp::input_error);
}

TEST(dataset, a_header_without_sentences_is_one_clear_error) {
  EXPECT_EQ(read_error("sentence\tlabel\n"), "d.tsv: no sentences after the header, expected sentence<TAB>label lines");
  EXPECT_EQ(read_error("sentence\tlabel\n\n\n"), "d.tsv: no sentences after the header, expected sentence<TAB>label lines");
}

TEST(dataset, each_sentence_keeps_its_line_number) {
  temp_dir dir;
  write_file(dir.path() / "d.tsv", "sentence\tlabel\na\t1\n\nb\t0\n");
  auto d = qexp::read_sentence_tsv(dir.path() / "d.tsv");
  EXPECT_EQ(d.lines, (std::vector<std::size_t>{2, 4}));
}

TEST(dataset, a_folder_or_a_fifo_is_named_for_what_it_is_without_blocking) {
  temp_dir dir;
  std::filesystem::create_directories(dir.path() / "folder.tsv");
  ASSERT_EQ(mkfifo((dir.path() / "fifo.tsv").c_str(), 0600), 0);
  for (const auto& [name, kind] : {std::pair{"folder.tsv", "a directory"}, std::pair{"fifo.tsv", "a FIFO"}}) {
    try {
      qexp::read_sentence_tsv(dir.path() / name);
      ADD_FAILURE() << name;
    } catch (const qexp::input_error& e) {
      EXPECT_EQ(std::string(e.what()),
                "dataset " + (dir.path() / name).string() + ": is " + kind + ", expected a regular file");
    }
  }
}
