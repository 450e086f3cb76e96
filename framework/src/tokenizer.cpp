// BERT WordPiece tokenizer, a port of transformers 4.29.2's slow BertTokenizer.
//
// The reference does, in order: lower-case the text outside special tokens (one code point at a
// time, Python's str.lower), split it around special tokens written in the text, then per part:
// _clean_text, _tokenize_chinese_chars, whitespace split, per token lower + NFD + drop Mn +
// split on punctuation, and greedy longest-match WordPiece per piece. Every step but NFD's
// canonical reordering works on single code points, so one pass over the bytes builds each
// whitespace token already cleaned and lower-cased; the per-token steps then run on an ASCII fast
// path (no utf8proc) or, when the token has other characters, on the exact utf8proc path.
#include "qexp/tokenizer.h"

#include <utf8proc.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "qexp/dataset.h"
#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/text.h"

namespace qexp {
namespace detail {

// An open-addressing hash table from token bytes to id, keyed into one contiguous blob of token
// text: no std::string per lookup, and probes touch only the slot array and the blob.
class token_table {
 public:
  struct slot {
    std::uint32_t tag = 0;     // high bits of the hash; 0 marks an empty slot
    std::int32_t id = -1;
    std::uint32_t offset = 0;  // into the blob
    std::uint32_t length = 0;
  };

  static std::uint64_t hash_step(std::uint64_t h, unsigned char byte) {
    return (h ^ byte) * 0x100000001b3ULL;  // FNV-1a: sequential, so prefixes hash incrementally
  }
  static constexpr std::uint64_t hash_seed = 0xcbf29ce484222325ULL;
  static std::uint32_t tag_of(std::uint64_t h) {
    auto tag = static_cast<std::uint32_t>(h >> 32);
    return tag == 0 ? 1 : tag;
  }

  void build(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& keys,  // offset, length
             const std::vector<std::int32_t>& ids, const std::string* blob) {
    blob_ = blob;
    std::size_t capacity = 16;
    while (capacity < keys.size() * 2 + 1) capacity *= 2;
    slots_.assign(capacity, slot{});
    mask_ = capacity - 1;
    max_length_ = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto [offset, length] = keys[k];
      std::uint64_t h = hash_seed;
      for (std::uint32_t i = 0; i < length; ++i) h = hash_step(h, static_cast<unsigned char>((*blob)[offset + i]));
      const std::uint32_t tag = tag_of(h);
      std::size_t index = h & mask_;
      while (true) {
        slot& s = slots_[index];
        if (s.tag == 0) {
          s = slot{tag, ids[k], offset, length};
          break;
        }
        // A repeated token keeps the last id, as Python's dict in load_vocab does.
        if (s.tag == tag && s.length == length && std::memcmp(blob->data() + s.offset, blob->data() + offset, length) == 0) {
          s.id = ids[k];
          break;
        }
        index = (index + 1) & mask_;
      }
      max_length_ = std::max<std::size_t>(max_length_, length);
    }
  }

  // `h` must be the hash of exactly [text, text + length).
  std::int32_t find(std::uint64_t h, const char* text, std::size_t length) const {
    const std::uint32_t tag = tag_of(h);
    std::size_t index = h & mask_;
    while (true) {
      const slot& s = slots_[index];
      if (s.tag == 0) return -1;
      if (s.tag == tag && s.length == length && std::memcmp(blob_->data() + s.offset, text, length) == 0) return s.id;
      index = (index + 1) & mask_;
    }
  }

  std::int32_t find(std::string_view text) const {
    std::uint64_t h = hash_seed;
    for (char c : text) h = hash_step(h, static_cast<unsigned char>(c));
    return find(h, text.data(), text.size());
  }

  std::size_t max_length() const { return max_length_; }

 private:
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t max_length_ = 0;
  const std::string* blob_ = nullptr;
};

struct special_token {
  std::string text;
  std::int32_t id;
};

struct wordpiece_vocab {
  std::vector<std::string> tokens;  // by id (line number)
  std::string blob;                 // every token's bytes, back to back
  token_table whole;                // "word" -> id
  token_table continuation;         // "##piece" -> id, keyed by "piece"
  std::vector<special_token> specials;  // kept whole when written in the text
  std::array<bool, 256> special_first_byte{};
  std::int32_t unk = -1, cls = -1, sep = -1, pad = -1, mask = -1;
};

}  // namespace detail

