// `qexp version`: versions of qexp and the libraries it runs on, for bug reports.
#include <iostream>

#include "cli.h"
#include "qexp/version.h"

QEXP_COMMAND("version", "Print the versions of qexp, libtorch and oneDNN", [](CLI::App&, std::function<int()>& run) {
  run = [] {
    std::cout << "qexp " << qexp::version_string() << "\nlibtorch " << qexp::torch_version_string()
              << "\noneDNN " << qexp::onednn_version_string() << "\n";
    return 0;
  };
});
