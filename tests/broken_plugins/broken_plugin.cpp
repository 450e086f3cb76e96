// One source, several deliberately broken plugins (chosen by BROKEN_CASE), each built into a
// folder of its own so a test can point --plugin-path at exactly one of them.
#include <qexp/float_linear.h>
#include <qexp/plugin_api.h>

#include <stdexcept>
#include <string>

namespace {

[[maybe_unused]] const qexp::option_spec options[] = {
    {"level", qexp::option_type::integer, "1", "an integer option for type checks", nullptr},
};

class passthrough_quantizer final : public qexp::linear_quantizer {
 public:
  std::unique_ptr<qexp::packed_linear> prepare(const qexp::layer& l) const override {
    return qexp::make_float_linear(l);
  }
  std::unique_ptr<qexp::packed_linear> load(const qexp::tensor_reader& in, const std::string& prefix) const override {
    return qexp::load_float_linear(in, prefix);
  }
};

[[maybe_unused]] int supported_yes(const char**) { return 1; }
[[maybe_unused]] int supported_no(const char** reason) {
  *reason = "needs an instruction set this test pretends is missing";
  return 0;
}

[[maybe_unused]] qexp::linear_quantizer* create_ok(const qexp::option_values&, std::string*) { return new passthrough_quantizer(); }
[[maybe_unused]] qexp::linear_quantizer* create_fails(const qexp::option_values&, std::string* error) {
  *error = "calibration table missing";
  return nullptr;
}
[[maybe_unused]] qexp::linear_quantizer* create_throws(const qexp::option_values&, std::string*) {
  throw std::runtime_error("out of coffee");
}

}  // namespace

#if BROKEN_CASE == 1  // no entry point at all
extern "C" __attribute__((visibility("default"))) int some_other_symbol() { return 42; }
#elif BROKEN_CASE == 2  // a future API version
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION + 98, "future", "9.0.0", "from the future",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 3  // built against another libtorch
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION, "old-torch", "1.0.0", "other torch",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR + 7, QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 4  // the other C++ string ABI
extern "C" __attribute__((visibility("default"))) const qexp_plugin_info* qexp_plugin_entry() {
  static const qexp_plugin_info info = {QEXP_PLUGIN_API_VERSION, "old-abi", "1.0.0", "other ABI",
                                        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, 1 - QEXP_CXX11_ABI,
                                        options, 1, supported_yes, create_ok};
  return &info;
}
#elif BROKEN_CASE == 5  // a valid plugin, built twice into one folder: duplicate id
QEXP_PLUGIN("twin", "1.0.0", "a plugin whose id is taken twice", options, supported_yes, create_ok)
#elif BROKEN_CASE == 6
QEXP_PLUGIN("failing-factory", "1.0.0", "its factory reports an error", options, supported_yes, create_fails)
#elif BROKEN_CASE == 7
QEXP_PLUGIN("throwing-factory", "1.0.0", "its factory throws", options, supported_yes, create_throws)
#elif BROKEN_CASE == 8
QEXP_PLUGIN("not-here", "1.0.0", "cannot run on this CPU", options, supported_no, create_ok)
#elif BROKEN_CASE == 9  // a good plugin, for the happy path of option checks
QEXP_PLUGIN("options-check", "1.0.0", "accepts one integer option", options, supported_yes, create_ok)
#else
#error "set BROKEN_CASE"
#endif
