// The WordPiece tokenizer against Hugging Face's own output (golden files made with transformers
// 4.29.2), plus the behaviour the golden files do not pin: invalid UTF-8, batches, truncation,
// vocabulary errors, model folders and the `qexp tokenize` command.
#include "qexp/tokenizer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "qexp/errors.h"
#include "qexp/text.h"
#include "test_support.h"

namespace {

using qexp::wordpiece_tokenizer;
namespace fs = std::filesystem;

fs::path vocab_path() { return qexp::test::shared_dir() / "data" / "distilbert-base-uncased" / "vocab.txt"; }
fs::path tiny_model_dir() { return qexp::test::shared_dir() / "golden" / "distilbert-tiny-random"; }

const wordpiece_tokenizer& uncased() {
  static const wordpiece_tokenizer tokenizer = wordpiece_tokenizer::from_vocab_file(vocab_path());
  return tokenizer;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

std::string join(const std::vector<std::string>& tokens) { return qexp::join(tokens, " "); }

std::vector<std::string> tokens_of(std::string_view text, std::size_t max_length = 512) {
  auto tokens = uncased().encode(text, max_length).tokens;
  // Drop [CLS] and [SEP] so the cases below read as what the text becomes.
  return std::vector<std::string>(tokens.begin() + 1, tokens.end() - 1);
}

// Every record of a golden file must give the same ids and tokens; reports each one that differs.
void expect_golden_parity(const fs::path& file, std::size_t expected_records) {
  const auto records = read_jsonl(file);
  ASSERT_EQ(records.size(), expected_records) << file;
  std::size_t differing = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& record = records[i];
    const auto text = record.at("text").get<std::string>();
    const auto expected_ids = record.at("input_ids").get<std::vector<std::int64_t>>();
    const auto expected_tokens = record.at("tokens").get<std::vector<std::string>>();
    const auto got = uncased().encode(text);
    const auto fast_ids = uncased().encode_ids(text);
    if (got.ids != expected_ids || got.tokens != expected_tokens || fast_ids != expected_ids) {
      ++differing;
      ADD_FAILURE() << file.filename().string() << " record " << i << " (line " << i + 1 << ") differs\n  text:     "
                    << record.at("text").dump() << "\n  expected: " << join(expected_tokens)
                    << "\n  got:      " << join(got.tokens);
    }
  }
  EXPECT_EQ(differing, 0u) << "of " << records.size() << " records in " << file;
}

TEST(tokenizer_golden, sst2_dev_matches_hugging_face) {
  expect_golden_parity(qexp::test::shared_dir() / "golden" / "tokenizer" / "sst2_dev.jsonl", 872);
}

TEST(tokenizer_golden, tricky_cases_match_hugging_face) {
  expect_golden_parity(qexp::test::shared_dir() / "golden" / "tokenizer" / "tricky.jsonl", 38);
}

TEST(tokenizer, loads_the_uncased_vocabulary) {
  const auto& t = uncased();
  EXPECT_EQ(t.vocab_size(), 30522u);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_EQ(t.mask_id(), 103);
  EXPECT_EQ(t.token(101), "[CLS]");
  EXPECT_EQ(t.token(30521), "##\xEF\xBD\x9E");  // the last line, "##～"
  EXPECT_EQ(t.id_of("movie"), 3185);
  EXPECT_EQ(t.id_of("no-such-token"), -1);
  EXPECT_THROW(t.token(30522), qexp::input_error);
  EXPECT_THROW(t.token(-1), qexp::input_error);
}

TEST(tokenizer, empty_and_blank_text_give_cls_sep) {
  EXPECT_EQ(uncased().encode_ids(""), (std::vector<std::int64_t>{101, 102}));
  EXPECT_EQ(uncased().encode_ids(" \t\r\n "), (std::vector<std::int64_t>{101, 102}));
  EXPECT_EQ(uncased().encode_ids(std::string("\0\x01", 2)), (std::vector<std::int64_t>{101, 102}));
}

// Invalid UTF-8 is decoded like Python's bytes.decode(errors="replace"): each bad sequence
// becomes U+FFFD, which _clean_text then removes, so the bad bytes vanish without splitting.
TEST(tokenizer, invalid_utf8_bytes_are_dropped_without_splitting_words) {
  EXPECT_EQ(tokens_of("mo\xFFvie"), tokens_of("movie"));
  EXPECT_EQ(tokens_of("good \xE2\x82 movie"), tokens_of("good movie"));    // truncated 3-byte sequence
  EXPECT_EQ(tokens_of("a\xC0\xAF" "b"), tokens_of("ab"));                  // overlong "/" is not "/"
  EXPECT_EQ(tokens_of("x\xED\xA0\x80y"), tokens_of("xy"));                 // UTF-16 surrogate
  EXPECT_EQ(tokens_of("x\xF4\x90\x80\x80y"), tokens_of("xy"));             // above U+10FFFF
  EXPECT_EQ(tokens_of("caf\xC3"), tokens_of("caf"));                       // cut at the end
  EXPECT_EQ(tokens_of("\x80\x80\x80"), std::vector<std::string>{});
  // A valid sequence right after a bad lead byte still counts.
  EXPECT_EQ(tokens_of("\xE2" "caf\xC3\xA9"), tokens_of("cafe"));
  // U+FFFD written in the text is dropped the same way.
  EXPECT_EQ(tokens_of("mo\xEF\xBF\xBDvie"), tokens_of("movie"));
}

TEST(tokenizer, special_tokens_written_in_the_text) {
  // Exact, case-sensitive matches are kept whole, even inside a word.
  EXPECT_EQ(join(tokens_of("hello[SEP]world")), "hello [SEP] world");
  EXPECT_EQ(join(tokens_of("[[MASK]]")), "[ [MASK] ]");
  // Lower-case spellings are ordinary text.
  EXPECT_EQ(join(tokens_of("[cls] [Sep]")), "[ cl ##s ] [ sep ]");
  // A special token broken by a control character is lower-cased before the character goes.
  EXPECT_EQ(join(tokens_of("[CL\x01S]")), "[ cl ##s ]");
}

TEST(tokenizer, cased_options_keep_case_and_accents) {
  qexp::tokenizer_options cased;
  cased.do_lower_case = false;
  const auto t = wordpiece_tokenizer::from_vocab_file(vocab_path(), cased);
  // The uncased vocabulary has no "Movie", so the upper-case word cannot be matched.
  EXPECT_EQ(t.encode("Movie").tokens, (std::vector<std::string>{"[CLS]", "[UNK]", "[SEP]"}));
  // Without lower-casing, BasicTokenizer's never_split keeps "[CLS]" whole once _clean_text
  // has removed the control character inside it.
  EXPECT_EQ(t.encode("[CL\x01S]").ids, (std::vector<std::int64_t>{101, 101, 102}));
  // strip_accents follows do_lower_case when unset: accents stay, so "café" is not "cafe".
  EXPECT_NE(t.encode("caf\xC3\xA9").ids, uncased().encode("cafe").ids);
  cased.strip_accents = true;
  const auto stripping = wordpiece_tokenizer::from_vocab_file(vocab_path(), cased);
  EXPECT_EQ(stripping.encode("caf\xC3\xA9").ids, uncased().encode("cafe").ids);
}

TEST(tokenizer, unicode_details_follow_python) {
  // U+2028 LINE SEPARATOR is not removed by _clean_text but str.split() splits on it.
  EXPECT_EQ(join(tokens_of("good\xE2\x80\xA8movie")), "good movie");
  // U+1FA75 (Unicode 15.0) is unassigned in the reference's Unicode 14 database: dropped.
  EXPECT_EQ(join(tokens_of("a\xF0\x9F\xA9\xB5" "b")), join(tokens_of("ab")));
  // U+1FA70 (Unicode 13) is a symbol the vocabulary lacks: its own [UNK]-ed word part.
  EXPECT_EQ(join(tokens_of("a\xF0\x9F\xA9\xB0")), "[UNK]");
  // The Kelvin sign lower-cases to an ASCII "k".
  EXPECT_EQ(join(tokens_of("\xE2\x84\xAA" "ing")), "king");
  // Greek capital sigma lower-cases to the non-final form even at the end of a word, since HF
  // lower-cases one character at a time.
  EXPECT_EQ(uncased().encode("\xCE\xA3").ids, uncased().encode("\xCF\x83").ids);
}

TEST(tokenizer, words_over_100_characters_are_unknown) {
  EXPECT_EQ(join(tokens_of(std::string(100, 'a'))).substr(0, 3), "aaa");
  EXPECT_EQ(join(tokens_of(std::string(101, 'a'))), "[UNK]");
  // 100 two-byte characters are 100 characters, not 200.
  std::string accented;
  for (int i = 0; i < 100; ++i) accented += "\xC3\xA9";  // é
  EXPECT_NE(join(tokens_of(accented)), "[UNK]");
  accented += "\xC3\xA9";
  EXPECT_EQ(join(tokens_of(accented)), "[UNK]");
  // The limit applies to pieces after the punctuation split.
  EXPECT_EQ(join(tokens_of(std::string(60, 'a') + "." + std::string(60, 'b'))).find("[UNK]"), std::string::npos);
}

TEST(tokenizer, truncation_keeps_cls_and_sep) {
  const std::string text = "it 's a charming and often affecting journey . ";
  const auto full = uncased().encode_ids(text);
  ASSERT_EQ(full.size(), 12u);
  const auto cut = uncased().encode_ids(text, 5);
  EXPECT_EQ(cut, (std::vector<std::int64_t>{101, full[1], full[2], full[3], 102}));
  EXPECT_EQ(uncased().encode_ids(text, 2), (std::vector<std::int64_t>{101, 102}));
  EXPECT_EQ(uncased().encode_ids(text, 12), full);
  EXPECT_EQ(uncased().encode_ids(text, 1000), full);
  EXPECT_THROW(uncased().encode_ids(text, 1), qexp::config_error);
  // A word split across the limit is cut between its pieces.
  const auto pieces = uncased().encode("unflinchingly").tokens;  // un ##fl ##in ##ching ##ly
  ASSERT_EQ(pieces.size(), 7u);
  EXPECT_EQ(uncased().encode("unflinchingly", 4).tokens,
            (std::vector<std::string>{"[CLS]", "un", "##fl", "[SEP]"}));
}

TEST(tokenizer, batch_pads_with_pad_id_and_masks) {
  const std::vector<std::string> texts = {"a great movie", "", "bad"};
  const auto batch = uncased().encode_batch(texts);
  ASSERT_EQ(batch.input_ids.sizes(), (c10::IntArrayRef{3, 5}));
  ASSERT_EQ(batch.attention_mask.sizes(), (c10::IntArrayRef{3, 5}));
  EXPECT_EQ(batch.input_ids.scalar_type(), at::kLong);
  EXPECT_EQ(batch.attention_mask.scalar_type(), at::kLong);
  EXPECT_EQ(batch.lengths, (std::vector<std::int64_t>{5, 2, 3}));
  for (std::size_t row = 0; row < texts.size(); ++row) {
    const auto ids = uncased().encode_ids(texts[row]);
    for (std::int64_t col = 0; col < 5; ++col) {
      const bool real = static_cast<std::size_t>(col) < ids.size();
      EXPECT_EQ(batch.input_ids[row][col].item<std::int64_t>(), real ? ids[col] : uncased().pad_id());
      EXPECT_EQ(batch.attention_mask[row][col].item<std::int64_t>(), real ? 1 : 0);
    }
  }
  const auto truncated = uncased().encode_batch(texts, 3);
  EXPECT_EQ(truncated.input_ids.size(1), 3);
  const auto empty = uncased().encode_batch({});
  EXPECT_EQ(empty.input_ids.size(0), 0);
}

TEST(tokenizer, is_safe_to_share_between_threads) {
  const auto records = read_jsonl(qexp::test::shared_dir() / "golden" / "tokenizer" / "tricky.jsonl");
  std::vector<std::string> texts;
  for (const auto& r : records) texts.push_back(r.at("text").get<std::string>());
  std::vector<std::vector<std::int64_t>> expected;
  for (const auto& text : texts) expected.push_back(uncased().encode_ids(text));
  const wordpiece_tokenizer copy = uncased();  // copies share the vocabulary
  std::vector<int> mismatches(2, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k) {
    threads.emplace_back([&, k] {
      const auto& t = k == 0 ? uncased() : copy;
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < texts.size(); ++i) mismatches[k] += t.encode_ids(texts[i]) != expected[i];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0}));
}

