// MNIST / Fashion-MNIST split loader: DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
#include <filesystem>
#include <system_error>

#include "normnet/data.h"
#include "normnet/error.h"

namespace normnet {
namespace {

// The first of DIR/NAME for NAME in names that is a regular file; throws naming the directory and
// every name looked for when none is.
std::string find_split_file(const std::string& dir, const std::vector<std::string>& names,
                            const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& name : names) {
    const fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  std::string looked;
  for (size_t i = 0; i < names.size(); ++i) looked += (i ? ", " : "") + names[i];
  fail("MNIST directory '", dir, "' has no ", what, " file: looked for ", looked);
}

std::vector<std::string> split_file_names(const std::string& prefix, const std::string& kind) {
  // The official names, then the dotted variant some mirrors use (train-images.idx3-ubyte).
  const std::string dashed = prefix + "-" + kind + "-ubyte";
  std::string dotted = dashed;
  dotted[prefix.size() + 1 + kind.find('-')] = '.';
  return {dashed + ".gz", dashed, dotted + ".gz", dotted};
}

// Type ubyte and the given rank, as MNIST image and label files have.
void check_ubyte_rank(const IdxArray& a, const std::string& path, size_t rank, const char* what) {
  static const char* digits = "0123456789abcdef";
  check(a.type == 0x08, path, ": IDX type byte is 0x", digits[a.type >> 4], digits[a.type & 15],
        ", expected 0x08 (ubyte) for ", what);
  check(a.dims.size() == rank, path, ": IDX rank is ", a.dims.size(), ", expected rank ", rank,
        " for ", what);
}

}  // namespace

Dataset load_mnist_split(const std::string& dir, bool train, int64_t limit, int64_t classes) {
  check(classes >= 1, "load_mnist_split: classes is ", classes, " (expected at least 1)");
  {
    std::error_code ec;
    check(std::filesystem::is_directory(dir, ec), "MNIST directory '", dir,
          "' does not exist or is not a directory");
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string image_path =
      find_split_file(dir, split_file_names(prefix, "images-idx3"), prefix + " images");
  const std::string label_path =
      find_split_file(dir, split_file_names(prefix, "labels-idx1"), prefix + " labels");

  IdxArray images = read_idx(image_path);
  IdxArray labels = read_idx(label_path);
  check_ubyte_rank(images, image_path, 3, "images (N, H, W)");
  check_ubyte_rank(labels, label_path, 1, "labels (N)");
  check(images.dims[0] == labels.dims[0], image_path, " holds ", images.dims[0], " images but ",
        label_path, " holds ", labels.dims[0], " labels: the counts differ");
  for (size_t i = 0; i < labels.bytes.size(); ++i)
    check(labels.bytes[i] < classes, label_path, ": label ", static_cast<int>(labels.bytes[i]),
          " at index ", i, " is outside [0, ", classes, ") for a model of ", classes, " classes");

  int64_t n = labels.dims[0];
  if (limit >= 0 && limit < n) {
    // Keep the first `limit` samples; drop the rest before converting to float.
    n = limit;
    images.dims[0] = n;
    images.bytes.resize(static_cast<size_t>(n * images.dims[1] * images.dims[2]));
  }
  Dataset data;
  data.images = idx_to_images(images, image_path);
  data.labels.assign(labels.bytes.begin(), labels.bytes.begin() + n);
  data.classes = classes;
  return data;
}

}  // namespace normnet
