#include "qexp/dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "qexp/errors.h"
#include "qexp/input_file.h"

namespace qexp {

labelled_sentences read_sentence_tsv(const std::filesystem::path& path, std::size_t limit) {
  std::istringstream in(read_regular_file(path, "dataset"));
  labelled_sentences out;
  out.path = path;
  std::string line;
  std::size_t line_number = 0;
  auto where = [&] { return "dataset " + path.string() + ":" + std::to_string(line_number) + ": "; };
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto tab = line.rfind('\t');
    if (line_number == 1) {
      if (tab == std::string::npos || line.substr(tab + 1) != "label")
        throw input_error(where() + "expected the header 'sentence<TAB>label', found '" + line.substr(0, 60) + "'");
      continue;
    }
    if (line.empty()) continue;
    if (tab == std::string::npos) throw input_error(where() + "expected sentence<TAB>label, found no tab");
    const std::string label_text = line.substr(tab + 1);
    errno = 0;
    char* end = nullptr;
    const long long label = std::strtoll(label_text.c_str(), &end, 10);
    if (label_text.empty() || *end != '\0' || errno == ERANGE || label < 0)
      throw input_error(where() + "expected a non-negative integer label, found '" + label_text + "'");
    out.sentences.push_back(line.substr(0, tab));
    out.labels.push_back(label);
    out.lines.push_back(line_number);
    if (limit > 0 && out.size() >= limit) break;
  }
  if (line_number == 0) throw input_error("dataset " + path.string() + ": empty file, expected a header line");
  if (out.size() == 0)
    throw input_error("dataset " + path.string() + ": no sentences after the header, expected sentence<TAB>label lines");
  return out;
}

namespace {

// The one padding loop: batch row r is ids[row(r)], right-padded with pad_id to the longest.
template <typename Row>
at::Tensor pad_rows(const std::vector<std::vector<std::int64_t>>& ids, std::size_t count, Row row,
                    std::int64_t pad_id, at::Tensor* mask) {
  std::size_t longest = 0;
  for (std::size_t r = 0; r < count; ++r) longest = std::max(longest, ids[row(r)].size());
  auto input = at::full({static_cast<std::int64_t>(count), static_cast<std::int64_t>(longest)}, pad_id, at::kLong);
  *mask = at::zeros_like(input);
  auto* in = input.data_ptr<std::int64_t>();
  auto* m = mask->data_ptr<std::int64_t>();
  for (std::size_t r = 0; r < count; ++r) {
    const auto& sentence = ids[row(r)];
    std::copy(sentence.begin(), sentence.end(), in + r * longest);
    std::fill(m + r * longest, m + r * longest + sentence.size(), 1);
  }
  return input;
}

}  // namespace

at::Tensor padded_batch(const std::vector<std::vector<std::int64_t>>& ids, std::size_t begin, std::size_t end,
                        std::int64_t pad_id, at::Tensor* mask) {
  return pad_rows(ids, end - begin, [begin](std::size_t r) { return begin + r; }, pad_id, mask);
}

at::Tensor padded_batch(const std::vector<std::vector<std::int64_t>>& ids, const std::vector<std::size_t>& rows,
                        std::int64_t pad_id, at::Tensor* mask) {
  return pad_rows(ids, rows.size(), [&rows](std::size_t r) { return rows[r]; }, pad_id, mask);
}

}  // namespace qexp
