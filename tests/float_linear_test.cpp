// The float Linear and float table (qexp/float_linear.h), the model's defaults and the fp32
// plugin: bad input is refused with the error type every plugin uses for it.
#include "qexp/float_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "qexp/errors.h"

namespace {

qexp::layer small_layer() {
  at::manual_seed(3);
  return {"test.linear", at::randn({6, 8}), at::randn({6})};
}

// A wrong input width is qexp::input_error (exit 4) in every backend, as in the plugins; it was a
// c10::Error (exit 1) from a TORCH_CHECK.
TEST(float_linear, a_wrong_input_width_is_an_input_error_in_every_backend) {
  for (const auto backend : {qexp::float_backend::blas, qexp::float_backend::onednn, qexp::float_backend::qexp}) {
    auto linear = qexp::make_float_linear(small_layer(), backend);
    EXPECT_EQ(linear->forward(at::randn({2, 3, 8})).sizes(), (std::vector<int64_t>{2, 3, 6})) << qexp::to_string(backend);
    try {
      linear->forward(at::randn({3, 9}));
      ADD_FAILURE() << qexp::to_string(backend) << ": a [3, 9] input was accepted";
    } catch (const qexp::input_error& e) {
      EXPECT_STREQ(e.what(), "float Linear: input has 9 features in its last dimension; the layer expects 8");
    }
    EXPECT_THROW(linear->forward(at::scalar_tensor(1.0)), qexp::input_error) << qexp::to_string(backend);
  }
}

// The table contract: an id out of range is std::out_of_range (at::embedding's own check threw a
// c10::IndexError), never a read past the table.
TEST(float_linear, a_float_table_refuses_ids_out_of_range_with_out_of_range) {
  at::manual_seed(4);
  auto table = qexp::make_float_table({"test.table", at::randn({5, 3})});
  EXPECT_EQ(table->lookup(at::tensor(std::vector<int64_t>{0, 4}, at::kLong)).sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(table->lookup(at::tensor(std::vector<int64_t>{1, 5}, at::kLong)), std::out_of_range);
  EXPECT_THROW(table->lookup(at::tensor(std::vector<int64_t>{-1}, at::kLong)), std::out_of_range);
  EXPECT_THROW(table->lookup(at::tensor(std::vector<float>{1.f})), std::invalid_argument);
}

}  // namespace
