// The environment a result records: CPU, ISA flags and the libraries really loaded. Checked against
// what this process can see for itself, not against one machine: any libtorch, oneDNN or CPU passes
// as long as the record tells the truth about it.
#include "qexp/environment.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/version.h>

#include <dnnl.hpp>
#include <string>

#include "qexp/threads.h"
#include "test_support.h"

namespace {

// A function of a library this process may have loaded (OpenBLAS, libgomp), or nullptr.
template <typename F>
F loaded_function(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

TEST(environment, names_the_cpu_and_the_libraries_this_process_runs) {
  auto env = qexp::environment_json(qexp::test::source_dir());
  const auto cpu = qexp::read_cpu_info();
  EXPECT_FALSE(env["cpu_model"].get<std::string>().empty());
  EXPECT_EQ(env["cpu_model"], cpu.model);
  EXPECT_GE(env["logical_cpus"].get<int>(), 1);
  // The libtorch qexp was built against (the ABI plugins are checked for) and the oneDNN loaded.
  EXPECT_EQ(env["libtorch"], TORCH_VERSION);
  const dnnl_version_t* dnnl = dnnl_version();
  EXPECT_EQ(env["onednn"], std::to_string(dnnl->major) + "." + std::to_string(dnnl->minor) + "." +
                               std::to_string(dnnl->patch));
  // The BLAS entry names OpenBLAS exactly when OpenBLAS is what libtorch's libblas.so.3 resolved to.
  const std::string blas = env["blas"];
  const bool openblas = loaded_function<char* (*)()>("openblas_get_config") != nullptr;
  EXPECT_EQ(blas.find("OpenBLAS") != std::string::npos, openblas) << blas;
  EXPECT_FALSE(blas.empty());
  EXPECT_EQ(env["isa"]["avx2"], cpu.avx2);
  EXPECT_EQ(env["isa"]["avx512f"], cpu.avx512f);
  EXPECT_EQ(env["isa"]["avx512_vnni"], cpu.avx512_vnni);
  EXPECT_EQ(env["isa"]["amx_int8"], cpu.amx_int8);
}

TEST(environment, isa_flags_agree_with_cpuinfo) {
  const auto cpu = qexp::read_cpu_info();
  const std::string flags = qexp::test::run_command("grep -m1 '^flags' /proc/cpuinfo").output;
  EXPECT_EQ(cpu.avx512_vnni, flags.find(" avx512_vnni") != std::string::npos);
  EXPECT_EQ(cpu.avx2, flags.find(" avx2") != std::string::npos);
}

// set_compute_threads reaches libtorch's pool, the OpenMP runtime oneDNN shares with it, and
// Debian's pthread OpenBLAS, which at::set_num_threads alone leaves at every core. Each pool is
// read back through its own library; a pool whose library this process did not load cannot be
// checked, and the test says so by skipping after the checks it could make.
TEST(environment, compute_threads_are_set_for_every_pool) {
  const int before = qexp::compute_threads();
  const auto openblas_threads = loaded_function<int (*)()>("openblas_get_num_threads");
  const auto omp_threads = loaded_function<int (*)()>("omp_get_max_threads");
  for (int threads : {1, 2, 1}) {
    qexp::set_compute_threads(threads);
    EXPECT_EQ(qexp::compute_threads(), threads);
    if (omp_threads) {
      EXPECT_EQ(omp_threads(), threads) << "the OpenMP pool oneDNN uses";
    }
    if (openblas_threads) {
      EXPECT_EQ(openblas_threads(), threads) << "OpenBLAS's own pool";
    }
  }
  qexp::set_compute_threads(before);
  if (!openblas_threads) GTEST_SKIP() << "no OpenBLAS in this process (reference BLAS?): its pool was not checked";
  if (!omp_threads) GTEST_SKIP() << "no OpenMP runtime in this process: oneDNN's pool was not checked";
}
