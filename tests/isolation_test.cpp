// qexp::run_isolated: what the child sends arrives whole and in order, and every way a child can end
// (exit 0, another status, a signal, an endless loop, even one that closed its pipe first) is told
// apart, and never takes the caller down or hangs it. The children are this test program again,
// running only `isolation_child.act` with QEXP_ISOLATION_TEST_CHILD saying what to do.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "qexp/isolation.h"

namespace {

const std::string big_message(3 << 20, 'x');  // larger than a pipe's buffer

qexp::isolated_run run_child(const std::string& behaviour, double timeout_seconds = 0, double startup_seconds = 0) {
  auto argv = qexp::this_program_command_line();
  argv.resize(1);
  argv.push_back("--gtest_filter=isolation_child.act");
  // Under AddressSanitizer (tools/sanitize.sh) the deliberate segfault is not a finding: the
  // signal is left to end the process, as without it.
  const char* asan = std::getenv("ASAN_OPTIONS");
  return qexp::run_isolated(argv,
                            {{"QEXP_ISOLATION_TEST_CHILD", behaviour},
                             {"ASAN_OPTIONS", std::string(asan ? asan : "") + ":handle_segv=0"}},
                            timeout_seconds, startup_seconds);
}

}  // namespace

// The child's side: skipped unless started by one of the tests below.
TEST(isolation_child, act) {
  const char* behaviour = std::getenv("QEXP_ISOLATION_TEST_CHILD");
  if (!behaviour) GTEST_SKIP() << "run by the isolation tests as their child";
  const std::string what = behaviour;
  const auto& send = qexp::parent_channel();
  ASSERT_TRUE(send);
  if (what == "messages") {
    send("first");
    send("");
    send(std::string("with\0nul", 8));
    send(big_message);
    send("last");
  } else if (what == "segfault") {
    send("before");
    std::raise(SIGSEGV);
    send("after");
  } else if (what == "abort") {
    std::abort();
  } else if (what == "exit3") {
    std::_Exit(3);
  } else if (what == "hang") {
    send("started");
    for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } else if (what == "close-and-hang") {
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } else if (what == "channel-not-inherited") {
    send(std::getenv("QEXP_PARENT_CHANNEL_FD") ? "inherited" : "not inherited");
  } else if (what == "threads") {
    at::set_num_threads(2);
    std::mutex m;
    std::set<std::thread::id> threads;
    for (int round = 0; round < 20 && threads.size() < 2; ++round)
      at::parallel_for(0, 2, 1, [&](std::int64_t, std::int64_t) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::lock_guard<std::mutex> lock(m);
        threads.insert(std::this_thread::get_id());
      });
    send(std::to_string(threads.size()));
  }
}

TEST(isolation, messages_arrive_whole_and_in_order) {
  const auto run = run_child("messages");
  EXPECT_TRUE(run.finished) << run.ending();
  EXPECT_EQ(run.exit_status, 0);
  EXPECT_EQ(run.signal, 0);
  EXPECT_EQ(run.ending(), "finished");
  ASSERT_EQ(run.messages.size(), 5u);
  EXPECT_EQ(run.messages[0], "first");
  EXPECT_EQ(run.messages[1], "");
  EXPECT_EQ(run.messages[2], std::string("with\0nul", 8));
  EXPECT_EQ(run.messages[3], big_message);
  EXPECT_EQ(run.messages[4], "last");
}

TEST(isolation, a_segfault_is_a_signal_and_keeps_what_was_sent_before) {
  const auto run = run_child("segfault");
  EXPECT_FALSE(run.finished);
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0], "before");
  EXPECT_EQ(run.signal, SIGSEGV);
  EXPECT_EQ(run.ending(), "was killed by signal 11 (Segmentation fault)");
}

TEST(isolation, abort_and_exit_statuses_are_told_apart) {
  const auto aborted = run_child("abort");
  EXPECT_EQ(aborted.signal, SIGABRT);
  EXPECT_FALSE(aborted.finished);
  const auto exited = run_child("exit3");
  EXPECT_EQ(exited.exit_status, 3);
  EXPECT_FALSE(exited.finished);
  EXPECT_EQ(exited.ending(), "exited with status 3");
}

TEST(isolation, an_endless_child_is_killed_at_its_time_limit) {
  // The clock starts at the first message, whatever the program's start-up took.
  const auto run = run_child("hang", 2, 300);
  EXPECT_TRUE(run.timed_out);
  EXPECT_FALSE(run.timed_out_starting);
  EXPECT_FALSE(run.finished);
  EXPECT_EQ(run.signal, SIGKILL);
  EXPECT_EQ(run.ending("measure.timeout_s"), "was killed after 2 s (measure.timeout_s)");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_GE(run.seconds, 2.0);
  EXPECT_LT(run.seconds, 300.0);
}

TEST(isolation, a_child_that_never_sends_is_killed_at_its_startup_limit) {
  const auto run = run_child("close-and-hang", 2, 3);
  EXPECT_TRUE(run.timed_out);
  EXPECT_TRUE(run.timed_out_starting);
  EXPECT_EQ(run.ending("x"), "was killed after 3 s without starting (x)");
}

TEST(isolation, a_child_that_closes_its_pipe_and_hangs_still_times_out) {
  const auto run = run_child("close-and-hang", 2);
  EXPECT_TRUE(run.timed_out);
  EXPECT_EQ(run.signal, SIGKILL);
}

TEST(isolation, programs_the_child_starts_do_not_get_its_channel) {
  const auto run = run_child("channel-not-inherited");
  ASSERT_EQ(run.messages.size(), 1u) << run.ending();
  EXPECT_EQ(run.messages[0], "not inherited");
}

TEST(isolation, a_program_that_cannot_be_executed_exits_127) {
  const auto run = qexp::run_isolated({"/nonexistent/qexp"}, {});
  EXPECT_EQ(run.exit_status, 127);
  EXPECT_TRUE(run.messages.empty());
}

// Why isolation starts a fresh program instead of forking: the child gets a working thread pool
// even though this process has run parallel regions already.
TEST(isolation, the_child_has_a_working_thread_pool) {
  at::set_num_threads(2);
  at::parallel_for(0, 2, 1, [](std::int64_t, std::int64_t) {});
  const auto run = run_child("threads", 120);
  ASSERT_TRUE(run.finished) << run.ending();
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0], "2");
}
