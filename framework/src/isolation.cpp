#include "qexp/isolation.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>

#include "qexp/errors.h"

namespace qexp {
namespace {

// The variable that tells a child which descriptor leads to its parent.
constexpr const char* channel_variable = "QEXP_PARENT_CHANNEL_FD";

// Messages are framed as an 8-byte length and the bytes, so they may hold anything.
bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void flush_standard_streams() {
  std::cout.flush();
  std::cerr.flush();
  if (auto logger = spdlog::default_logger()) logger->flush();
  std::fflush(nullptr);
}

// Between fork and exec only async-signal-safe calls: everything is prepared before the fork.
[[noreturn]] void exec_child(pid_t parent, int write_fd, char* const* argv, char* const* envp) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // survives exec; SIGKILL of the parent cannot be caught there
  if (::getppid() != parent) ::_exit(126);
  const int flags = ::fcntl(write_fd, F_GETFD);
  if (flags < 0 || ::fcntl(write_fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) ::_exit(126);
  ::execve(argv[0], argv, envp);
  ::_exit(127);
}

}  // namespace

std::string isolated_run::ending(const std::string& timeout_name) const {
  if (timed_out) {
    char limit[64];
    std::snprintf(limit, sizeof limit, "%g s", timed_out_starting ? startup_seconds : timeout_seconds);
    return "was killed after " + std::string(limit) + (timed_out_starting ? " without starting" : "") + " (" +
           timeout_name + ")";
  }
  if (signal > 0) {
    const char* name = ::strsignal(signal);
    return "was killed by signal " + std::to_string(signal) + " (" + (name ? name : "unknown signal") + ")";
  }
  if (finished) return "finished";
  return "exited with status " + std::to_string(exit_status);
}

isolated_run run_isolated(const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
                          double timeout_seconds, double startup_seconds) {
  if (argv.empty()) throw error("run_isolated: no program to run");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw error(std::string("cannot make a pipe for a child process: ") + std::strerror(errno));

  // argv and the environment as C arrays, built before the fork.
  std::vector<std::string> env_text;
  std::map<std::string, std::string> overrides = environment;
  overrides[channel_variable] = std::to_string(fds[1]);
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    if (!overrides.count(entry.substr(0, entry.find('=')))) env_text.push_back(entry);
  }
  for (const auto& [key, value] : overrides) env_text.push_back(key + "=" + value);
  std::vector<char*> c_argv, c_env;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (const auto& e : env_text) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);

  // The caller's buffered output goes out before anything the child writes.
  flush_standard_streams();
  const pid_t parent = ::getpid();
  const auto started = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw error(std::string("cannot start a child process: ") + std::strerror(e));
  }
  if (pid == 0) exec_child(parent, fds[1], c_argv.data(), c_env.data());
  ::close(fds[1]);

  isolated_run out;
  out.timeout_seconds = timeout_seconds;
  out.startup_seconds = startup_seconds;
  const bool limited = timeout_seconds > 0;
  bool starting = limited && startup_seconds > 0;
  auto deadline = started + std::chrono::duration<double>(starting ? startup_seconds : timeout_seconds);
  const auto past_deadline = [&] {
    if (!limited || std::chrono::steady_clock::now() < deadline) return false;
    out.timed_out_starting = starting;
    return true;
  };
  std::string buffer;
  char chunk[1 << 16];
  for (;;) {
    if (past_deadline()) {
      ::kill(pid, SIGKILL);
      out.timed_out = true;
      break;
    }
    int wait_ms = -1;
    if (limited) {
      const auto left = std::chrono::duration<double, std::milli>(deadline - std::chrono::steady_clock::now()).count();
      wait_ms = static_cast<int>(std::clamp(left + 1, 1.0, 1e9));
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready <= 0) continue;  // interrupted or timed out: the deadline check above decides
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of file: the child has ended (or closed its end)
    buffer.append(chunk, static_cast<std::size_t>(n));
    // Whole messages out of the buffer; a partial one waits for the rest.
    std::size_t at = 0;
    while (buffer.size() - at >= sizeof(std::uint64_t)) {
      std::uint64_t size;
      std::memcpy(&size, buffer.data() + at, sizeof size);
      if (buffer.size() - at - sizeof size < size) break;
      out.messages.emplace_back(buffer, at + sizeof size, size);
      at += sizeof size + size;
      if (starting) {
        starting = false;
        deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
      }
    }
    buffer.erase(0, at);
  }
  ::close(fds[0]);
  // The child may close its end and go on (or hang) before exiting: the deadline still holds.
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, limited && !out.timed_out ? WNOHANG : 0);
    if (r == pid) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      throw error(std::string("cannot wait for a child process: ") + std::strerror(errno));
    }
    if (past_deadline()) {
      ::kill(pid, SIGKILL);
      out.timed_out = true;
    } else {
      ::usleep(10000);
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (WIFEXITED(status)) {
    out.exit_status = WEXITSTATUS(status);
    out.finished = out.exit_status == 0 && !out.timed_out;
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

const message_sink& parent_channel() {
  static const message_sink channel = []() -> message_sink {
    const char* text = std::getenv(channel_variable);
    if (!text) return {};
    char* end = nullptr;
    const long fd = std::strtol(text, &end, 10);
    // Programs this one starts in turn must not take the channel for theirs.
    ::unsetenv(channel_variable);
    if (*end != '\0' || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) return {};
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    auto sending = std::make_shared<std::mutex>();
    return [fd = static_cast<int>(fd), sending](const std::string& message) {
      const std::lock_guard<std::mutex> lock(*sending);
      const std::uint64_t size = message.size();
      // A parent gone away is no reason to go on.
      if (!write_all(fd, &size, sizeof size) || !write_all(fd, message.data(), message.size())) ::_exit(72);
    };
  }();
  return channel;
}

std::vector<std::string> this_program_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (std::size_t at = 0; at < all.size();) {
    const std::size_t end = all.find('\0', at);
    argv.push_back(all.substr(at, end == std::string::npos ? std::string::npos : end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  if (argv.empty()) throw error("cannot read this program's command line from /proc/self/cmdline");
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw error("cannot find this program's file through /proc/self/exe");
  argv[0].assign(self, static_cast<std::size_t>(n));
  return argv;
}

}  // namespace qexp
