// IDX reader (MNIST / Fashion-MNIST format), raw or gzip.
//
// Layout: bytes 0-1 are 0x00 0x00, byte 2 the element type, byte 3 the rank; then RANK
// big-endian uint32 dimensions; then the elements, big-endian, row-major.
//
// Nothing is allocated from an unchecked header. The dimension product (times the element size)
// is checked for int64 overflow first. For a raw regular file the payload size is known from the
// file size, so a mismatch is reported before any allocation. For gzip the decompressed size is
// unknown until read, so the payload is read in chunks, never past the claimed size plus one byte,
// and claims over kMaxIdxPayloadBytes are refused outright. The same reader runs on bytes in
// memory (parse_idx), where a raw payload's size is the buffer's.
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "normnet/data.h"
#include "normnet/error.h"

namespace normnet {
namespace {

constexpr int64_t kMaxIdxPayloadBytes = int64_t{2} << 30;  // 2 GiB
constexpr size_t kReadChunk = size_t{1} << 20;

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return {digits[b >> 4], digits[b & 15]};
}

// Element size in bytes of an IDX type byte, or 0 when the byte names no IDX type.
int64_t idx_element_size(uint8_t type) {
  switch (type) {
    case 0x08: return 1;  // ubyte
    case 0x09: return 1;  // sbyte
    case 0x0B: return 2;  // short
    case 0x0C: return 4;  // int
    case 0x0D: return 4;  // float
    case 0x0E: return 8;  // double
    default: return 0;
  }
}

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08: return "ubyte";
    case 0x09: return "sbyte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << ")";
  return s.str();
}

