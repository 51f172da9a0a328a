// File helpers shared by every writer and reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace normnet {

// Reads a whole file; throws naming the path when it cannot.
std::vector<uint8_t> read_file(const std::string& path);
// Writes PATH.tmp.PID, flushes, fsyncs, renames over PATH: readers see the old file or the
// whole new one, never a part. Throws naming the path (and removes the temporary) on failure.
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace normnet