namespace {

constexpr std::size_t max_input_chars_per_word = 100;  // HF WordpieceTokenizer's default

// --- UTF-8 -------------------------------------------------------------------------------------

// decode_utf8 (qexp/text.h) decodes one code point as Python's strict decoder does.

inline std::size_t count_code_points(std::string_view valid_utf8) {
  std::size_t count = 0;
  for (const char c : valid_utf8) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

inline void append_utf8(std::string& out, std::int32_t cp) {
  char buffer[4];
  const auto n = utf8proc_encode_char(cp, reinterpret_cast<utf8proc_uint8_t*>(buffer));
  out.append(buffer, static_cast<std::size_t>(n));
}

// --- Character classes, as HF's tokenization_bert.py defines them -----------------------------

enum class ascii_class : unsigned char { dropped, space, other };

constexpr std::array<ascii_class, 128> make_ascii_classes() {
  std::array<ascii_class, 128> classes{};
  for (int c = 0; c < 128; ++c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      classes[c] = ascii_class::space;
    } else if (c < 0x20 || c == 0x7F) {
      classes[c] = ascii_class::dropped;  // Cc: _clean_text removes it (U+0000 included)
    } else {
      classes[c] = ascii_class::other;
    }
  }
  return classes;
}
constexpr std::array<ascii_class, 128> ascii_classes = make_ascii_classes();

constexpr bool is_ascii_punctuation(unsigned char c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

inline bool is_punctuation(std::int32_t cp) {
  if (cp < 128) return is_ascii_punctuation(static_cast<unsigned char>(cp));
  const auto category = utf8proc_category(cp);
  return category >= UTF8PROC_CATEGORY_PC && category <= UTF8PROC_CATEGORY_PO;
}

// HF's _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul, kana or CJK symbols).
inline bool is_cjk_ideograph(std::int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Python 3.11 (which made the golden files) has the Unicode 14.0 database; utf8proc 2.8 has
// 15.0. Code points first assigned in 15.0 are unassigned (Cn) to the reference, so
// _clean_text drops them; we do the same so that the two agree on every code point.
inline bool assigned_after_unicode_14(std::int32_t cp) {
  static constexpr std::int32_t ranges[][2] = {
      // Generated by comparing unicodedata (14.0) with utf8proc_category (15.0) on every code point.
      {0xCF3, 0xCF3}, {0xECE, 0xECE}, {0x10EFD, 0x10EFF}, {0x1123F, 0x11241},
      {0x11B00, 0x11B09}, {0x11F00, 0x11F10}, {0x11F12, 0x11F3A}, {0x11F3E, 0x11F59},
      {0x1342F, 0x1342F}, {0x13439, 0x13455}, {0x1B132, 0x1B132}, {0x1B155, 0x1B155},
      {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F},
      {0x1E4D0, 0x1E4F9}, {0x1F6DC, 0x1F6DC}, {0x1F774, 0x1F776}, {0x1F77B, 0x1F77F},
      {0x1F7D9, 0x1F7D9}, {0x1FA75, 0x1FA77}, {0x1FA87, 0x1FA88}, {0x1FAAD, 0x1FAAF},
      {0x1FABB, 0x1FABD}, {0x1FABF, 0x1FABF}, {0x1FACE, 0x1FACF}, {0x1FADA, 0x1FADB},
      {0x1FAE8, 0x1FAE8}, {0x1FAF7, 0x1FAF8}, {0x2B739, 0x2B739}, {0x31350, 0x323AF},
  };
  for (const auto& r : ranges) {
    if (cp < r[0]) return false;
    if (cp <= r[1]) return true;
  }
  return false;
}

enum class code_point_class : unsigned char { dropped, space, cjk, other };

inline code_point_class classify(std::int32_t cp, bool split_cjk) {
  if (cp == 0xFFFD) return code_point_class::dropped;
  const auto category = utf8proc_category(cp);
  switch (category) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
      return code_point_class::dropped;  // _is_control: every "C*" category
    case UTF8PROC_CATEGORY_ZS:
      return code_point_class::space;  // _is_whitespace, mapped to " "
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return code_point_class::space;  // kept by _clean_text, but str.split() splits on them
    default:
      break;
  }
  if (assigned_after_unicode_14(cp)) return code_point_class::dropped;
  if (split_cjk && is_cjk_ideograph(cp)) return code_point_class::cjk;
  return code_point_class::other;
}

// Python's str.lower of one code point: the simple mapping, except U+0130 whose full lower-case
// form is two code points (SpecialCasing.txt). Final sigma never applies since HF lowers the
// text one character at a time.
inline void append_lower(std::string& out, std::int32_t cp) {
  if (cp == 0x130) {
    out += "i\xCC\x87";  // i + U+0307 COMBINING DOT ABOVE
    return;
  }
  append_utf8(out, utf8proc_tolower(cp));
}

// --- The encoder -------------------------------------------------------------------------------

// Collects ids, and stops taking them once `limit` are in: truncation keeps the first tokens,
// so the rest of a long text need not be tokenized at all.
struct id_sink {
  std::vector<std::int64_t>& out;
  std::size_t limit;  // absolute size of `out` at which it is full
  bool full() const { return out.size() >= limit; }
  void push(std::int64_t id) {
    if (out.size() < limit) out.push_back(id);
  }
};

struct scratch_buffers {
  std::string word;                    // the current whitespace token, cleaned and lower-cased
  std::string piece;                   // one punctuation-split piece of a non-ASCII token
  std::vector<utf8proc_int32_t> code_points;  // NFD of a non-ASCII token
};

scratch_buffers& thread_scratch() {
  thread_local scratch_buffers buffers;
  return buffers;
}

// What the reference does before WordPiece: the split around special tokens written in the text,
// then BasicTokenizer (clean, CJK, whitespace split, lower + NFD + drop Mn, punctuation split).
// Hands `out` each special token's id (out.special(id)) and each piece WordPiece runs on
// (out.piece(bytes, n, code points)), in text order, and stops once out.full(). The encoder
// (WordPiece ids) and basic_tokenize (the pieces as strings) are its two outputs, so the
// vocabulary builder cuts words exactly as the tokenizer does.
template <typename Out>
class basic_splitter {
 public:
  basic_splitter(const std::vector<detail::special_token>& specials,
                 const std::array<bool, 256>& special_first_byte, const tokenizer_options& options, Out& out)
      : specials_(specials), special_first_byte_(special_first_byte), out_(out), scratch_(thread_scratch()),
        lower_(options.do_lower_case),
        strip_accents_(options.strip_accents.value_or(options.do_lower_case)),
        split_cjk_(options.tokenize_chinese_chars) {}

  void run(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    std::string& word = scratch_.word;
    word.clear();
    bool word_is_ascii = true;
    while (p < end && !out_.full()) {
      const unsigned char b = *p;
      if (special_first_byte_[b]) {
        if (const auto* special = special_at(p, end)) {
          flush_word(word, word_is_ascii);
          out_.special(special->id);
          p += special->text.size();
          continue;
        }
      }
      if (b < 0x80) {
        switch (ascii_classes[b]) {
          case ascii_class::other:
            word.push_back(lower_ && b >= 'A' && b <= 'Z' ? static_cast<char>(b + 32) : static_cast<char>(b));
            break;
          case ascii_class::space:
            flush_word(word, word_is_ascii);
            break;
          case ascii_class::dropped:
            break;
        }
        ++p;
        continue;
      }
      std::int32_t cp = 0;
      const std::size_t length = decode_utf8(p, end, cp);
      if (length == 0) {  // invalid UTF-8: the byte is dropped (see docs/tokenizer.md)
        ++p;
        continue;
      }
      p += length;
      switch (classify(cp, split_cjk_)) {
        case code_point_class::dropped:
          break;
        case code_point_class::space:
          flush_word(word, word_is_ascii);
          break;
        case code_point_class::cjk:  // _tokenize_chinese_chars: a token of its own
          flush_word(word, word_is_ascii);
          append_utf8(word, cp);
          word_is_ascii = false;
          flush_word(word, word_is_ascii);
          break;
        case code_point_class::other:
          if (lower_) {
            append_lower(word, cp);
          } else {
            append_utf8(word, cp);
          }
          word_is_ascii = false;
          break;
      }
    }
    flush_word(word, word_is_ascii);
    // One huge unbroken text should not pin its memory to this thread for good.
    if (word.capacity() > (std::size_t{1} << 20)) {
      std::string().swap(word);
      std::string().swap(scratch_.piece);
      std::vector<utf8proc_int32_t>().swap(scratch_.code_points);
    }
  }

 private:
  const detail::special_token* special_at(const unsigned char* p, const unsigned char* end) const {
    const detail::special_token* best = nullptr;
    const auto left = static_cast<std::size_t>(end - p);
    for (const auto& special : specials_) {
      if (special.text.size() <= left && std::memcmp(p, special.text.data(), special.text.size()) == 0 &&
          (best == nullptr || special.text.size() > best->text.size())) {
        best = &special;
      }
    }
    return best;
  }

  // One whitespace token of BasicTokenizer.tokenize; leaves `word` empty and ASCII again.
  void flush_word(std::string& word, bool& word_is_ascii) {
    if (word.empty()) return;
    if (!out_.full()) {
      if (is_never_split(word)) {
        out_.piece(word.data(), word.size(), count_code_points(word));
      } else if (word_is_ascii) {
        split_ascii(word);
      } else {
        split_unicode(word);
      }
    }
    word.clear();
    word_is_ascii = true;
  }

  // BasicTokenizer keeps a token that equals a special token whole (it can only happen without
  // lower-casing, e.g. "[CL\x01S]" once _clean_text has removed the control character).
  bool is_never_split(const std::string& word) const {
    if (!special_first_byte_[static_cast<unsigned char>(word[0])]) return false;
    for (const auto& special : specials_) {
      if (word == special.text) return true;
    }
    return false;
  }

  void split_ascii(const std::string& word) {
    const char* data = word.data();
    const std::size_t n = word.size();
    std::size_t start = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (is_ascii_punctuation(static_cast<unsigned char>(data[i]))) {
        if (i > start) out_.piece(data + start, i - start, i - start);
        out_.piece(data + i, 1, 1);
        start = i + 1;
      }
    }
    if (n > start) out_.piece(data + start, n - start, n - start);
  }

  void split_unicode(const std::string& word) {
    auto& cps = scratch_.code_points;
    const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(word.data());
    const auto length = static_cast<utf8proc_ssize_t>(word.size());
    std::size_t count = 0;
    if (strip_accents_) {
      // NFD (canonical decomposition and reordering) of the whole token, then drop Mn.
      const int options = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
      if (cps.size() < word.size() + 8) cps.resize(word.size() + 8);
      auto needed = utf8proc_decompose_custom(bytes, length, cps.data(), static_cast<utf8proc_ssize_t>(cps.size()),
                                              static_cast<utf8proc_option_t>(options), nullptr, nullptr);
      if (needed > static_cast<utf8proc_ssize_t>(cps.size())) {
        cps.resize(static_cast<std::size_t>(needed));
        needed = utf8proc_decompose_custom(bytes, length, cps.data(), needed, static_cast<utf8proc_option_t>(options),
                                           nullptr, nullptr);
      }
      if (needed < 0) throw input_error(std::string("tokenizer: utf8proc could not decompose a token: ") +
                                        utf8proc_errmsg(needed));
      for (std::size_t i = 0; i < static_cast<std::size_t>(needed); ++i) {
        if (utf8proc_category(cps[i]) != UTF8PROC_CATEGORY_MN) cps[count++] = cps[i];
      }
    } else {
      if (cps.size() < word.size()) cps.resize(word.size());
      const auto* p = reinterpret_cast<const unsigned char*>(word.data());
      const auto* end = p + word.size();
      while (p < end) {
        std::int32_t cp = 0;
        p += decode_utf8(p, end, cp);  // the word holds only valid UTF-8 we wrote ourselves
        cps[count++] = cp;
      }
    }
    std::string& piece = scratch_.piece;
    piece.clear();
    std::size_t piece_chars = 0;
    for (std::size_t i = 0; i < count && !out_.full(); ++i) {
      const std::int32_t cp = cps[i];
      if (is_punctuation(cp)) {
        if (!piece.empty()) out_.piece(piece.data(), piece.size(), piece_chars);
        piece.clear();
        piece_chars = 0;
        append_utf8(piece, cp);
        out_.piece(piece.data(), piece.size(), 1);
        piece.clear();
      } else {
        append_utf8(piece, cp);
        ++piece_chars;
      }
    }
    if (!piece.empty()) out_.piece(piece.data(), piece.size(), piece_chars);
  }

  const std::vector<detail::special_token>& specials_;
  const std::array<bool, 256>& special_first_byte_;
  Out& out_;
  scratch_buffers& scratch_;
  bool lower_;
  bool strip_accents_;
  bool split_cjk_;
};

// The ids of a text: basic_splitter's pieces through greedy longest-match-first WordPiece.
class encoder {
 public:
  encoder(const detail::wordpiece_vocab& vocab, const tokenizer_options& options, id_sink& sink)
      : vocab_(vocab), sink_(sink), splitter_(vocab.specials, vocab.special_first_byte, options, *this) {}

