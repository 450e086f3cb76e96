// The calibration sentences of an experiment: drawn from a labelled TSV (never the evaluation
// file) by a seed, tokenized like the evaluation data.
#pragma once

#include "ptq_config.h"
#include "qexp/recipe.h"
#include "qexp/tokenizer.h"

namespace qexp {

// The first `count` positions of a seeded shuffle of 0..population-1 (all of them when the
// population is smaller): the same draw on every machine. The calibration sentences are the first
// `sentences` of the draw; autotune's tuning sentences are the ones after them in the same draw.
std::vector<std::size_t> seeded_draw(std::size_t population, std::uint64_t seed, std::size_t count);

// `settings.sentences` sentences of `settings.data_path`, drawn without replacement by
// `settings.seed` (all of them when the file has fewer), tokenized to at most `max_length` tokens.
calibration_set load_calibration_set(const calibration_settings& settings, const wordpiece_tokenizer& tokenizer,
                                     int max_length);

}  // namespace qexp
