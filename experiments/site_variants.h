// Models that differ from an already measured one in a few sites, measured against fp32 without
// re-running what they share: the evaluation sentences in fixed batches, each batch's stage inputs
// saved once (distilbert_classifier::forward_saving_stages), and a variant run from the stage of
// its first changed site on. The `sensitivity` and `autotune` kinds measure their variants here.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "measurement.h"
#include "qexp/distilbert.h"
#include "qexp/recipe.h"

namespace qexp {

// Per batch, the inputs of stages 1..n_layers + 1.
using saved_stages = std::vector<std::vector<distilbert_classifier::stage_input>>;

class batched_evaluation {
 public:
  batched_evaluation(const evaluation_data& d, std::size_t batch_size) : d_(d), batch_size_(batch_size) {}

  std::size_t batches() const { return (d_.ids.size() + batch_size_ - 1) / batch_size_; }
  const evaluation_data& data() const { return d_; }

  // Logits [sentences, classes] of every stage from the token ids; with `saved`, every batch's
  // stage inputs are kept in it. `what` names the progress line ("": none).
  at::Tensor logits(distilbert_classifier& model, saved_stages* saved, const std::string& what) const;
  // The logits from `stage` on (0: every stage), from inputs saved by a model equal to `model`
  // in every site before that stage.
  at::Tensor logits_from(distilbert_classifier& model, const saved_stages& saved, std::int64_t stage) const;

 private:
  const evaluation_data& d_;
  std::size_t batch_size_;
};

// Softmax probabilities (double) of logits [sentences, classes].
at::Tensor probabilities(const at::Tensor& logits);

// One model's logits against fp32's on the same sentences: compare_predictions plus the SQNR of
// the logits. qexp::error when its outputs are not finite.
results::accuracy_section variant_accuracy(const at::Tensor& logits, const at::Tensor& fp32_logits, const at::Tensor& fp32_probs,
                            const std::vector<std::int64_t>& labels, std::uint64_t seed);

// Bytes of a site in the fp32 model (weight and bias, or the table), and as `model` holds it.
std::size_t float_site_bytes(const distilbert_classifier& fp32, const std::string& site, site_kind kind);
std::size_t site_bytes(const distilbert_classifier& model, const std::string& site, site_kind kind);

// `model` with site `site` taken from `from` (a shallow copy: the other sites are shared).
distilbert_classifier with_site_from(const distilbert_classifier& model, const distilbert_classifier& from,
                                     const std::string& site, site_kind kind);

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace qexp