  void run(std::string_view text) { splitter_.run(text); }

  // basic_splitter's output.
  bool full() const { return sink_.full(); }
  void special(std::int32_t id) { sink_.push(id); }

  // Greedy longest-match-first WordPiece over one piece of `n` bytes and `chars` code points.
  void piece(const char* text, std::size_t n, std::size_t chars) {
    if (chars > max_input_chars_per_word) {
      sink_.push(vocab_.unk);
      return;
    }
    std::int32_t found[max_input_chars_per_word];
    std::size_t n_found = 0;
    std::uint64_t prefix_hash[4 * max_input_chars_per_word + 1];
    const auto* bytes = reinterpret_cast<const unsigned char*>(text);
    std::size_t start = 0;
    while (start < n) {
      const detail::token_table& table = start == 0 ? vocab_.whole : vocab_.continuation;
      const std::size_t limit = std::min(n, start + table.max_length());
      std::uint64_t h = detail::token_table::hash_seed;
      for (std::size_t i = start; i < limit; ++i) {
        h = detail::token_table::hash_step(h, bytes[i]);
        prefix_hash[i - start] = h;
      }
      std::int32_t id = -1;
      std::size_t stop = limit;
      for (; stop > start; --stop) {
        if (stop < n && (bytes[stop] & 0xC0) == 0x80) continue;  // not a code point boundary
        id = table.find(prefix_hash[stop - start - 1], text + start, stop - start);
        if (id >= 0) break;
      }
      if (id < 0) {  // some part has no piece: the whole word is [UNK]
        sink_.push(vocab_.unk);
        return;
      }
      found[n_found++] = id;
      start = stop;
    }
    for (std::size_t i = 0; i < n_found; ++i) sink_.push(found[i]);
  }

