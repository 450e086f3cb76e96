#include "site_variants.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "qexp/errors.h"

namespace qexp {
using nlohmann::json;

at::Tensor batched_evaluation::logits(distilbert_classifier& model, saved_stages* saved,
                                      const std::string& what) const {
  std::vector<at::Tensor> parts;
  if (saved) saved->assign(batches(), {});
  std::optional<progress> bar;
  if (!what.empty()) bar.emplace(what, d_.ids.size());
  for (std::size_t b = 0; b < batches(); ++b) {
    const std::size_t begin = b * batch_size_, end = std::min(d_.ids.size(), begin + batch_size_);
    at::Tensor mask;
    const at::Tensor input = padded_batch(d_.ids, begin, end, d_.tokenizer.pad_id(), &mask);
    parts.push_back(saved ? model.forward_saving_stages(input, mask, (*saved)[b]) : model.forward(input, mask));
    if (bar) bar->step(end);
  }
  return at::cat(parts);
}

at::Tensor batched_evaluation::logits_from(distilbert_classifier& model, const saved_stages& saved,
                                           std::int64_t stage) const {
  if (stage == 0) return logits(model, nullptr, "");
  std::vector<at::Tensor> parts;
  for (const auto& batch : saved) parts.push_back(model.forward_from(batch.at(static_cast<std::size_t>(stage - 1))));
  return at::cat(parts);
}

at::Tensor probabilities(const at::Tensor& logits) { return at::softmax(logits.to(at::kDouble), 1); }

results::accuracy_section variant_accuracy(const at::Tensor& logits, const at::Tensor& fp32_logits, const at::Tensor& fp32_probs,
                  const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  const at::Tensor probs = probabilities(logits);
  if (const auto bad = (~at::isfinite(probs)).any(1).sum().item<std::int64_t>(); bad > 0)
    throw error("the model's outputs are not finite (NaN or inf) on " + std::to_string(bad) + " of " +
                std::to_string(probs.size(0)) + " sentences; expected finite outputs (are the weights finite?)");
  auto out = compare_predictions(probs, fp32_probs, labels, seed);
  out.logits_sqnr_db = sqnr_db(fp32_logits, logits);
  return out;
}

std::size_t float_site_bytes(const distilbert_classifier& fp32, const std::string& site, site_kind kind) {
  if (kind == site_kind::table) return static_cast<std::size_t>(fp32.float_table(site).weight.numel()) * 4;
  const layer l = fp32.float_layer(site);
  return static_cast<std::size_t>(l.weight.numel() + (l.bias.defined() ? l.bias.numel() : 0)) * 4;
}

std::size_t site_bytes(const distilbert_classifier& model, const std::string& site, site_kind kind) {
  return kind == site_kind::table ? model.table_site(site).packed_bytes() : model.linear(site).packed_bytes();
}

distilbert_classifier with_site_from(const distilbert_classifier& model, const distilbert_classifier& from,
                                     const std::string& site, site_kind kind) {
  distilbert_classifier out = model;
  if (kind == site_kind::table)
    out.replace_table(site, from.table_ptr(site));
  else
    out.replace_linear(site, from.linear_ptr(site));
  return out;
}

}  // namespace qexp
