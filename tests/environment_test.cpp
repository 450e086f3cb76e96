// The environment a result records: CPU, ISA flags and the libraries really loaded.
#include "qexp/environment.h"

#include <gtest/gtest.h>

#include "qexp/threads.h"
#include "test_support.h"

TEST(environment, names_the_cpu_and_the_libraries) {
  auto env = qexp::environment_json(qexp::test::source_dir());
  EXPECT_FALSE(env["cpu_model"].get<std::string>().empty());
  EXPECT_GE(env["logical_cpus"].get<int>(), 1);
  EXPECT_EQ(env["onednn"].get<std::string>().substr(0, 2), "2.");
  EXPECT_EQ(env["libtorch"].get<std::string>().substr(0, 4), "1.13");
  // Debian's libtorch links libblas.so.3; with libopenblas0-pthread installed that is OpenBLAS.
  EXPECT_NE(env["blas"].get<std::string>().find("OpenBLAS"), std::string::npos) << env["blas"];
  EXPECT_TRUE(env["isa"].contains("avx512_vnni"));
}

TEST(environment, isa_flags_agree_with_cpuinfo) {
  const auto cpu = qexp::read_cpu_info();
  const std::string flags = qexp::test::run_command("grep -m1 '^flags' /proc/cpuinfo").output;
  EXPECT_EQ(cpu.avx512_vnni, flags.find(" avx512_vnni") != std::string::npos);
  EXPECT_EQ(cpu.avx2, flags.find(" avx2") != std::string::npos);
}

TEST(environment, compute_threads_are_set_for_every_pool) {
  qexp::set_compute_threads(1);
  EXPECT_EQ(qexp::compute_threads(), 1);
  qexp::set_compute_threads(2);
  EXPECT_EQ(qexp::compute_threads(), 2);
  qexp::set_compute_threads(1);
}