 private:
  const detail::wordpiece_vocab& vocab_;
  id_sink& sink_;
  basic_splitter<encoder> splitter_;
};

// basic_tokenize's output: every piece as a string.
struct piece_list {
  std::vector<std::string> words;
  bool full() const { return false; }
  void special(std::int32_t) {}
  void piece(const char* text, std::size_t n, std::size_t) { words.emplace_back(text, n); }
};

// --- Loading -----------------------------------------------------------------------------------

std::string read_whole_file(const std::filesystem::path& path, const char* what) {
  return read_regular_file(path, what);
}

// Python reads vocab.txt in text mode: universal newlines (\n, \r\n and \r all end a line),
// then strips the "\n"; a final newline does not make an extra empty token.
std::vector<std::string> split_vocab_lines(const std::string& content, const std::filesystem::path& path) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  const std::size_t n = content.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (content[i] == '\n' || content[i] == '\r') {
      lines.emplace_back(content, start, i - start);
      if (content[i] == '\r' && i + 1 < n && content[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < n) lines.emplace_back(content, start, n - start);
  for (std::size_t line = 0; line < lines.size(); ++line) {
    const auto* p = reinterpret_cast<const unsigned char*>(lines[line].data());
    const auto* end = p + lines[line].size();
    while (p < end) {
      std::int32_t cp = 0;
      const std::size_t length = decode_utf8(p, end, cp);
      if (length == 0) {
        throw input_error("vocabulary " + path.string() + " line " + std::to_string(line + 1) +
                          ": invalid UTF-8 at byte " +
                          std::to_string(p - reinterpret_cast<const unsigned char*>(lines[line].data())) +
                          " of the line (expected one UTF-8 token per line)");
      }
      p += length;
    }
  }
  return lines;
}

std::string special_token_from_json(const nlohmann::json& config, const char* key, const std::string& fallback,
                                    const std::filesystem::path& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  // An AddedToken serialised as {"content": "[UNK]", "lstrip": false, ...}.
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  throw input_error(path.string() + ": key \"" + key + "\" must be a string or an object with a \"content\" string, found " +
                    it->type_name());
}

bool bool_from_json(const nlohmann::json& config, const char* key, bool fallback, const std::filesystem::path& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    throw input_error(path.string() + ": key \"" + key + "\" must be true or false, found " + it->dump());
  }
  return it->get<bool>();
}

nlohmann::json read_json_object(const std::filesystem::path& path) {
  const std::string content = read_whole_file(path, "tokenizer config");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(content);
  } catch (const nlohmann::json::parse_error& e) {
    throw input_error(path.string() + ": not valid JSON at byte " + std::to_string(e.byte) + " (" + e.what() + ")");
  }
  if (!config.is_object()) throw input_error(path.string() + ": expected a JSON object, found " + config.type_name());
  return config;
}

}  // namespace

