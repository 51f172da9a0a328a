// Data: IDX files (MNIST / Fashion-MNIST format, raw or gzip), data sets in memory,
// normalization, shuffling, batching and crop-flip augmentation.
//
// IDX: 4-byte magic 0x00 0x00 TYPE RANK, RANK big-endian uint32 dimensions, then the data
// big-endian. The reader checks magic, type byte, rank (1..4), that the dimension product
// neither overflows nor differs from the bytes present, before allocating anything.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "normnet/random.h"
#include "normnet/tensor.h"

namespace normnet {

struct IdxArray {
  std::vector<int64_t> dims;
  uint8_t type = 0x08;          // 0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int, 0x0D float, 0x0E double
  std::vector<uint8_t> bytes;   // the payload as stored (big-endian for multi-byte types)
};

// Reads path (gzip if it starts with the gzip magic, raw otherwise). Throws normnet::Error
// naming the file and the fault.
IdxArray read_idx(const std::string& path);
// The same on a file's bytes in memory (raw or gzip); `what` names it in messages.
IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& what);

// Images as float in [0, 1], shape (N, C, H, W); labels in [0, classes).
struct Dataset {
  Tensor images;
  std::vector<int32_t> labels;
  int64_t classes = 10;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// Loads DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Checks image and label counts
// agree and labels are < classes. limit >= 0 keeps only the first `limit` samples.
Dataset load_mnist_split(const std::string& dir, bool train, int64_t limit = -1, int64_t classes = 10);

// CIFAR-10 binary version: DIR (or DIR/cifar-10-batches-bin)/data_batch_1..5.bin (train, all five
// required) or test_batch.bin; 3073-byte records (label byte 0..9, then 3072 pixel bytes CHW).
// Images (N, 3, 32, 32) in [0, 1]. Errors name the file: missing, empty, size not a multiple of
// 3073, label > 9 or >= classes.
Dataset load_cifar10_split(const std::string& dir, bool train, int64_t limit = -1, int64_t classes = 10);
bool is_cifar10_dir(const std::string& dir);  // data_batch_1.bin or test_batch.bin present
// One CIFAR-10 batch file's bytes (the same checks, `what` naming it) as a data set.
Dataset parse_cifar10(const uint8_t* data, size_t size, const std::string& what, int64_t classes = 10);
// The split of DIR in whichever format it holds: CIFAR-10 binary when is_cifar10_dir(dir), else
// MNIST/IDX (an existing directory with neither is an error naming both formats).
Dataset load_split(const std::string& dir, bool train, int64_t limit = -1, int64_t classes = 10);

// Builds a dataset from an IDX image array (N, H, W) of ubyte, scaled to [0, 1].
Tensor idx_to_images(const IdxArray& a, const std::string& what);

struct Normalization {
  float mean = 0.0f;
  float std = 1.0f;
};
Normalization compute_normalization(const Tensor& images);  // over all values, in double
void normalize_inplace(Tensor& images, const Normalization& norm);  // (x - mean) / std

// A permutation of [0, n): Fisher-Yates driven by rng.
std::vector<int64_t> shuffled_indices(int64_t n, Rng& rng);

// Copies samples idx[0..count) into batch (count, C, H, W) and labels.
void gather_batch(Tensor& batch, std::vector<int32_t>& labels, const Dataset& data,
                  const int64_t* idx, int64_t count);

// In place on a (N, C, H, W) batch: per sample a random crop of the image zero-padded by
// `pad` on every side, then a horizontal flip with probability 1/2.
void augment_crop_flip(Tensor& batch, int64_t pad, Rng& rng);

}  // namespace normnet
