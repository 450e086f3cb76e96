#include "calibration_data.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "qexp/dataset.h"

namespace qexp {

std::vector<std::size_t> seeded_draw(std::size_t population, std::uint64_t seed, std::size_t count) {
  std::vector<std::size_t> order(population);
  std::iota(order.begin(), order.end(), 0);
  // A partial Fisher-Yates shuffle with a fixed engine.
  std::mt19937_64 engine(seed);
  const std::size_t n = std::min(population, count);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(engine() % (population - i));
    std::swap(order[i], order[j]);
  }
  order.resize(n);
  return order;
}

calibration_set load_calibration_set(const calibration_settings& settings, const wordpiece_tokenizer& tokenizer,
                                     int max_length) {
  const labelled_sentences data = read_sentence_tsv(settings.data_path);
  const std::vector<std::size_t> order =
      seeded_draw(data.size(), settings.seed, static_cast<std::size_t>(settings.sentences));
  const std::size_t n = order.size();
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