// --- wordpiece_tokenizer -----------------------------------------------------------------------

wordpiece_tokenizer::wordpiece_tokenizer() = default;
wordpiece_tokenizer::wordpiece_tokenizer(const wordpiece_tokenizer&) = default;
wordpiece_tokenizer& wordpiece_tokenizer::operator=(const wordpiece_tokenizer&) = default;
wordpiece_tokenizer::wordpiece_tokenizer(wordpiece_tokenizer&&) noexcept = default;
wordpiece_tokenizer& wordpiece_tokenizer::operator=(wordpiece_tokenizer&&) noexcept = default;
wordpiece_tokenizer::~wordpiece_tokenizer() = default;

wordpiece_tokenizer wordpiece_tokenizer::from_vocab_file(const std::filesystem::path& vocab_path,
                                                         tokenizer_options options) {
  // The Unicode 14-versus-15 table above is exact for utf8proc's Unicode 15.0 only.
  static const bool unicode_checked = [] {
    if (std::string_view(utf8proc_unicode_version()) != "15.0.0") {
      spdlog::warn("tokenizer: utf8proc has Unicode {}, parity with Hugging Face was checked with 15.0.0; "
                   "characters assigned since may tokenize differently", utf8proc_unicode_version());
    }
    return true;
  }();
  (void)unicode_checked;
  const std::string content = read_whole_file(vocab_path, "vocabulary");
  auto vocab = std::make_shared<detail::wordpiece_vocab>();
  vocab->tokens = split_vocab_lines(content, vocab_path);
  if (vocab->tokens.empty()) {
    throw input_error("vocabulary " + vocab_path.string() + ": the file is empty (expected one token per line)");
  }
  if (vocab->tokens.size() > static_cast<std::size_t>(INT32_MAX)) {
    throw input_error("vocabulary " + vocab_path.string() + ": more than 2^31 tokens");
  }

  std::vector<std::pair<std::uint32_t, std::uint32_t>> whole_keys, continuation_keys;
  std::vector<std::int32_t> whole_ids, continuation_ids;
  std::size_t total = 0;
  for (const auto& token : vocab->tokens) total += token.size();
  vocab->blob.reserve(total);
  for (std::size_t id = 0; id < vocab->tokens.size(); ++id) {
    const std::string& token = vocab->tokens[id];
    const auto offset = static_cast<std::uint32_t>(vocab->blob.size());
    vocab->blob += token;
    whole_keys.emplace_back(offset, static_cast<std::uint32_t>(token.size()));
    whole_ids.push_back(static_cast<std::int32_t>(id));
    if (token.size() >= 2 && token[0] == '#' && token[1] == '#') {
      continuation_keys.emplace_back(offset + 2, static_cast<std::uint32_t>(token.size() - 2));
      continuation_ids.push_back(static_cast<std::int32_t>(id));
    }
  }
  vocab->whole.build(whole_keys, whole_ids, &vocab->blob);
  vocab->continuation.build(continuation_keys, continuation_ids, &vocab->blob);

  auto require = [&](const std::string& token, const char* role) {
    const std::int32_t id = vocab->whole.find(token);
    if (id < 0) {
      throw input_error("vocabulary " + vocab_path.string() + ": no line holds the " + role + " token \"" + token +
                        "\" (" + std::to_string(vocab->tokens.size()) + " lines read)");
    }
    return id;
  };
  vocab->unk = require(options.unk_token, "unknown");
  vocab->cls = require(options.cls_token, "classifier");
  vocab->sep = require(options.sep_token, "separator");
  vocab->pad = require(options.pad_token, "padding");
  vocab->mask = options.mask_token.empty() ? -1 : vocab->whole.find(options.mask_token);

  for (const auto& [text, id] : {std::pair{options.unk_token, vocab->unk}, std::pair{options.sep_token, vocab->sep},
                                 std::pair{options.pad_token, vocab->pad}, std::pair{options.cls_token, vocab->cls},
                                 std::pair{options.mask_token, vocab->mask}}) {
    if (id < 0 || text.empty()) continue;
    vocab->specials.push_back({text, id});
    vocab->special_first_byte[static_cast<unsigned char>(text[0])] = true;
  }

  wordpiece_tokenizer tokenizer;
  tokenizer.options_ = std::move(options);
  tokenizer.vocab_ = std::move(vocab);
  return tokenizer;
}

