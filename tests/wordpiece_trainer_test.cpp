// The WordPiece vocabulary builder: special tokens first, deterministic, words cut exactly as the
// tokenizer cuts them, and every training word covered without [UNK].
#include "qexp/wordpiece_trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "qexp/errors.h"
#include "qexp/tokenizer.h"
#include "test_support.h"

namespace qexp {
namespace {

// The first rows of SST-2 train.tsv (sentence only), read from the shared data.
std::vector<std::string> sst2_sentences(std::size_t limit) {
  std::ifstream in(test::shared_dir() / "data" / "sst2" / "train.tsv");
  std::vector<std::string> out;
  std::string line;
  std::getline(in, line);  // header
  while (out.size() < limit && std::getline(in, line)) out.push_back(line.substr(0, line.rfind('\t')));
  return out;
}

std::vector<std::string> build(const std::vector<std::string>& texts, std::size_t size) {
  wordpiece_vocab_builder builder;
  for (const auto& t : texts) builder.add_text(t);
  wordpiece_vocab_options options;
  options.vocab_size = size;
  return builder.build(options);
}

wordpiece_tokenizer tokenizer_of(const std::vector<std::string>& vocab, const test::temp_dir& dir) {
  write_vocab_file(vocab, dir.path() / "vocab.txt");
  return wordpiece_tokenizer::from_vocab_file(dir.path() / "vocab.txt");
}

TEST(basic_tokenize, lower_cases_strips_accents_and_splits_punctuation) {
  EXPECT_EQ(basic_tokenize("Hello, WORLD!  It's"), (std::vector<std::string>{"hello", ",", "world", "!", "it", "'", "s"}));
  EXPECT_EQ(basic_tokenize("Caf\xC3\xA9 na\xC3\xAFve"), (std::vector<std::string>{"cafe", "naive"}));
  EXPECT_EQ(basic_tokenize("a\x01" "b\tc"), (std::vector<std::string>{"ab", "c"}));
  // CJK ideographs stand alone.
  EXPECT_EQ(basic_tokenize("x\xE4\xB8\xADy"), (std::vector<std::string>{"x", "\xE4\xB8\xAD", "y"}));
  EXPECT_EQ(basic_tokenize("Keep Case", false), (std::vector<std::string>{"Keep", "Case"}));
}

TEST(wordpiece_vocab_builder, starts_with_the_special_tokens_and_has_the_requested_size) {
  const auto vocab = build(sst2_sentences(5000), 3000);
  ASSERT_EQ(vocab.size(), 3000u);
  EXPECT_EQ(std::vector<std::string>(vocab.begin(), vocab.begin() + 5),
            (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}));
  EXPECT_EQ(std::set<std::string>(vocab.begin(), vocab.end()).size(), vocab.size()) << "duplicate entries";
  // Frequent words are whole entries, and some ##endings made it in.
  for (const char* w : {"the", "film", "movie", "##a"}) EXPECT_NE(std::find(vocab.begin(), vocab.end(), w), vocab.end()) << w;
  EXPECT_TRUE(std::any_of(vocab.begin(), vocab.end(), [](const std::string& t) { return t.rfind("##", 0) == 0 && t.size() > 4; }));

  test::temp_dir dir;
  const auto tokenizer = tokenizer_of(vocab, dir);
  EXPECT_EQ(tokenizer.pad_id(), 0);
  EXPECT_EQ(tokenizer.unk_id(), 1);
  EXPECT_EQ(tokenizer.cls_id(), 2);
  EXPECT_EQ(tokenizer.sep_id(), 3);
  EXPECT_EQ(tokenizer.mask_id(), 4);
}

TEST(wordpiece_vocab_builder, is_deterministic_whatever_the_order_of_the_text) {
  auto texts = sst2_sentences(3000);
  const auto a = build(texts, 2000);
  const auto b = build(texts, 2000);
  EXPECT_EQ(a, b);
  std::reverse(texts.begin(), texts.end());
  EXPECT_EQ(build(texts, 2000), a) << "ties must be broken by the token, not by the order words were seen";
}

TEST(wordpiece_vocab_builder, covers_every_training_word_without_unk) {
  auto texts = sst2_sentences(4000);
  texts.push_back("Un caf\xC3\xA9 tr\xC3\xA8s na\xC3\xAFve, \xE4\xB8\xAD\xE6\x96\x87 \xE2\x80\x94 hmm\xE2\x80\xA6");
  for (std::size_t size : {400u, 4000u}) {  // small: words split into pieces; large: mostly whole words
    const auto vocab = build(texts, size);
    test::temp_dir dir;
    const auto tokenizer = tokenizer_of(vocab, dir);
    std::size_t tokens = 0;
    for (const auto& text : texts) {
      const auto ids = tokenizer.encode_ids(text);
      tokens += ids.size();
      ASSERT_EQ(std::count(ids.begin(), ids.end(), tokenizer.unk_id()), 0) << "vocab size " << size << ": " << text;
    }
    EXPECT_GT(tokens, texts.size() * 3);
  }
}

// With room for every word, each word the builder counted is one token of the real tokenizer: the
// builder cuts words exactly as the tokenizer does.
TEST(wordpiece_vocab_builder, cuts_words_as_the_tokenizer_does) {
  auto texts = sst2_sentences(2000);
  texts.push_back("\xC3\x89LAN, na\xC3\xAFvet\xC3\xA9 (r\xC3\xA9sum\xC3\xA9) \xE4\xB8\xAD\xE6\x96\x87 it's-a\xE2\x80\xA6 \xEF\xBC\x81ok");
  const auto vocab = build(texts, 100000);
  test::temp_dir dir;
  const auto tokenizer = tokenizer_of(vocab, dir);
  for (const auto& text : texts) {
    auto tokens = tokenizer.encode(text).tokens;
    ASSERT_GE(tokens.size(), 2u);
    EXPECT_EQ(std::vector<std::string>(tokens.begin() + 1, tokens.end() - 1), basic_tokenize(text)) << text;
  }
}

TEST(wordpiece_vocab_builder, a_size_below_the_characters_is_a_config_error) {
  EXPECT_THROW(build(sst2_sentences(1000), 20), config_error);
}

}  // namespace
}  // namespace qexp
