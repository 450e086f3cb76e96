#include "qexp/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qexp/errors.h"

namespace qexp {
namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, const std::vector<std::string_view>& parts) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  // Same folder, so the rename stays on one file system and is atomic; the pid keeps two writers apart.
  const fs::path temp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
  auto fail = [&](const std::string& what, bool remove_temp) {
    const int saved = errno;
    std::error_code ignored;
    if (remove_temp) fs::remove(temp, ignored);
    throw error(path.string() + ": " + what + " (" + std::strerror(saved) + ")");
  };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create the temporary file " + temp.string(), false);
  for (const std::string_view part : parts) {
    const char* data = part.data();
    std::size_t left = part.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int saved = errno;
        ::close(fd);
        errno = saved;
        fail("cannot write", true);
      }
      data += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("cannot flush to disk", true);
  }
  if (::close(fd) != 0) fail("cannot close", true);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename " + temp.string() + " over it", true);
  // The new name is in the folder's entries: flush them too. EINVAL: a file system that cannot
  // sync a folder, where there is nothing more to do.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail("written, but cannot open the folder " + dir.string() + " to flush it", false);
  if (::fsync(dir_fd) != 0 && errno != EINVAL) {
    const int saved = errno;
    ::close(dir_fd);
    errno = saved;
    fail("written, but cannot flush the folder " + dir.string() + " to disk", false);
  }
  ::close(dir_fd);
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw error(path.string() + ": cannot create the folder " + dir.string() + " (" + ec.message() + ")");
  write_file_atomically(path, {text});
}

}  // namespace qexp