tokenizer_options wordpiece_tokenizer::options_from_config_file(const std::filesystem::path& config_path) {
  const nlohmann::json config = read_json_object(config_path);
  tokenizer_options options;
  options.do_lower_case = bool_from_json(config, "do_lower_case", options.do_lower_case, config_path);
  options.tokenize_chinese_chars =
      bool_from_json(config, "tokenize_chinese_chars", options.tokenize_chinese_chars, config_path);
  if (const auto it = config.find("strip_accents"); it != config.end() && !it->is_null()) {
    options.strip_accents = bool_from_json(config, "strip_accents", false, config_path);
  }
  options.unk_token = special_token_from_json(config, "unk_token", options.unk_token, config_path);
  options.sep_token = special_token_from_json(config, "sep_token", options.sep_token, config_path);
  options.pad_token = special_token_from_json(config, "pad_token", options.pad_token, config_path);
  options.cls_token = special_token_from_json(config, "cls_token", options.cls_token, config_path);
  options.mask_token = special_token_from_json(config, "mask_token", options.mask_token, config_path);
  return options;
}

wordpiece_tokenizer wordpiece_tokenizer::from_model_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw input_error("model folder " + dir.string() + ": not a folder (expected vocab.txt and tokenizer_config.json)");
  }
  const auto vocab_path = dir / "vocab.txt";
  if (const auto problem = regular_file_problem(vocab_path); !problem.empty()) {
    throw input_error("model folder " + dir.string() + ": vocab.txt " + problem +
                      (problem == "no such file" ? " (expected the WordPiece vocabulary there)" : ""));
  }
  tokenizer_options options;
  const auto config_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path, ec)) options = options_from_config_file(config_path);
  // special_tokens_map.json, when present, names the special tokens last (as HF loads it).
  const auto map_path = dir / "special_tokens_map.json";
  if (std::filesystem::exists(map_path, ec)) {
    const nlohmann::json map = read_json_object(map_path);
    options.unk_token = special_token_from_json(map, "unk_token", options.unk_token, map_path);
    options.sep_token = special_token_from_json(map, "sep_token", options.sep_token, map_path);
    options.pad_token = special_token_from_json(map, "pad_token", options.pad_token, map_path);
    options.cls_token = special_token_from_json(map, "cls_token", options.cls_token, map_path);
    options.mask_token = special_token_from_json(map, "mask_token", options.mask_token, map_path);
  }
  return from_vocab_file(vocab_path, std::move(options));
}

