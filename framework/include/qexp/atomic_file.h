// Files written whole or not at all. The bytes go to a temporary file in the target's folder,
// which is flushed to disk (fsync) and renamed over the target; then the folder is flushed so that
// the rename itself survives a crash. A reader sees the old file or the new one, never half of one.
// results.json and the report files, checkpoints (safetensors) and sweep files are written so.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qexp {

// Writes `parts`, back to back, as the new content of `path`, whose folder must exist. Throws
// qexp::error naming the path, the step and the system's reason; the temporary file is removed.
void write_file_atomically(const std::filesystem::path& path, const std::vector<std::string_view>& parts);

// The same for one text, creating the folder (and its parents) first when it is missing.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace qexp
