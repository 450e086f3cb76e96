// The dynamic-int8 plugin beyond what the conformance suite checks of every plugin: a weight
// holding NaN or Inf is refused at prepare with an input error naming the Linear (issue 17: it
// was quantized silently, into a NaN scale and finite garbage), in every weight granularity and
// engine, as onednn-int8 and static-int8 refuse it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "qexp/errors.h"
#include "qexp/plugin_registry.h"

namespace {

using namespace qexp;

const plugin_registry& registry() {
  static const auto* r = new plugin_registry(plugin_registry::discover());
  return *r;
}

TEST(dynamic_int8, a_weight_holding_nan_or_inf_is_refused_naming_the_linear) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
    for (const auto& options : std::vector<std::map<std::string, std::string>>{
             {}, {{"granularity", "per_channel"}}, {{"engine", "reference"}}}) {
      layer l;
      l.name = "test.bad";
      l.weight = at::randn({16, 32});
      l.bias = at::zeros({16});
      l.weight[3][5] = bad;
      auto q = registry().create_linear("dynamic-int8", options);
      try {
        q->prepare(l);
        FAIL() << "prepare accepted a weight holding " << bad;
      } catch (const input_error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("NaN or Inf"), std::string::npos) << message;
        EXPECT_NE(message.find("'test.bad'"), std::string::npos) << message;
      }
    }
  // A finite weight still prepares.
  layer good;
  good.name = "test.good";
  good.weight = at::randn({16, 32});
  EXPECT_NO_THROW(registry().create_linear("dynamic-int8", {})->prepare(good));
}

}  // namespace
