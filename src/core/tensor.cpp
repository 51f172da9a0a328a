#include "normnet/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <sstream>

#include "normnet/error.h"

namespace normnet {

Shape::Shape(std::initializer_list<int64_t> d) : Shape(std::vector<int64_t>(d)) {}

Shape::Shape(const std::vector<int64_t>& d) {
  check(d.size() <= kMaxDims, "tensor rank ", d.size(), " exceeds the maximum of ", kMaxDims);
  rank = static_cast<int>(d.size());
  for (int i = 0; i < rank; ++i) {
    check(d[i] >= 0, "tensor dimension ", i, " is negative (", d[i], ")");
    dims[i] = d[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    check(dims[i] == 0 || n <= INT64_MAX / dims[i], "tensor shape overflows int64");
    n *= dims[i];
  }
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (dims[i] != o.dims[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream s;
  s << "(";
  for (int i = 0; i < rank; ++i) s << (i ? ", " : "") << dims[i];
  s << ")";
  return s.str();
}

// Freed tensor buffers are kept, by exact size, and handed out again: a training step
// allocates the same sizes every time, and a fresh allocation of a large block costs a system
// call and a page fault per 4 KiB page (about a tenth of a small network's step). The cache
// holds at most kMaxCachedBytes; a buffer that does not fit is freed. Buffers are zero-filled
// when handed out, cached or not, except for Tensor::empty.
namespace {

constexpr size_t kMaxCachedBytes = size_t{1} << 30;

struct BufferCache {
  std::mutex mu;
  std::unordered_multimap<size_t, float*> free_blocks;
  size_t cached = 0;
  ~BufferCache() {
    for (auto& [bytes, p] : free_blocks) std::free(p);
  }
  float* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = free_blocks.find(bytes);
    if (it == free_blocks.end()) return nullptr;
    float* p = it->second;
    free_blocks.erase(it);
    cached -= bytes;
    return p;
  }
  void give(float* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (cached + bytes <= kMaxCachedBytes) {
        free_blocks.emplace(bytes, p);
        cached += bytes;
        return;
      }
    }
    std::free(p);
  }
};

BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache;  // never destroyed: tensors may outlive statics
  return *cache;
}

}  // namespace

void release_cached_buffers() {
  BufferCache& c = buffer_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [bytes, p] : c.free_blocks) std::free(p);
  c.free_blocks.clear();
  c.cached = 0;
}

std::shared_ptr<float[]> allocate_floats(int64_t n, bool zero) {
  size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  bytes = (bytes + 63) / 64 * 64;
  float* p = buffer_cache().take(bytes);
  if (!p) p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) fail("out of memory allocating ", bytes, " bytes for a tensor");
  if (zero) std::memset(p, 0, bytes);
  return std::shared_ptr<float[]>(p, [bytes](float* q) { buffer_cache().give(q, bytes); });
}

static void contiguous_strides(const Shape& s, std::array<int64_t, kMaxDims>& st) {
  int64_t acc = 1;
  for (int i = s.rank - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s.dims[i];
  }
}

Tensor::Tensor(const Shape& shape) : storage_(allocate_floats(shape.numel())), shape_(shape) {
  contiguous_strides(shape_, strides_);
}

Tensor Tensor::empty(const Shape& shape) {
  Tensor t;
  t.storage_ = allocate_floats(shape.numel(), false);
  t.shape_ = shape;
  contiguous_strides(t.shape_, t.strides_);
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t(shape);
  t.fill(value);
  return t;
}

Tensor Tensor::from(const Shape& shape, const std::vector<float>& values) {
  check(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from: ", values.size(),
        " values for shape ", shape.str());
  Tensor t(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int i = shape_.rank - 1; i >= 0; --i) {
    if (shape_.dims[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_.dims[i];
  }
  return true;
}

Tensor Tensor::reshape(const Shape& shape) const {
  check(defined(), "reshape of an undefined tensor");
  check(shape.numel() == numel(), "cannot reshape ", shape_.str(), " to ", shape.str());
  Tensor t = is_contiguous() ? *this : contiguous();
  t.shape_ = shape;
  contiguous_strides(shape, t.strides_);
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  check(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_.dims[0], "slice [", begin, ", ",
        end, ") out of range for shape ", shape_.str());
  Tensor t = *this;
  t.shape_.dims[0] = end - begin;
  t.offset_ = offset_ + begin * strides_[0];
  return t;
}

Tensor Tensor::permute(std::initializer_list<int> order) const {
  check(static_cast<int>(order.size()) == rank(), "permute: ", order.size(), " axes for rank ", rank());
  Tensor t = *this;
  int i = 0;
  bool seen[kMaxDims] = {};
  for (int a : order) {
    check(a >= 0 && a < rank() && !seen[a], "permute: bad axis order");
    seen[a] = true;
    t.shape_.dims[i] = shape_.dims[a];
    t.strides_[i] = strides_[a];
    ++i;
  }
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

void Tensor::fill(float v) {
  check(is_contiguous(), "fill of a non-contiguous view");
  std::fill(data(), data() + numel(), v);
}

void Tensor::copy_from(const Tensor& src) {
  check(src.shape() == shape_, "copy_from: shape ", src.shape().str(), " into ", shape_.str());
  if (is_contiguous() && src.is_contiguous()) {
    std::copy(src.data(), src.data() + numel(), data());
    return;
  }
  // General strided copy: walk a multi-index.
  std::array<int64_t, kMaxDims> idx{};
  const int64_t n = numel();
  for (int64_t k = 0; k < n; ++k) {
    int64_t so = 0, dof = 0;
    for (int i = 0; i < rank(); ++i) {
      so += idx[i] * src.strides_[i];
      dof += idx[i] * strides_[i];
    }
    data()[dof] = src.data()[so];
    for (int i = rank() - 1; i >= 0; --i) {
      if (++idx[i] < shape_.dims[i]) break;
      idx[i] = 0;
    }
  }
}

float Tensor::at(std::initializer_list<int64_t> idx) const {
  check(static_cast<int>(idx.size()) == rank(), "at: ", idx.size(), " indices for rank ", rank());
  int64_t off = 0;
  int i = 0;
  for (int64_t v : idx) {
    check(v >= 0 && v < shape_.dims[i], "at: index ", v, " out of range in dimension ", i);
    off += v * strides_[i++];
  }
  return data()[off];
}

}  // namespace normnet
