// qexp/plugin_helpers.h: the one way plugins read a choice option into their own type, and the
// input checks their Linears and tables share.
#include "qexp/plugin_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

enum class granularity { per_tensor, per_channel };

const qexp::option_spec specs[] = {
    {"granularity", qexp::option_type::choice, "per_tensor", "weight scales", "per_tensor|per_channel"},
    {"bits", qexp::option_type::integer, "8", "bits", nullptr, "2", "8"},
};

qexp::option_values with(const std::string& value) {
  qexp::option_values v;
  v.values = {{"granularity", value}, {"bits", "8"}};
  return v;
}

TEST(get_choice, maps_each_spelling_to_the_value_at_its_position_in_the_choices) {
  const std::initializer_list<granularity> order{granularity::per_tensor, granularity::per_channel};
  EXPECT_EQ(qexp::get_choice(with("per_tensor"), specs, "granularity", order), granularity::per_tensor);
  EXPECT_EQ(qexp::get_choice(with("per_channel"), specs, "granularity", order), granularity::per_channel);
  // The plugin's list, not the enum's declaration order, decides.
  EXPECT_EQ(qexp::get_choice(with("per_channel"), specs, "granularity", {7, 3}), 3);
}

// The host validated the value; what is left to go wrong is the plugin's own code.
TEST(get_choice, a_plugin_that_disagrees_with_its_spec_is_a_logic_error) {
  EXPECT_THROW(qexp::get_choice(with("per_tensor"), specs, "granularity", {granularity::per_tensor}), std::logic_error);
  EXPECT_THROW(qexp::get_choice(with("per_row"), specs, "granularity", {1, 2}), std::logic_error);
  EXPECT_THROW(qexp::get_choice(with("per_tensor"), specs, "bits", {1, 2}), std::logic_error);
  EXPECT_THROW(qexp::get_choice(with("per_tensor"), specs, "colour", {1, 2}), std::logic_error);
}

TEST(check_input_width, names_the_layer_and_both_widths_as_an_input_error) {
  EXPECT_NO_THROW(qexp::check_input_width(at::zeros({2, 3, 8}), 8, "x"));
  try {
    qexp::check_input_width(at::zeros({3, 41}), 40, "my-plugin");
    ADD_FAILURE() << "accepted";
  } catch (const qexp::input_error& e) {
    EXPECT_STREQ(e.what(), "my-plugin: input has 41 features in its last dimension; the layer expects 40");
  }
  EXPECT_THROW(qexp::check_input_width(at::scalar_tensor(1.0), 1, "x"), qexp::input_error);
}

TEST(checked_ids, returns_flat_int64_ids_and_refuses_ids_out_of_range) {
  const auto ids = qexp::checked_ids(at::tensor(std::vector<int>{0, 4, 2}).reshape({3, 1}), 5, "t");
  EXPECT_EQ(ids.scalar_type(), at::kLong);
  EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{3}));
  try {
    qexp::checked_ids(at::tensor(std::vector<int64_t>{1, 5}), 5, "table 'w'");
    ADD_FAILURE() << "accepted";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "table 'w': id 5 (position 1) is out of range for a table of 5 rows");
  }
  EXPECT_THROW(qexp::checked_ids(at::tensor(std::vector<int64_t>{-1}), 5, "t"), std::out_of_range);
  EXPECT_THROW(qexp::checked_ids(at::tensor(std::vector<float>{1.f}), 5, "t"), std::invalid_argument);
  EXPECT_THROW(qexp::checked_ids(at::Tensor(), 5, "t"), std::invalid_argument);
}

}  // namespace
