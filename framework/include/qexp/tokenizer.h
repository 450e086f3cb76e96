// BERT WordPiece tokenizer (uncased DistilBERT) with exact parity with the Hugging Face slow
// `BertTokenizer` of transformers 4.29.2: same ids and tokens for every text, including special
// tokens written in the text, accents, CJK, control characters and invalid UTF-8. See
// docs/tokenizer.md for the behaviour and the policy on invalid UTF-8.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qexp {

struct tokenizer_options {
  bool do_lower_case = true;           // tokenizer_config.json "do_lower_case"
  bool tokenize_chinese_chars = true;  // "tokenize_chinese_chars"
  std::optional<bool> strip_accents;   // "strip_accents" (null: follow do_lower_case, as HF does)
  // Special token strings ("unk_token", ... in tokenizer_config.json). They must be in the
  // vocabulary, except mask_token: a vocabulary without it simply has no mask token.
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  std::string mask_token = "[MASK]";
};

struct encoding {
  std::vector<std::int64_t> ids;     // with [CLS] ... [SEP], truncated to max_length
  std::vector<std::string> tokens;   // the same, as strings
};

struct batch_encoding {
  at::Tensor input_ids;       // int64 [batch, longest], padded with the pad id
  at::Tensor attention_mask;  // int64 [batch, longest], 1 for real tokens
  std::vector<std::int64_t> lengths;
};

namespace detail {
struct wordpiece_vocab;  // the hash tables; defined in tokenizer.cpp
}

// The words `encode` runs WordPiece on, as Hugging Face's BasicTokenizer cuts them (clean
// control characters, split CJK ideographs, split on whitespace, lower-case and strip accents
// when `do_lower_case`, split on punctuation), with the tokenizer's own code: special tokens
// written in the text are not kept whole, since there is no vocabulary. Invalid UTF-8 bytes are
// dropped. The WordPiece vocabulary builder (wordpiece_trainer.h) counts these words.
std::vector<std::string> basic_tokenize(std::string_view text, bool do_lower_case = true);

class wordpiece_tokenizer {
 public:
  // vocab.txt one token per line (id = line number). Throws qexp::input_error naming the file
  // (and line) when it is missing, empty, or lacks [UNK], [CLS], [SEP] or [PAD].
  static wordpiece_tokenizer from_vocab_file(const std::filesystem::path& vocab,
                                             tokenizer_options options = {});
  // A Hugging Face model folder: vocab.txt plus optional tokenizer_config.json.
  static wordpiece_tokenizer from_model_folder(const std::filesystem::path& dir);
  // Reads the options a tokenizer_config.json sets (keys it lacks keep their defaults).
  static tokenizer_options options_from_config_file(const std::filesystem::path& config_json);

  // max_length counts [CLS] and [SEP], so it must be at least 2 (qexp::config_error otherwise).
  encoding encode(std::string_view text, std::size_t max_length = 512) const;
  std::vector<std::int64_t> encode_ids(std::string_view text, std::size_t max_length = 512) const;  // fast path, no strings
  // Appends the ids of `text` (with [CLS] and [SEP]) to `out`: lets a caller reuse one buffer.
  void encode_ids_into(std::string_view text, std::vector<std::int64_t>& out,
                       std::size_t max_length = 512) const;
  batch_encoding encode_batch(const std::vector<std::string>& texts, std::size_t max_length = 512) const;

  std::int64_t pad_id() const;
  std::int64_t cls_id() const;
  std::int64_t sep_id() const;
  std::int64_t unk_id() const;
  std::int64_t mask_id() const;  // -1 when the vocabulary has no mask token
  std::size_t vocab_size() const;
  // The token string of an id (as HF's convert_ids_to_tokens); qexp::input_error when out of range.
  const std::string& token(std::int64_t id) const;
  // The id of a whole token string, or -1 when the vocabulary lacks it.
  std::int64_t id_of(std::string_view token) const;
  const tokenizer_options& options() const { return options_; }

  wordpiece_tokenizer(const wordpiece_tokenizer&);
  wordpiece_tokenizer& operator=(const wordpiece_tokenizer&);
  wordpiece_tokenizer(wordpiece_tokenizer&&) noexcept;
  wordpiece_tokenizer& operator=(wordpiece_tokenizer&&) noexcept;
  ~wordpiece_tokenizer();

 private:
  wordpiece_tokenizer();
  tokenizer_options options_;
  std::shared_ptr<const detail::wordpiece_vocab> vocab_;  // immutable, so copies share it
};

}  // namespace qexp