// A raw or gzip file, or the same bytes in memory, read front to back. read() returns fewer
// bytes than asked only at the end of the (decompressed) data, and throws on I/O errors and
// corrupt gzip streams. Gzip in memory is inflated with zlib's stream API as gzread does for
// files: concatenated members are read in turn, anything after the last member ends the data.
class IdxInput {
 public:
  explicit IdxInput(const std::string& path) : path_(path) {
    raw_ = std::fopen(path.c_str(), "rb");
    if (!raw_) fail(path, ": cannot open IDX file: ", std::strerror(errno));
    uint8_t magic[2] = {0, 0};
    const size_t got = std::fread(magic, 1, 2, raw_);
    if (std::ferror(raw_)) {
      const int err = errno;
      std::fclose(raw_);
      raw_ = nullptr;
      fail(path, ": cannot read IDX file: ", std::strerror(err));
    }
    if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
      std::fclose(raw_);
      raw_ = nullptr;
      gz_ = gzopen(path.c_str(), "rb");
      if (!gz_) fail(path, ": cannot open gzip IDX file: ", std::strerror(errno));
      gzbuffer(gz_, 1 << 17);
      return;
    }
    struct stat st {};
    if (fstat(fileno(raw_), &st) == 0 && S_ISREG(st.st_mode)) known_size_ = st.st_size;
    std::rewind(raw_);
  }
  IdxInput(const uint8_t* data, size_t size, const std::string& what)
      : path_(what), mem_(data), mem_size_(size), in_memory_(true) {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
      std::memset(&zs_, 0, sizeof zs_);
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) fail(what, ": cannot start zlib");
      zs_open_ = true;
      return;
    }
    known_size_ = static_cast<int64_t>(size);
  }
  ~IdxInput() {
    if (raw_) std::fclose(raw_);
    if (gz_) gzclose(gz_);
    if (zs_open_) inflateEnd(&zs_);
  }
  IdxInput(const IdxInput&) = delete;
  IdxInput& operator=(const IdxInput&) = delete;

  bool is_gzip() const { return gz_ != nullptr || zs_open_; }
  // Total size of raw data whose size is known (a regular file, memory), -1 for gzip (and for
  // pipes and the like).
  int64_t known_size() const { return known_size_; }

  size_t read(uint8_t* dst, size_t n) {
    size_t total = 0;
    while (total < n) {
      const size_t want = std::min(n - total, kReadChunk);
      size_t got = 0;
      if (zs_open_) {
        got = inflate_some(dst + total, want);
      } else if (in_memory_) {
        got = std::min(want, mem_size_ - mem_pos_);
        if (got > 0) std::memcpy(dst + total, mem_ + mem_pos_, got);
        mem_pos_ += got;
      } else if (raw_) {
        got = std::fread(dst + total, 1, want, raw_);
        if (std::ferror(raw_)) fail(path_, ": cannot read IDX file: ", std::strerror(errno));
      } else {
        const int r = gzread(gz_, dst + total, static_cast<unsigned>(want));
        int errnum = Z_OK;
        const char* msg = gzerror(gz_, &errnum);
        if (r < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
          if (errnum == Z_ERRNO) fail(path_, ": cannot read gzip IDX file: ", std::strerror(errno));
          // zlib prefixes its message with the path it was opened with; drop the repeat.
          std::string why = msg ? msg : "unknown error";
          if (why.rfind(path_ + ": ", 0) == 0) why.erase(0, path_.size() + 2);
          fail(path_, ": corrupt gzip stream (zlib: ", why, ")");
        }
        got = static_cast<size_t>(r);
      }
      total += got;
      if (got < want) break;
    }
    return total;
  }

 private:
  // Up to n (<= kReadChunk) decompressed bytes from memory; fewer only at the end of the data.
  size_t inflate_some(uint8_t* dst, size_t n) {
    zs_.next_out = dst;
    zs_.avail_out = static_cast<uInt>(n);
    while (zs_.avail_out > 0 && !z_done_) {
      if (zs_.avail_in == 0) {
        const size_t left = mem_size_ - mem_pos_;
        if (left == 0) fail(path_, ": corrupt gzip stream (zlib: unexpected end of file)");
        const size_t take = std::min<size_t>(left, 1u << 30);
        zs_.next_in = const_cast<Bytef*>(mem_ + mem_pos_);
        zs_.avail_in = static_cast<uInt>(take);
        mem_pos_ += take;
      }
      const int r = inflate(&zs_, Z_NO_FLUSH);
      if (r == Z_STREAM_END) {
        // Another gzip member may follow; anything else ends the data (as gzread does).
        const size_t rest = zs_.avail_in + (mem_size_ - mem_pos_);
        const uint8_t* next = zs_.avail_in ? zs_.next_in : mem_ + mem_pos_;
        if (rest >= 2 && next[0] == 0x1f && next[1] == 0x8b) {
          if (inflateReset(&zs_) != Z_OK) fail(path_, ": cannot restart zlib");
          continue;
        }
        z_done_ = true;
        break;
      }
      if (r != Z_OK) {
        const char* why = zs_.msg ? zs_.msg : r == Z_BUF_ERROR ? "unexpected end of file" : "unknown error";
        fail(path_, ": corrupt gzip stream (zlib: ", why, ")");
      }
    }
    return n - zs_.avail_out;
  }

  std::string path_;
  std::FILE* raw_ = nullptr;
  gzFile gz_ = nullptr;
  int64_t known_size_ = -1;
  const uint8_t* mem_ = nullptr;
  size_t mem_size_ = 0, mem_pos_ = 0;
  bool in_memory_ = false;
  z_stream zs_{};
  bool zs_open_ = false, z_done_ = false;
};

// The header, then the payload, checked as described at the top of this file.
IdxArray read_idx_from(IdxInput& in, const std::string& path);

}  // namespace

IdxArray read_idx(const std::string& path) {
  IdxInput in(path);
  return read_idx_from(in, path);
}

IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& what) {
  IdxInput in(data, size, what);
  return read_idx_from(in, what);
}

