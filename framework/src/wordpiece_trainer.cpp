#include "qexp/wordpiece_trainer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <unordered_map>
#include <utility>

#include "qexp/errors.h"
#include "qexp/tokenizer.h"

namespace qexp {
namespace {

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
