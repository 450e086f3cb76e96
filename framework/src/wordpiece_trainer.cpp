#include "qexp/wordpiece_trainer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <unordered_map>
#include <utility>

#include "qexp/errors.h"

namespace qexp {
namespace {

// The character classes of Hugging Face's BasicTokenizer, as tokenizer.cpp applies them (it keeps
// its own copy private so that its hot loop stays inlined; both follow _is_control,
// _is_whitespace, _is_punctuation and _is_chinese_char of transformers 4.29).
bool is_dropped(std::int32_t cp) {
  if (cp == 0 || cp == 0xFFFD) return true;
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  const auto category = utf8proc_category(cp);
  return category == UTF8PROC_CATEGORY_CN || category == UTF8PROC_CATEGORY_CC || category == UTF8PROC_CATEGORY_CF ||
         category == UTF8PROC_CATEGORY_CS || category == UTF8PROC_CATEGORY_CO;
}

bool is_space(std::int32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  const auto category = utf8proc_category(cp);
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL || category == UTF8PROC_CATEGORY_ZP;
}

bool is_punctuation(std::int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  if (cp < 128) return false;
  const auto category = utf8proc_category(cp);
  return category >= UTF8PROC_CATEGORY_PC && category <= UTF8PROC_CATEGORY_PO;
}

bool is_cjk_ideograph(std::int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_utf8(std::string& out, std::int32_t cp) {
  utf8proc_uint8_t buffer[4];
  const auto n = utf8proc_encode_char(cp, buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

std::vector<std::int32_t> code_points_of(std::string_view text) {
  std::vector<std::int32_t> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  auto left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    auto n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: skip it
      n = 1;
      cp = -1;
    }
    if (cp >= 0) out.push_back(cp);
    p += n;
    left -= n;
  }
  return out;
}

// Lower-case, then NFD and drop the nonspacing marks (accents), as BasicTokenizer does for
// uncased models.
std::vector<std::int32_t> lower_and_strip(const std::vector<std::int32_t>& word) {
  std::vector<std::int32_t> out;
  for (const auto cp : word) {
    std::vector<std::int32_t> lowered;
    if (cp == 0x130) lowered = {'i', 0x307};  // Python's full lower-case mapping of U+0130
    else lowered = {utf8proc_tolower(cp)};
    for (const auto l : lowered) {
      utf8proc_int32_t decomposed[8];
      int last_boundclass = 0;
      const auto n = utf8proc_decompose_char(l, decomposed, 8, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE),
                                             &last_boundclass);
      if (n <= 0 || n > 8) {
        out.push_back(l);
        continue;
      }
      for (utf8proc_ssize_t i = 0; i < n; ++i)
        if (utf8proc_category(decomposed[i]) != UTF8PROC_CATEGORY_MN) out.push_back(decomposed[i]);
    }
  }
  return out;
}

// Sorts (token, count) by count descending, then by token, so the order depends on the text alone.
std::vector<std::pair<std::string, std::uint64_t>> by_frequency(
    const std::unordered_map<std::string, std::uint64_t>& counts) {
  std::vector<std::pair<std::string, std::uint64_t>> out(counts.begin(), counts.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return out;
}

}  // namespace

const std::vector<std::string>& wordpiece_special_tokens() {
  static const std::vector<std::string> tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  return tokens;
}

std::vector<std::string> basic_tokenize(std::string_view text, bool do_lower_case) {
  std::vector<std::string> words;
  std::vector<std::int32_t> current;
  auto flush = [&] {
    if (current.empty()) return;
    const auto cleaned = do_lower_case ? lower_and_strip(current) : current;
    std::string piece;
    for (const auto cp : cleaned) {
      if (is_punctuation(cp)) {
        if (!piece.empty()) words.push_back(std::move(piece));
        piece.clear();
        std::string punct;
        append_utf8(punct, cp);
        words.push_back(std::move(punct));
      } else {
        append_utf8(piece, cp);
      }
    }
    if (!piece.empty()) words.push_back(std::move(piece));
    current.clear();
  };
  for (const auto cp : code_points_of(text)) {
    if (is_dropped(cp)) continue;
    if (is_space(cp)) {
      flush();
    } else if (is_cjk_ideograph(cp)) {
      flush();
      current.push_back(cp);
      flush();
    } else {
      current.push_back(cp);
    }
  }
  flush();
  return words;
}

void wordpiece_vocab_builder::add_text(std::string_view text) {
  for (auto& word : basic_tokenize(text, do_lower_case_)) ++word_counts_[word];
}

std::vector<std::string> wordpiece_vocab_builder::build(const wordpiece_vocab_options& options) const {
  std::vector<std::string> vocab = wordpiece_special_tokens();
  std::set<std::string> present(vocab.begin(), vocab.end());
  auto add = [&](const std::string& token) {
    if (present.insert(token).second) vocab.push_back(token);
  };

  // Every character, first and as a continuation: the floor that keeps [UNK] out of training text.
  std::unordered_map<std::string, std::uint64_t> characters;
  for (const auto& [word, count] : word_counts_) {
    for (const auto cp : code_points_of(word)) {
      std::string c;
      append_utf8(c, cp);
      characters[c] += count;
    }
  }
  const auto sorted_characters = by_frequency(characters);
  for (const auto& [c, count] : sorted_characters) add(c);
  for (const auto& [c, count] : sorted_characters) add("##" + c);
  if (vocab.size() > options.vocab_size)
    throw config_error("vocabulary size " + std::to_string(options.vocab_size) + " is too small: the " +
                       std::to_string(wordpiece_special_tokens().size()) + " special tokens and the " +
                       std::to_string(sorted_characters.size()) + " characters of the text (each also as ##c) need " +
                       std::to_string(vocab.size()));

  const std::size_t left = options.vocab_size - vocab.size();
  const auto continuation_budget =
      static_cast<std::size_t>(static_cast<double>(left) * std::clamp(options.continuation_fraction, 0.0, 1.0));
  const std::size_t word_budget = left - continuation_budget;

  std::unordered_map<std::string, std::uint64_t> word_map(word_counts_.begin(), word_counts_.end());
  const auto sorted_words = by_frequency(word_map);
  std::size_t words_added = 0;
  std::size_t next = 0;
  for (; next < sorted_words.size() && words_added < word_budget; ++next) {
    const auto& [word, count] = sorted_words[next];
    if (count < options.min_frequency) break;
    if (present.count(word)) continue;
    add(word);
    ++words_added;
  }

  // Endings of the words left out, weighted by how often those words occur.
  std::unordered_map<std::string, std::uint64_t> endings;
  for (std::size_t i = next; i < sorted_words.size(); ++i) {
    const auto& [word, count] = sorted_words[i];
    if (present.count(word)) continue;
    const auto cps = code_points_of(word);
    for (std::size_t length = 2; length <= options.max_continuation_chars && length < cps.size(); ++length) {
      std::string ending = "##";
      for (std::size_t k = cps.size() - length; k < cps.size(); ++k) append_utf8(ending, cps[k]);
      endings[ending] += count;
    }
  }
  std::size_t endings_added = 0;
  for (const auto& [ending, count] : by_frequency(endings)) {
    if (endings_added >= continuation_budget) break;
    if (count < 2) break;  // an ending of one rare word helps no other word
    if (present.count(ending)) continue;
    add(ending);
    ++endings_added;
  }
  // Unused ending budget goes back to whole words.
  for (; next < sorted_words.size() && vocab.size() < options.vocab_size; ++next) {
    const auto& [word, count] = sorted_words[next];
    if (count < options.min_frequency) break;
    add(word);
  }
  return vocab;
}

void write_vocab_file(const std::vector<std::string>& vocab, const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw input_error(path.string() + ": cannot open for writing the vocabulary");
  for (const auto& token : vocab) out << token << '\n';
  out.flush();
  if (!out) throw input_error(path.string() + ": write failed after " + std::to_string(vocab.size()) + " tokens");
}

}  // namespace qexp
