// Fuzzes qexp::wordpiece_tokenizer (framework/src/tokenizer.cpp) on arbitrary bytes: invalid
// UTF-8, control characters, accents, CJK, special tokens written in the text, long words, and
// truncation. Input: byte 0 picks the options (lower-casing, accent stripping, CJK splitting),
// byte 1 the max_length (0..254, or 512 for 255), the rest is the text. The vocabulary is a small
// one built here (specials, every printable ASCII character whole and as ##piece, a few words and
// pieces, and non-ASCII tokens that lower-casing and NFD lead to).
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "fuzz_support.h"
#include "qexp/text.h"
#include "qexp/tokenizer.h"

namespace {

std::string vocabulary_text() {
  std::string v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char c = 33; c < 127; ++c) v += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  for (const char* t : {"the", "a", "movie", "film", "good", "bad", "not", "un", "##believ", "##able", "##s",
                        "##ing", "##ed", "##n", "n't", "hello", "Hello", "HELLO", "world", "caf", "##e", "cafe",
                        "café", "##é", "é", "naive", "naïve", "ü", "##ü", "über", "uber", "ß", "##ß", "ss", "σ",
                        "ς", "##σ", "i̇", "##̇", "ı", "中", "文", "日本", "##本", "한국어", "ﬁ", "😀", "##😀",
                        "[cls]", "[unused0]", "the",  // a repeated token keeps the last id
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
    v += std::string(t) + "\n";
  return v;
}

struct tokenizers {
  // [do_lower_case][strip_accents: follow, false, true][tokenize_chinese_chars]
  std::vector<qexp::wordpiece_tokenizer> all;
  tokenizers() {
    const auto vocab = qexp::fuzz::scratch_dir() / "vocab.txt";
    qexp::fuzz::write_file(vocab, vocabulary_text());
    for (int lower = 0; lower < 2; ++lower)
      for (int strip = 0; strip < 3; ++strip)
        for (int cjk = 0; cjk < 2; ++cjk) {
          qexp::tokenizer_options o;
          o.do_lower_case = lower != 0;
          o.strip_accents = strip == 0 ? std::nullopt : std::optional<bool>(strip == 2);
          o.tokenize_chinese_chars = cjk != 0;
          all.push_back(qexp::wordpiece_tokenizer::from_vocab_file(vocab, o));
        }
  }
};

void check_ids(const qexp::wordpiece_tokenizer& t, const std::vector<std::int64_t>& ids, std::size_t max_length) {
  if (ids.size() < 2 || ids.size() > max_length) qexp::fuzz::property_failed("ids outside [2, max_length]");
  if (ids.front() != t.cls_id() || ids.back() != t.sep_id()) qexp::fuzz::property_failed("ids not [CLS] ... [SEP]");
  for (const auto id : ids)
    if (id < 0 || static_cast<std::size_t>(id) >= t.vocab_size()) qexp::fuzz::property_failed("id outside the vocabulary");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const tokenizers made;
  const std::uint8_t selector = size > 0 ? data[0] : 0;
  const std::uint8_t length_byte = size > 1 ? data[1] : 255;
  const std::string_view text = size > 2 ? qexp::fuzz::as_text(data + 2, size - 2) : std::string_view();
  const auto& t = made.all[selector % made.all.size()];
  const std::size_t max_length = length_byte == 255 ? 512 : length_byte;

  qexp::fuzz::expect_only_qexp_errors([&] {
    if (max_length < 2) {
      try {
        t.encode_ids(text, max_length);
      } catch (const qexp::config_error&) {
        return;
      }
      qexp::fuzz::property_failed("max_length below 2 accepted");
    }
    const qexp::encoding e = t.encode(text, max_length);
    check_ids(t, e.ids, max_length);
    if (e.tokens.size() != e.ids.size()) qexp::fuzz::property_failed("tokens and ids differ in count");
    for (std::size_t i = 0; i < e.ids.size(); ++i)
      if (e.tokens[i] != t.token(e.ids[i])) qexp::fuzz::property_failed("token differs from token(id)");
    if (t.encode_ids(text, max_length) != e.ids) qexp::fuzz::property_failed("encode_ids differs from encode");

    // Truncation keeps the first tokens: the ids before [SEP] are a prefix of the untruncated ones.
    const auto full = t.encode_ids(text, std::numeric_limits<std::size_t>::max());
    check_ids(t, full, std::numeric_limits<std::size_t>::max());
    if (full.size() < e.ids.size() || !std::equal(e.ids.begin(), e.ids.end() - 1, full.begin()))
      qexp::fuzz::property_failed("truncated ids are not a prefix of the full ids");
    if (full.size() <= max_length && full != e.ids) qexp::fuzz::property_failed("a text that fits was truncated");

    // A batch holds each sentence's ids, padded with the pad id, and a mask of its real tokens.
    const std::vector<std::string> texts{std::string(text), std::string(text.substr(0, text.size() / 2))};
    const qexp::batch_encoding b = t.encode_batch(texts, max_length);
    const at::Tensor input_ids = b.input_ids.contiguous(), attention_mask = b.attention_mask.contiguous();
    const std::int64_t width = input_ids.size(1);
    for (std::size_t row = 0; row < texts.size(); ++row) {
      const auto ids = t.encode_ids(texts[row], max_length);
      if (b.lengths[row] != static_cast<std::int64_t>(ids.size())) qexp::fuzz::property_failed("batch length");
      const std::int64_t* input = input_ids.data_ptr<std::int64_t>() + static_cast<std::int64_t>(row) * width;
      const std::int64_t* mask = attention_mask.data_ptr<std::int64_t>() + static_cast<std::int64_t>(row) * width;
      for (std::int64_t i = 0; i < width; ++i) {
        const bool real = i < static_cast<std::int64_t>(ids.size());
        if (input[i] != (real ? ids[static_cast<std::size_t>(i)] : t.pad_id()) || mask[i] != (real ? 1 : 0))
          qexp::fuzz::property_failed("batch row differs from encode_ids");
      }
    }

    // The vocabulary builder's words: non-empty valid UTF-8 without whitespace.
    for (const auto& word : qexp::basic_tokenize(text, t.options().do_lower_case)) {
      if (word.empty()) qexp::fuzz::property_failed("basic_tokenize gave an empty word");
      if (qexp::invalid_utf8_offset(word) != std::string::npos) qexp::fuzz::property_failed("basic_tokenize gave invalid UTF-8");
      if (word.find_first_of(" \t\r\n") != std::string::npos) qexp::fuzz::property_failed("basic_tokenize gave whitespace");
    }
  });
  return 0;
}
