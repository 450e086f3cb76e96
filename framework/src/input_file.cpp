#include "qexp/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qexp/errors.h"

namespace qexp {
namespace {

// What a non-regular file is, in the words of ls -l.
std::string kind_problem(mode_t mode) {
  const char* kind = S_ISDIR(mode)    ? "a directory"
                     : S_ISFIFO(mode) ? "a FIFO"
                     : S_ISSOCK(mode) ? "a socket"
                     : S_ISCHR(mode)  ? "a character device"
                     : S_ISBLK(mode)  ? "a block device"
                                      : "not a regular file";
  return std::string("is ") + kind + ", expected a regular file";
}

std::string errno_problem(int e) {
  if (e == ENOENT || e == ENOTDIR) return "no such file";
  return std::string("cannot be read (") + std::strerror(e) + ")";
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what, const std::string& problem) {
  throw input_error((what.empty() ? "" : what + " ") + path.string() + ": " + problem);
}

}  // namespace

std::string regular_file_problem(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_problem(errno);
  if (!S_ISREG(st.st_mode)) return kind_problem(st.st_mode);
  if (::access(path.c_str(), R_OK) != 0) return errno_problem(errno);
  return "";
}

int open_regular_file(const std::filesystem::path& path, const std::string& what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, what, errno_problem(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(path, what, errno_problem(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, what, kind_problem(st.st_mode));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string read_regular_file(const std::filesystem::path& path, const std::string& what) {
  const int fd = open_regular_file(path, what);
  std::string content;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      fail(path, what, errno_problem(e));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return content;
}

void require_regular_file(const std::filesystem::path& path, const std::string& what) {
  const std::string problem = regular_file_problem(path);
  if (!problem.empty()) fail(path, what, problem);
}

}  // namespace qexp
