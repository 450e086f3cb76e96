// Layer selection by glob on Hugging Face module names.
#include "qexp/layer_selection.h"

#include <gtest/gtest.h>

namespace {
const std::vector<std::string> names{
    "distilbert.transformer.layer.0.attention.q_lin", "distilbert.transformer.layer.0.ffn.lin1",
    "distilbert.transformer.layer.1.ffn.lin2", "pre_classifier", "classifier"};
}

TEST(layer_selection, selects_everything_by_default) { EXPECT_EQ(qexp::layer_selection{}.apply(names), names); }

TEST(layer_selection, exclude_globs_keep_layers_in_fp32) {
  qexp::layer_selection s;
  s.exclude = {"*classifier"};  // both heads
  EXPECT_EQ(s.apply(names).size(), 3u);
  s.exclude = {"classifier"};  // only the last one
  EXPECT_EQ(s.apply(names).size(), 4u);
  EXPECT_FALSE(s.selects("classifier"));
  EXPECT_TRUE(s.selects("pre_classifier"));
}

TEST(layer_selection, include_and_exclude_combine) {
  qexp::layer_selection s;
  s.include = {"*.ffn.*"};
  s.exclude = {"*.layer.1.*"};
  EXPECT_EQ(s.apply(names), std::vector<std::string>{"distilbert.transformer.layer.0.ffn.lin1"});
  s.include = {"no.such.layer"};
  EXPECT_TRUE(s.apply(names).empty());
}