void wordpiece_tokenizer::encode_ids_into(std::string_view text, std::vector<std::int64_t>& out,
                                          std::size_t max_length) const {
  if (max_length < 2) {
    throw config_error("tokenizer: max_length must be at least 2 (room for [CLS] and [SEP]), got " +
                       std::to_string(max_length));
  }
  out.push_back(vocab_->cls);
  const std::size_t room = max_length - 2;
  const std::size_t limit = room > SIZE_MAX - out.size() ? SIZE_MAX : out.size() + room;
  id_sink sink{out, limit};
  encoder(*vocab_, options_, sink).run(text);
  out.push_back(vocab_->sep);
}

std::vector<std::int64_t> wordpiece_tokenizer::encode_ids(std::string_view text, std::size_t max_length) const {
  std::vector<std::int64_t> ids;
  ids.reserve(std::min<std::size_t>(max_length, text.size() / 3 + 8));
  encode_ids_into(text, ids, max_length);
  return ids;
}

encoding wordpiece_tokenizer::encode(std::string_view text, std::size_t max_length) const {
  encoding result;
  result.ids = encode_ids(text, max_length);
  result.tokens.reserve(result.ids.size());
  for (const auto id : result.ids) result.tokens.push_back(vocab_->tokens[static_cast<std::size_t>(id)]);
  return result;
}

