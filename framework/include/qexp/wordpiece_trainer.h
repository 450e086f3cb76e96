// Builds a WordPiece vocabulary (vocab.txt) from training text, so that a model trained by qexp
// ships its own vocabulary instead of the third-party bert-base-uncased one.
//
// Words are cut by the tokenizer's own basic_tokenize (qexp/tokenizer.h: Hugging Face's
// BasicTokenizer: clean control characters, split CJK ideographs, split on whitespace, lower-case
// and strip accents, split on punctuation). The vocabulary then holds, in this order:
//   1. the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0..4, so pad_token_id is 0);
//   2. every character seen, alone and as a "##" continuation, so that every word of the
//      training text tokenizes without [UNK] whatever the size;
//   3. the most frequent whole words;
//   4. the most frequent word endings ("##ing", "##ly") of the words left out, so rare words
//      split into a stem and a suffix rather than into single characters.
// Ties are broken by the token text, so the result depends on the text alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace qexp {

// The special tokens every qexp vocabulary starts with, in id order.
const std::vector<std::string>& wordpiece_special_tokens();

struct wordpiece_vocab_options {
  std::size_t vocab_size = 8000;   // total entries, special tokens and characters included
  std::uint64_t min_frequency = 1;  // a word seen fewer times is never added whole
  // Share of the entries left after special tokens and characters that goes to "##" endings.
  double continuation_fraction = 0.1;
  std::size_t max_continuation_chars = 5;  // longest ending considered, in characters
};

class wordpiece_vocab_builder {
 public:
  explicit wordpiece_vocab_builder(bool do_lower_case = true) : do_lower_case_(do_lower_case) {}

  void add_text(std::string_view text);
  // Throws config_error when vocab_size cannot hold the special tokens and every character.
  std::vector<std::string> build(const wordpiece_vocab_options& options) const;

  const std::map<std::string, std::uint64_t>& word_counts() const { return word_counts_; }

 private:
  bool do_lower_case_;
  std::map<std::string, std::uint64_t> word_counts_;
};

// vocab.txt: one token per line, LF, final newline. Throws input_error on I/O failure.
void write_vocab_file(const std::vector<std::string>& vocab, const std::filesystem::path& path);

}  // namespace qexp
