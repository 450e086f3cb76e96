// Files qexp reads (model folder files, configs, datasets, vocabularies, checkpoints, results,
// plugins) are checked to be regular files before they are read: a FIFO would block the read
// forever and a folder reads as nothing, so either gets one line saying what the path is instead.
#pragma once

#include <filesystem>
#include <string>

namespace qexp {

// Why `path` cannot be read as a regular file ("no such file", "is a directory, expected a
// regular file", "is a FIFO, expected a regular file", "cannot be read (Permission denied)", ...),
// or "" when it can. Symbolic links are followed. Never opens the file, so never blocks.
std::string regular_file_problem(const std::filesystem::path& path);

// Opens `path` for reading (O_CLOEXEC) without blocking on a FIFO, and checks on the open file
// that it is a regular file. Returns the descriptor. Throws input_error "WHAT PATH: problem".
int open_regular_file(const std::filesystem::path& path, const std::string& what);

// The whole content of the regular file `path` (open_regular_file, then read to the end).
// Throws input_error "WHAT PATH: problem" on any failure.
std::string read_regular_file(const std::filesystem::path& path, const std::string& what);

// Throws input_error "WHAT PATH: problem" unless `path` is a regular file that can be read: for
// files a library opens by name (libtorch's zip reader, dlopen).
void require_regular_file(const std::filesystem::path& path, const std::string& what);

}  // namespace qexp
