// `qexp tokenize`: the WordPiece tokenizer of a model folder over stdin, one text per line, for
// checking what the model will see (and comparing with Hugging Face by hand).
#include <nlohmann/json.hpp>

#include <iostream>
#include <string>

#include "cli.h"
#include "qexp/tokenizer.h"

QEXP_COMMAND("tokenize", "Tokenize stdin, one text per line, with a model folder's WordPiece vocabulary",
             [](CLI::App& cmd, std::function<int()>& run) {
  struct options {
    std::string model;
    bool json = false;
    std::size_t max_length = 512;
  };
  auto opts = std::make_shared<options>();
  cmd.add_option("--model", opts->model, "Hugging Face model folder (vocab.txt, optional tokenizer_config.json)")
      ->required();
  cmd.add_flag("--json", opts->json, "Print one JSON object per line: {\"text\", \"input_ids\", \"tokens\"}");
  cmd.add_option("--max-length", opts->max_length, "Truncate to this many tokens, [CLS] and [SEP] included")
      ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 30))
      ->capture_default_str();
  cmd.footer(
      "Each input line is one text (a trailing \\r is removed); an empty line gives [CLS] [SEP]. Without --json "
      "each output line is the ids separated by spaces.");
  run = [opts] {
    const auto tokenizer = qexp::wordpiece_tokenizer::from_model_folder(opts->model);
    std::ios::sync_with_stdio(false);
    std::string line;
    std::vector<std::int64_t> ids;
    std::string out;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      out.clear();
      if (opts->json) {
        const auto encoding = tokenizer.encode(line, opts->max_length);
        const nlohmann::ordered_json record = {{"text", line}, {"input_ids", encoding.ids}, {"tokens", encoding.tokens}};
        // Invalid UTF-8 in the text is printed as U+FFFD rather than failing the whole run.
        out = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      } else {
        ids.clear();
        tokenizer.encode_ids_into(line, ids, opts->max_length);
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (i) out += ' ';
          out += std::to_string(ids[i]);
        }
      }
      out += '\n';
      std::cout << out;
      if (!std::cout) qexp::cli::check_stdout();  // a failed write: stop now, not at the end of stdin
    }
    qexp::cli::check_stdout();
    return 0;
  };
});