// --- Loading errors --------------------------------------------------------------------------

std::string error_of(const std::function<void()>& load) {
  try {
    load();
  } catch (const qexp::input_error& e) {
    return e.what();
  }
  return "(no qexp::input_error thrown)";
}

TEST(tokenizer_loading, missing_vocab_file_names_the_file) {
  qexp::test::temp_dir dir;
  const auto missing = dir.path() / "nope" / "vocab.txt";
  const auto message = error_of([&] { wordpiece_tokenizer::from_vocab_file(missing); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
}

TEST(tokenizer_loading, empty_vocab_file_names_the_file) {
  qexp::test::temp_dir dir;
  const auto path = dir.path() / "vocab.txt";
  qexp::test::write_file(path, "");
  const auto message = error_of([&] { wordpiece_tokenizer::from_vocab_file(path); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("empty"), std::string::npos) << message;
}

TEST(tokenizer_loading, vocab_without_unk_names_the_file_and_token) {
  qexp::test::temp_dir dir;
  const auto path = dir.path() / "vocab.txt";
  qexp::test::write_file(path, "[PAD]\n[CLS]\n[SEP]\nhello\n");
  const auto message = error_of([&] { wordpiece_tokenizer::from_vocab_file(path); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("[UNK]"), std::string::npos) << message;
  for (const char* token : {"[PAD]", "[CLS]", "[SEP]"}) {
    std::string content = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n";
    content.erase(content.find(token), std::string(token).size() + 1);
    qexp::test::write_file(path, content);
    const auto m = error_of([&] { wordpiece_tokenizer::from_vocab_file(path); });
    EXPECT_NE(m.find(token), std::string::npos) << m;
  }
}

TEST(tokenizer_loading, invalid_utf8_in_vocab_names_the_line) {
  qexp::test::temp_dir dir;
  const auto path = dir.path() / "vocab.txt";
  qexp::test::write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nbad\xFF\n");
  const auto message = error_of([&] { wordpiece_tokenizer::from_vocab_file(path); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("line 5"), std::string::npos) << message;
}

TEST(tokenizer_loading, small_vocab_with_crlf_lines_and_wordpieces) {
  qexp::test::temp_dir dir;
  const auto path = dir.path() / "vocab.txt";
  // Python reads text files with universal newlines: \r\n and \r end lines too.
  qexp::test::write_file(path, "[PAD]\r\n[UNK]\r\n[CLS]\r[SEP]\nun\n##aff\n##able\naff\n,\n");
  const auto t = wordpiece_tokenizer::from_vocab_file(path);
  EXPECT_EQ(t.vocab_size(), 9u);
  EXPECT_EQ(t.cls_id(), 2);
  EXPECT_EQ(t.mask_id(), -1);  // no [MASK] line: "[MASK]" in text is ordinary text
  EXPECT_EQ(t.encode("UNAFFABLE, aff unaff affx").tokens,
            (std::vector<std::string>{"[CLS]", "un", "##aff", "##able", ",", "aff", "un", "##aff", "[UNK]", "[SEP]"}));
  // A repeated token keeps its last line's id, as Python's dict does.
  qexp::test::write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\nword\n");
  EXPECT_EQ(wordpiece_tokenizer::from_vocab_file(path).encode_ids("word")[1], 5);
}

// --- Model folders -----------------------------------------------------------------------------

TEST(tokenizer_model_folder, tiny_model_folder_reproduces_its_golden_input_ids) {
  const auto t = wordpiece_tokenizer::from_model_folder(tiny_model_dir());
  EXPECT_TRUE(t.options().do_lower_case);
  EXPECT_TRUE(t.options().tokenize_chinese_chars);
  EXPECT_FALSE(t.options().strip_accents.has_value());
  EXPECT_EQ(t.vocab_size(), 30522u);
  const auto records = read_jsonl(tiny_model_dir() / "expected.jsonl");
  ASSERT_EQ(records.size(), 18u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(t.encode_ids(records[i].at("text").get<std::string>()),
              records[i].at("input_ids").get<std::vector<std::int64_t>>())
        << "expected.jsonl record " << i << ": " << records[i].at("text").dump();
  }
}

TEST(tokenizer_model_folder, batch_matches_the_golden_padded_batch) {
  const auto t = wordpiece_tokenizer::from_model_folder(tiny_model_dir());
  std::ifstream in(tiny_model_dir() / "expected_batch.json");
  const auto golden = nlohmann::json::parse(in);
  const auto records = read_jsonl(tiny_model_dir() / "expected.jsonl");
  const auto expected_ids = golden.at("input_ids").get<std::vector<std::vector<std::int64_t>>>();
  const auto expected_mask = golden.at("attention_mask").get<std::vector<std::vector<std::int64_t>>>();
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < expected_ids.size(); ++i) texts.push_back(records.at(i).at("text").get<std::string>());
  const auto batch = t.encode_batch(texts);
  ASSERT_EQ(batch.input_ids.size(0), static_cast<std::int64_t>(expected_ids.size()));
  ASSERT_EQ(batch.input_ids.size(1), static_cast<std::int64_t>(expected_ids[0].size()));
  for (std::size_t r = 0; r < expected_ids.size(); ++r) {
    for (std::size_t c = 0; c < expected_ids[r].size(); ++c) {
      EXPECT_EQ(batch.input_ids[r][c].item<std::int64_t>(), expected_ids[r][c]) << "row " << r << " col " << c;
      EXPECT_EQ(batch.attention_mask[r][c].item<std::int64_t>(), expected_mask[r][c]) << "row " << r << " col " << c;
    }
  }
}

TEST(tokenizer_model_folder, reads_options_from_tokenizer_config) {
  qexp::test::temp_dir dir;
  fs::copy_file(vocab_path(), dir.path() / "vocab.txt");
  qexp::test::write_file(dir.path() / "tokenizer_config.json",
                         R"({"do_lower_case": false, "strip_accents": true, "tokenize_chinese_chars": false,
                             "unk_token": {"content": "[UNK]", "lstrip": false}})");
  const auto t = wordpiece_tokenizer::from_model_folder(dir.path());
  EXPECT_FALSE(t.options().do_lower_case);
  EXPECT_EQ(t.options().strip_accents, std::optional<bool>(true));
  EXPECT_FALSE(t.options().tokenize_chinese_chars);
  // Without the CJK split, the ideographs stay one word, so the second is a "##" continuation.
  EXPECT_EQ(t.encode("\xE4\xB8\xAD\xE6\x96\x87").tokens,
            (std::vector<std::string>{"[CLS]", "\xE4\xB8\xAD", "##\xE6\x96\x87", "[SEP]"}));
  EXPECT_EQ(uncased().encode("\xE4\xB8\xAD\xE6\x96\x87").tokens,
            (std::vector<std::string>{"[CLS]", "\xE4\xB8\xAD", "\xE6\x96\x87", "[SEP]"}));

  qexp::test::write_file(dir.path() / "tokenizer_config.json", R"({"do_lower_case": "yes"})");
  const auto message = error_of([&] { wordpiece_tokenizer::from_model_folder(dir.path()); });
  EXPECT_NE(message.find("tokenizer_config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("do_lower_case"), std::string::npos) << message;

  qexp::test::write_file(dir.path() / "tokenizer_config.json", "{not json");
  EXPECT_THROW(wordpiece_tokenizer::from_model_folder(dir.path()), qexp::input_error);
}

TEST(tokenizer_model_folder, folder_without_vocab_names_the_folder) {
  qexp::test::temp_dir dir;
  const auto message = error_of([&] { wordpiece_tokenizer::from_model_folder(dir.path()); });
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("vocab.txt"), std::string::npos) << message;
}

TEST(tokenizer_model_folder, a_vocab_that_is_a_folder_or_a_fifo_is_named_for_what_it_is) {
  qexp::test::temp_dir dir;
  fs::create_directories(dir.path() / "vocab.txt");
  EXPECT_EQ(error_of([&] { wordpiece_tokenizer::from_model_folder(dir.path()); }),
            "model folder " + dir.path().string() + ": vocab.txt is a directory, expected a regular file");
  fs::remove(dir.path() / "vocab.txt");
  ASSERT_EQ(mkfifo((dir.path() / "vocab.txt").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { wordpiece_tokenizer::from_model_folder(dir.path()); }),
            "model folder " + dir.path().string() + ": vocab.txt is a FIFO, expected a regular file");
  EXPECT_EQ(error_of([&] { wordpiece_tokenizer::from_vocab_file(dir.path() / "vocab.txt"); }),
            "vocabulary " + (dir.path() / "vocab.txt").string() + ": is a FIFO, expected a regular file");
}

// --- The CLI -----------------------------------------------------------------------------------

// QEXP_BIN when ctest sets it, else the qexp built beside this test (build/tests -> build/bin):
// ctest passes only the first entry of the ENVIRONMENT list to discovered tests at the moment.
std::string qexp_command() {
  const char* env = std::getenv("QEXP_BIN");
  const fs::path bin = env && *env ? fs::path(env) : fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" / "qexp";
  return "'" + bin.string() + "'";
}

TEST(tokenize_command, prints_ids_and_json_per_line) {
  qexp::test::temp_dir dir;
  const auto input = dir.path() / "in.txt";
  qexp::test::write_file(input, "a great movie\n\nhello [SEP] world\n");
  const std::string model = "--model '" + tiny_model_dir().string() + "'";
  auto result = qexp::test::run_command(qexp_command() + " tokenize " + model + " < '" +
                                        input.string() + "'");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto expect_line = [](const std::vector<std::int64_t>& ids) {
    std::string line;
    for (auto id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
    return line + "\n";
  };
  EXPECT_EQ(result.output, expect_line(uncased().encode_ids("a great movie")) + expect_line({101, 102}) +
                               expect_line(uncased().encode_ids("hello [SEP] world")));

  result = qexp::test::run_command(qexp_command() + " tokenize --json --max-length 4 " +
                                   model + " < '" + input.string() + "'");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::istringstream lines(result.output);
  std::string line;
  std::vector<nlohmann::json> records;
  while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 3u) << result.output;
  EXPECT_EQ(records[0].at("text"), "a great movie");
  EXPECT_EQ(records[0].at("input_ids").get<std::vector<std::int64_t>>(), uncased().encode_ids("a great movie", 4));
  EXPECT_EQ(records[0].at("tokens").get<std::vector<std::string>>(), uncased().encode("a great movie", 4).tokens);
  EXPECT_EQ(records[1].at("tokens").get<std::vector<std::string>>(), (std::vector<std::string>{"[CLS]", "[SEP]"}));
}

TEST(tokenize_command, missing_model_folder_is_an_input_error) {
  const auto result = qexp::test::run_command(qexp_command() + " tokenize --model /no/such/folder < /dev/null");
  EXPECT_EQ(result.exit_code, static_cast<int>(qexp::exit_code::input_error)) << result.output;
  EXPECT_NE(result.output.find("/no/such/folder"), std::string::npos) << result.output;
}

}  // namespace
