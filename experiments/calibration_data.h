// The calibration sentences of an experiment: drawn from a labelled TSV (never the evaluation
// file) by a seed, tokenized like the evaluation data.
#pragma once

#include "ptq_config.h"
#include "qexp/recipe.h"
#include "qexp/tokenizer.h"

namespace qexp {

// `settings.sentences` sentences of `settings.data_path`, drawn without replacement by
// `settings.seed` (all of them when the file has fewer), tokenized to at most `max_length` tokens.
calibration_set load_calibration_set(const calibration_settings& settings, const wordpiece_tokenizer& tokenizer,
                                     int max_length);

}  // namespace qexp
