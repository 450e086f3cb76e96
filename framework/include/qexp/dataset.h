// Labelled sentence datasets in the GLUE SST-2 layout: a header line, then sentence<TAB>label.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qexp {

struct labelled_sentences {
  std::filesystem::path path;
  std::vector<std::string> sentences;
  std::vector<std::int64_t> labels;
  std::vector<std::size_t> lines;  // the file's line number of each sentence (the header is line 1)
  std::size_t size() const { return sentences.size(); }
};

// Reads an SST-2 style TSV: the first line is the header ("sentence<TAB>label"); each line splits on
// its last tab (no quote handling, as Hugging Face reads these files with QUOTE_NONE); labels are
// non-negative integers. `limit` > 0 keeps the first `limit` rows. Throws input_error naming the
// file and line for a missing or non-regular file, a missing header or tab, a label that is not an
// integer, or a file with no sentence after its header.
labelled_sentences read_sentence_tsv(const std::filesystem::path& path, std::size_t limit = 0);

// Sentences [begin, end) of `ids` as one right-padded [end - begin, longest] int64 batch, with
// `*mask` 1 on tokens and 0 on padding.
at::Tensor padded_batch(const std::vector<std::vector<std::int64_t>>& ids, std::size_t begin, std::size_t end,
                        std::int64_t pad_id, at::Tensor* mask);
// Sentences ids[rows[0]], ids[rows[1]], ... as one batch, likewise: the one padding code that
// tokenizer batches, the runner, the trainer and the benchmarks use.
at::Tensor padded_batch(const std::vector<std::vector<std::int64_t>>& ids, const std::vector<std::size_t>& rows,
                        std::int64_t pad_id, at::Tensor* mask);

}  // namespace qexp
