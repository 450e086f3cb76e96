#include "qexp/environment.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ATen/Parallel.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "qexp/shell.h"
#include "qexp/version.h"

namespace qexp {
namespace {

// What `command` prints, without its trailing newline; empty when /bin/sh cannot start.
std::string command_output(const std::string& command) {
  shell_result r = run_shell(command);
  if (r.exit_code == -1) return {};
  std::string out = std::move(r.output);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int collect_library(struct dl_phdr_info* info, size_t, void* data) {
  if (info->dlpi_name && *info->dlpi_name) static_cast<std::set<std::string>*>(data)->insert(info->dlpi_name);
  return 0;
}

// The BLAS this process really loaded: libtorch links libblas.so.3, which Debian's alternatives
// point at OpenBLAS or at the (slow) reference BLAS.
std::string blas_in_use() {
  std::set<std::string> libraries;
  dl_iterate_phdr(collect_library, &libraries);
  std::string found;
  for (const auto& lib : libraries) {
    if (lib.find("blas") == std::string::npos) continue;
    std::error_code ec;
    const auto real = std::filesystem::canonical(lib, ec);
    found += (found.empty() ? "" : ", ") + (ec ? lib : real.string());
  }
  using config_fn = char* (*)();
  if (auto get_config = reinterpret_cast<config_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    return std::string("OpenBLAS ") + get_config() + " [" + found + "]";
  return found.empty() ? "none loaded" : found;
}

}  // namespace

cpu_info read_cpu_info() {
  cpu_info info;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && info.model.empty()) info.model = value;
    if (key == "flags" && !info.avx2) {
      std::istringstream flags(" " + value + " ");
      std::set<std::string> set;
      std::string f;
      while (flags >> f) set.insert(f);
      info.avx2 = set.count("avx2");
      info.avx512f = set.count("avx512f");
      info.avx512_vnni = set.count("avx512_vnni");
      info.amx_int8 = set.count("amx_int8");
    }
  }
  info.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
  return info;
}

nlohmann::json environment_json(const std::filesystem::path& repo_hint) {
  const cpu_info cpu = read_cpu_info();
  utsname uts{};
  uname(&uts);
  std::string commit;
  if (!repo_hint.empty())
    commit = command_output("git -C " + shell_quote(repo_hint.string()) + " describe --always --dirty --abbrev=12 2>/dev/null");
  return {
      {"cpu_model", cpu.model},
      {"isa", {{"avx2", cpu.avx2}, {"avx512f", cpu.avx512f}, {"avx512_vnni", cpu.avx512_vnni}, {"amx_int8", cpu.amx_int8}}},
      {"logical_cpus", cpu.logical_cpus},
      {"torch_threads", at::get_num_threads()},
      {"libtorch", torch_version_string()},
      {"onednn", onednn_version_string()},
      {"blas", blas_in_use()},
      {"qexp_version", version_string()},
      {"git_commit", commit.empty() ? "unknown" : commit},
      {"hostname", uts.nodename},
      {"os", std::string(uts.sysname) + " " + uts.release + " " + uts.machine},
  };
}

}  // namespace qexp
