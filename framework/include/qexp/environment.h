// What a result must carry about the machine it was measured on.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

namespace qexp {

struct cpu_info {
  std::string model;
  bool avx2 = false, avx512f = false, avx512_vnni = false, amx_int8 = false;
  int logical_cpus = 0;
};

cpu_info read_cpu_info();

// CPU, ISA flags, library versions (libtorch, oneDNN, the BLAS actually loaded), qexp version,
// host and OS, and the git commit of `repo_hint`'s checkout (marked dirty when it has changes).
nlohmann::json environment_json(const std::filesystem::path& repo_hint);

}  // namespace qexp
