// `qexp vocab --data TSV --size N --out vocab.txt`: builds a WordPiece vocabulary from the
// sentences of a labelled TSV (see qexp/wordpiece_trainer.h).
#include <iostream>

#include "cli.h"
#include "qexp/wordpiece_trainer.h"
#include "trainer.h"

QEXP_COMMAND("vocab", "Build a WordPiece vocabulary (vocab.txt) from a sentence<TAB>label TSV",
             [](CLI::App& cmd, std::function<int()>& run) {
               struct args_t {
                 std::string data, out;
                 std::size_t size = 8000;
                 std::uint64_t min_frequency = 1;
                 double continuation_fraction = 0.1;
                 std::int64_t limit = 0;
               };
               auto args = std::make_shared<args_t>();
               cmd.add_option("--data", args->data, "TSV with a header line, then sentence<TAB>label rows")
                   ->required();
               cmd.add_option("--size", args->size, "Entries, special tokens included")
                   ->capture_default_str()
                   ->check(CLI::Range(16, 1000000));
               cmd.add_option("--out", args->out, "vocab.txt to write")->required();
               cmd.add_option("--min-frequency", args->min_frequency, "A word seen fewer times is not added whole")
                   ->capture_default_str();
               cmd.add_option("--continuation-fraction", args->continuation_fraction,
                              "Share of the free entries given to ##endings")
                   ->capture_default_str()
                   ->check(CLI::Range(0.0, 1.0));
               cmd.add_option("--limit", args->limit, "Use the first N rows (0: all)")->capture_default_str();
               run = [args] {
                 const auto rows = qexp::read_training_tsv(args->data, args->limit);
                 qexp::wordpiece_vocab_builder builder;
                 for (const auto& text : rows.sentences) builder.add_text(text);
                 qexp::wordpiece_vocab_options options;
                 options.vocab_size = args->size;
                 options.min_frequency = args->min_frequency;
                 options.continuation_fraction = args->continuation_fraction;
                 const auto vocab = builder.build(options);
                 qexp::write_vocab_file(vocab, args->out);
                 std::cout << args->out << ": " << vocab.size() << " entries from " << builder.word_counts().size()
                           << " distinct words in " << rows.size() << " sentences\n";
                 return 0;
               };
             });
