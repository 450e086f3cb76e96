// What every qexp fuzz target shares: a scratch folder of its own (the readers take file paths,
// so each input is written to a file there first) and the rule for exceptions (a reader may throw
// qexp::error and its subclasses, errors.h; any other exception is a finding).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>

#include "qexp/errors.h"

namespace qexp::fuzz {

// A folder under $TMPDIR (else /tmp) for this process alone, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/qexp-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) {
      std::perror("qexp fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

// Writes `bytes` to `path` (replacing it); aborts if it cannot, since that is no finding.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A broken property of a reader (a round trip that differs, a result out of range): a finding.
[[noreturn]] inline void property_failed(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "qexp fuzz: property failed: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

// Runs `body`; a qexp::error is the reader refusing the input, as documented. Any other exception
// escapes the reader's contract: print it and abort, so libFuzzer saves the input.
template <typename Body>
void expect_only_qexp_errors(Body&& body) {
  try {
    body();
  } catch (const qexp::error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qexp fuzz: unexpected exception %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

}  // namespace qexp::fuzz
