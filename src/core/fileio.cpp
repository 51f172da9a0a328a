// File helpers shared by every writer and reader (see include/normnet/fileio.h).
#include "normnet/fileio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "normnet/error.h"

namespace normnet {

std::vector<uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open '", path, "' for reading: ", std::strerror(errno));
  // Read in chunks until end of file, so pipes and files that change size are handled and a
  // directory (whose fopen succeeds on Linux) fails at the first read with EISDIR.
  std::vector<uint8_t> bytes;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    bytes.reserve(static_cast<size_t>(st.st_size));
  uint8_t chunk[1 << 16];
  for (;;) {
    const size_t got = std::fread(chunk, 1, sizeof(chunk), f);
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof(chunk)) break;
  }
  if (std::ferror(f)) {
    const int err = errno;
    std::fclose(f);
    fail("cannot read '", path, "': ", std::strerror(err));
  }
  std::fclose(f);
  return bytes;
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(getpid()));
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    fail("cannot write '", path, "': cannot create temporary file '", tmp, "': ",
         std::strerror(errno));
  // From here on every failure closes and removes the temporary before throwing.
  auto give_up = [&](const char* step, int err, bool still_open) {
    if (still_open) std::fclose(f);
    std::remove(tmp.c_str());
    fail("cannot write '", path, "': ", step, " of temporary file '", tmp, "' failed: ",
         std::strerror(err));
  };
  if (size > 0 && std::fwrite(data, 1, size, f) != size) give_up("write", errno, true);
  if (std::fflush(f) != 0) give_up("flush", errno, true);
  if (fsync(fileno(f)) != 0) give_up("fsync", errno, true);
  if (std::fclose(f) != 0) give_up("close", errno, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) give_up("rename", errno, false);
  // Make the rename itself durable: fsync the directory. Best effort; some filesystems refuse.
  const size_t slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

}  // namespace normnet