batch_encoding wordpiece_tokenizer::encode_batch(const std::vector<std::string>& texts, std::size_t max_length) const {
  std::vector<std::vector<std::int64_t>> all_ids(texts.size());
  batch_encoding result;
  result.lengths.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    all_ids[i] = encode_ids(texts[i], max_length);
    result.lengths.push_back(static_cast<std::int64_t>(all_ids[i].size()));
  }
  result.input_ids = padded_batch(all_ids, 0, all_ids.size(), pad_id(), &result.attention_mask);
  return result;
}

std::int64_t wordpiece_tokenizer::pad_id() const { return vocab_->pad; }
std::int64_t wordpiece_tokenizer::cls_id() const { return vocab_->cls; }
std::int64_t wordpiece_tokenizer::sep_id() const { return vocab_->sep; }
std::int64_t wordpiece_tokenizer::unk_id() const { return vocab_->unk; }
std::int64_t wordpiece_tokenizer::mask_id() const { return vocab_->mask; }
std::size_t wordpiece_tokenizer::vocab_size() const { return vocab_->tokens.size(); }

const std::string& wordpiece_tokenizer::token(std::int64_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= vocab_->tokens.size()) {
    throw input_error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                      std::to_string(vocab_->tokens.size() - 1) + ")");
  }
  return vocab_->tokens[static_cast<std::size_t>(id)];
}

std::int64_t wordpiece_tokenizer::id_of(std::string_view token) const { return vocab_->whole.find(token); }

std::vector<std::string> basic_tokenize(std::string_view text, bool do_lower_case) {
  static const std::vector<detail::special_token> no_specials;
  static constexpr std::array<bool, 256> no_special_first_byte{};
  tokenizer_options options;
  options.do_lower_case = do_lower_case;
  piece_list out;
  basic_splitter<piece_list>(no_specials, no_special_first_byte, options, out).run(text);
  return std::move(out.words);
}

}  // namespace qexp
