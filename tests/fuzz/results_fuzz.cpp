// Fuzzes the results.json reader behind `qexp report` (experiments/results_report.cpp): the input
// is a results.json. load_results may refuse it with an input_error; a document it accepts goes
// through every renderer (CSV, terminal table, summary.md, report.html), alone and as two runs
// side by side, and the renderers never throw on missing or oddly typed fields (results_report.h):
// any exception from them is a finding.
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "results_report.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = qexp::fuzz::scratch_dir() / "results.json";
  qexp::fuzz::write_file(file, qexp::fuzz::as_text(data, size));
  nlohmann::json doc;
  try {
    doc = qexp::load_results(file);
  } catch (const qexp::input_error&) {
    return 0;  // refused, as documented
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qexp fuzz: load_results threw %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  try {
    for (const std::vector<nlohmann::json>& runs : {std::vector<nlohmann::json>{doc}, std::vector<nlohmann::json>{doc, doc}}) {
      const std::string csv = qexp::results_csv(runs);
      const std::string table = qexp::summary_table(runs);
      const std::string markdown = qexp::summary_markdown(runs);
      const std::string html = qexp::report_html(runs);
      if (csv.empty() || html.empty()) qexp::fuzz::property_failed("a renderer gave nothing");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qexp fuzz: a results renderer threw %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}