namespace {

IdxArray read_idx_from(IdxInput& in, const std::string& path) {
  uint8_t head[4];
  const size_t head_got = in.read(head, 4);
  check(head_got == 4, path, ": truncated: ", head_got,
        " bytes of data, shorter than the 4-byte IDX header");
  check(head[0] == 0 && head[1] == 0, path, ": IDX magic bytes are ", hex_byte(head[0]), " ",
        hex_byte(head[1]), " (expected 00 00)");
  const uint8_t type = head[2];
  const int64_t elem = idx_element_size(type);
  check(elem != 0, path, ": unknown IDX type byte 0x", hex_byte(type),
        " (expected 08 ubyte, 09 sbyte, 0b short, 0c int, 0d float or 0e double)");
  const int rank = head[3];
  check(rank >= 1 && rank <= 4, path, ": IDX rank is ", rank, " (expected 1 to 4)");

  uint8_t dim_bytes[16];
  const size_t dims_got = in.read(dim_bytes, 4 * static_cast<size_t>(rank));
  check(dims_got == 4 * static_cast<size_t>(rank), path, ": truncated: the IDX header of rank ",
        rank, " needs ", 4 * rank, " bytes of dimensions but only ", dims_got, " are present");
  IdxArray a;
  a.type = type;
  a.dims.resize(rank);
  bool any_zero = false;
  for (int i = 0; i < rank; ++i) {
    const uint8_t* d = dim_bytes + 4 * i;
    a.dims[i] = (int64_t{d[0]} << 24) | (int64_t{d[1]} << 16) | (int64_t{d[2]} << 8) | d[3];
    any_zero = any_zero || a.dims[i] == 0;
  }

  // Payload size in bytes, with overflow checked (a zero dimension makes it 0 whatever the rest).
  int64_t need = 0;
  if (!any_zero) {
    need = elem;
    for (int64_t d : a.dims)
      check(!__builtin_mul_overflow(need, d, &need), path, ": IDX dimensions ", dims_str(a.dims),
            " of ", idx_type_name(type), " overflow int64: their byte count cannot be represented");
  }
  const std::string described = std::string(" bytes of data the IDX dimensions ") +
                                dims_str(a.dims) + " of " + idx_type_name(type) + " describe";
  const int64_t header_bytes = 4 + 4 * int64_t{rank};

  if (in.known_size() >= 0) {
    // Raw regular file: the payload size is known, so compare before allocating.
    const int64_t present = in.known_size() - header_bytes;
    check(present >= need, path, ": truncated: only ", present, " of the ", need, described,
          " are present");
    check(present <= need, path, ": trailing garbage: ", present - need, " bytes after the ", need,
          described);
    check(need <= kMaxIdxPayloadBytes, path, ": the ", need, described, " exceed the limit of ",
          kMaxIdxPayloadBytes, " bytes for an IDX file");
    a.bytes.resize(static_cast<size_t>(need));
    const size_t got = in.read(a.bytes.data(), a.bytes.size());
    check(static_cast<int64_t>(got) == need, path, ": truncated: only ", got, " of the ", need,
          described, " could be read (did the file change while being read?)");
    return a;
  }

  // Gzip (or a pipe): the payload size is unknown until read. Grow the buffer chunk by chunk so
  // memory follows the data actually present, never past the claimed size.
  check(need <= kMaxIdxPayloadBytes, path, ": the ", need, described, " exceed the limit of ",
        kMaxIdxPayloadBytes, " bytes for an IDX file");
  while (static_cast<int64_t>(a.bytes.size()) < need) {
    const size_t old = a.bytes.size();
    const size_t want = std::min<size_t>(static_cast<size_t>(need) - old, kReadChunk);
    a.bytes.resize(old + want);
    const size_t got = in.read(a.bytes.data() + old, want);
    a.bytes.resize(old + got);
    if (got < want) break;
  }
  check(static_cast<int64_t>(a.bytes.size()) == need, path, ": truncated: only ", a.bytes.size(),
        " of the ", need, described, " are present");
  uint8_t extra = 0;
  check(in.read(&extra, 1) == 0, path, ": trailing garbage: the data continues past the ", need,
        described);
  return a;
}

}  // namespace

Tensor idx_to_images(const IdxArray& a, const std::string& what) {
  check(a.type == 0x08, what, ": IDX type byte is 0x", hex_byte(a.type), " (",
        idx_type_name(a.type), "), expected 0x08 (ubyte) for images");
  check(a.dims.size() == 3, what, ": IDX rank is ", a.dims.size(), " with dimensions ",
        dims_str(a.dims), ", expected rank 3 (N, H, W) for images");
  const int64_t n = a.dims[0], h = a.dims[1], w = a.dims[2];
  check(h > 0 && w > 0, what, ": image size ", h, "x", w, " is empty");
  // Both products checked: h * w alone can overflow when n is 0 (an empty array of huge
  // images has no payload to contradict it; found by fuzz/fuzz_idx.cpp).
  int64_t plane = 0, numel = 0;
  check(!__builtin_mul_overflow(h, w, &plane) && !__builtin_mul_overflow(n, plane, &numel), what,
        ": IDX dimensions ", dims_str(a.dims), " overflow int64");
  check(static_cast<int64_t>(a.bytes.size()) == numel, what, ": IDX dimensions ",
        dims_str(a.dims), " need ", numel, " bytes but the array holds ", a.bytes.size());
  Tensor images(Shape{n, 1, h, w});  // (N, 1, H, W)
  float* out = images.data();
  for (int64_t i = 0; i < numel; ++i) out[i] = static_cast<float>(a.bytes[i]) / 255.0f;
  return images;
}

}  // namespace normnet
