// normnet::Tensor: float32, up to 5 dimensions.
//
// Represents: an owning, reference-counted, 64-byte-aligned buffer plus a view of it
// (shape, strides in elements, offset). Copies of a Tensor share the buffer; clone() copies it.
// Requires: sizes >= 0. Ensures: a new tensor's elements are always initialized (zeros unless
// given); there is no lazy state. A default-constructed Tensor holds no buffer (defined() is
// false) and is only a placeholder to assign to.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace normnet {

constexpr int kMaxDims = 5;

struct Shape {
  int rank = 0;
  std::array<int64_t, kMaxDims> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  explicit Shape(const std::vector<int64_t>& d);
  int64_t operator[](int i) const { return dims[i]; }
  int64_t& operator[](int i) { return dims[i]; }
  int64_t numel() const;
  std::vector<int64_t> vec() const { return {dims.begin(), dims.begin() + rank}; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "(N, C, H, W)" style: "(128, 32, 28, 28)"
};

class Tensor {
 public:
  Tensor() = default;                       // holds no buffer: defined() is false
  explicit Tensor(const Shape& shape);      // zero-filled, contiguous
  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  // Contiguous, contents unspecified (a reused buffer): for kernel outputs that write every
  // element, which saves the zero fill on the hot path.
  static Tensor empty(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor from(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank; }
  int64_t dim(int i) const { return shape_.dims[i < 0 ? i + shape_.rank : i]; }
  int64_t stride(int i) const { return strides_[i]; }
  int64_t numel() const { return shape_.numel(); }
  bool is_contiguous() const;

  float* data() { return storage_.get() + offset_; }
  const float* data() const { return storage_.get() + offset_; }

  // Views sharing the buffer.
  Tensor reshape(const Shape& shape) const;          // requires contiguity and equal numel
  Tensor slice(int64_t begin, int64_t end) const;    // along dimension 0
  Tensor permute(std::initializer_list<int> order) const;
  // This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;
  Tensor clone() const;

  void fill(float v);
  void zero() { fill(0.0f); }
  void copy_from(const Tensor& src);  // same shape, any strides
  float at(std::initializer_list<int64_t> idx) const;

 private:
  std::shared_ptr<float[]> storage_;
  Shape shape_;
  std::array<int64_t, kMaxDims> strides_{};
  int64_t offset_ = 0;
};

// Frees the buffers kept for reuse (see tensor.cpp). Call it between phases that allocate
// different sizes (the evaluation after training epochs does), so that peak memory is the
// larger phase's, not the sum of both.
void release_cached_buffers();

// Allocates n floats aligned to 64 bytes, zero-filled unless zero is false.
std::shared_ptr<float[]> allocate_floats(int64_t n, bool zero = true);

}  // namespace normnet
