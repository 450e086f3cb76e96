#include "calibration_data.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "qexp/dataset.h"

namespace qexp {

calibration_set load_calibration_set(const calibration_settings& settings, const wordpiece_tokenizer& tokenizer,
                                     int max_length) {
  const labelled_sentences data = read_sentence_tsv(settings.data_path);
  std::vector<std::size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  // A partial Fisher-Yates shuffle with a fixed engine: the same draw on every machine.
  std::mt19937_64 engine(settings.seed);
  const std::size_t n = std::min(order.size(), static_cast<std::size_t>(settings.sentences));
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(engine() % (order.size() - i));
    std::swap(order[i], order[j]);
  }
  calibration_set set;
  set.batch_size = static_cast<std::size_t>(settings.batch_size);
  set.pad_id = tokenizer.pad_id();
  set.mode = settings.mode;
  for (std::size_t i = 0; i < n; ++i)
    set.ids.push_back(tokenizer.encode_ids(data.sentences[order[i]], static_cast<std::size_t>(max_length)));
  set.source = settings.data_path.string() + ": " + std::to_string(n) + " sentences (seed " +
               std::to_string(settings.seed) + ")";
  return set;
}

}  // namespace qexp
