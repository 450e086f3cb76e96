// `qexp report DIR... [--out DIR]`: rebuilds report.html, summary.md and results.csv from
// results.json files. One results folder and no --out: rewrites that folder's files. Several (or a
// folder holding several runs below it): writes the combined files to --out (default: here).
#include <algorithm>
#include <iostream>

#include "cli.h"
#include "results_report.h"

QEXP_COMMAND("report", "Rebuild report.html, summary.md and results.csv from results folders", [](CLI::App& cmd, std::function<int()>& run) {
  struct args_t {
    std::vector<std::string> inputs;
    std::string out;
  };
  auto args = std::make_shared<args_t>();
  cmd.add_option("dirs", args->inputs, "Results folders (holding results.json), or folders searched for them")->required();
  cmd.add_option("--out", args->out, "Where to write the combined files (default: the current folder; "
                                     "with one results folder and no --out, that folder)");
  run = [args] {
    std::vector<std::filesystem::path> files;
    for (const auto& input : args->inputs) {
      for (auto& f : qexp::find_results_files(input)) {
        // The same run named twice (a folder and its parent) is reported once.
        auto same = [&f](const std::filesystem::path& g) { return std::filesystem::equivalent(f, g); };
        if (std::none_of(files.begin(), files.end(), same)) files.push_back(std::move(f));
      }
    }
    std::vector<nlohmann::json> runs;
    for (const auto& f : files) runs.push_back(qexp::load_results(f));

    std::filesystem::path out_dir;
    if (!args->out.empty()) {
      out_dir = args->out;
    } else if (files.size() == 1) {
      out_dir = files.front().parent_path();
    } else {
      out_dir = std::filesystem::current_path();
    }
    qexp::write_report_files(runs, out_dir);
    std::cout << qexp::summary_table(runs) << "\n";
    for (const char* name : {"report.html", "summary.md", "results.csv"}) {
      std::cout << "wrote " << (out_dir / name).string() << "\n";
    }
    return 0;
  };
});
