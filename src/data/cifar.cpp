// CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar.html): DIR/data_batch_1.bin ..
// data_batch_5.bin (training) and DIR/test_batch.bin. Each file is a sequence of 3073-byte
// records: one label byte (0..9), then 3072 pixel bytes, the 1024 red, 1024 green and 1024 blue
// values of a 32x32 image in row-major order, i.e. CHW. The files carry no header, so the only
// checks possible are the size (a positive multiple of 3073) and the labels; both are made, the
// size before anything is read.
//
// load_split() picks the format from the files present (see include/normnet/data.h).
#include <filesystem>
#include <fstream>
#include <system_error>

#include "normnet/data.h"
#include "normnet/error.h"

namespace normnet {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kCifarLabelBytes = 1, kCifarPixels = 3 * 32 * 32;
constexpr int64_t kCifarRecord = kCifarLabelBytes + kCifarPixels;  // 3073

std::vector<std::string> cifar_file_names(bool train) {
  if (!train) return {"test_batch.bin"};
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  return names;
}

// The directory holding the .bin files: DIR itself, or DIR/cifar-10-batches-bin (the folder the
// official archive unpacks to).
std::string cifar_root(const std::string& dir) {
  std::error_code ec;
  for (const fs::path& p : {fs::path(dir), fs::path(dir) / "cifar-10-batches-bin"})
    if (fs::is_regular_file(p / "data_batch_1.bin", ec) || fs::is_regular_file(p / "test_batch.bin", ec))
      return p.string();
  return "";
}

// Appends the records of one file's bytes (at most `want` of them; -1 = all) to pixels/labels.
void append_cifar_records(const uint8_t* data, size_t size, const std::string& what, int64_t want,
                          int64_t classes, std::vector<uint8_t>& pixels, std::vector<int32_t>& labels) {
  check(size > 0, what, ": CIFAR-10 file is empty (expected 3073-byte records)");
  check(size % kCifarRecord == 0, what, ": size ", size, " bytes is not a multiple of the ",
        kCifarRecord, "-byte CIFAR-10 record (1 label byte + 3072 pixel bytes): truncated or not CIFAR-10 binary");
  int64_t n = static_cast<int64_t>(size / kCifarRecord);
  if (want >= 0 && want < n) n = want;
  const size_t at = pixels.size();
  pixels.resize(at + static_cast<size_t>(n * kCifarPixels));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = data + i * kCifarRecord;
    check(rec[0] <= 9, what, ": record ", i, " has label ", static_cast<int>(rec[0]),
          ", CIFAR-10 labels are 0..9");
    check(rec[0] < classes, what, ": label ", static_cast<int>(rec[0]), " at record ", i,
          " is outside [0, ", classes, ") for a model of ", classes, " classes");
    labels.push_back(rec[0]);
    std::copy(rec + kCifarLabelBytes, rec + kCifarRecord, pixels.begin() + at + i * kCifarPixels);
  }
}

// The file's size is checked before anything is read; then only the records wanted are read.
void read_cifar_file(const std::string& path, int64_t want, int64_t classes, std::vector<uint8_t>& pixels,
                     std::vector<int32_t>& labels) {
  std::error_code ec;
  check(fs::is_regular_file(path, ec), "CIFAR-10 file '", path, "' is missing");
  const uintmax_t size = fs::file_size(path, ec);
  check(!ec, path, ": cannot read the file size: ", ec.message());
  check(size > 0, path, ": CIFAR-10 file is empty (expected 3073-byte records)");
  check(size % kCifarRecord == 0, path, ": size ", size, " bytes is not a multiple of the ",
        kCifarRecord, "-byte CIFAR-10 record (1 label byte + 3072 pixel bytes): truncated or not CIFAR-10 binary");
  int64_t n = static_cast<int64_t>(size / kCifarRecord);
  if (want >= 0 && want < n) n = want;
  std::ifstream f(path, std::ios::binary);
  check(f.good(), path, ": cannot open CIFAR-10 file");
  std::vector<uint8_t> bytes(static_cast<size_t>(n * kCifarRecord));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  check(f.gcount() == static_cast<std::streamsize>(bytes.size()), path, ": cannot read record ",
        f.gcount() / kCifarRecord, " (the file shrank while read?)");
  append_cifar_records(bytes.data(), bytes.size(), path, -1, classes, pixels, labels);
}

Dataset to_dataset(const std::vector<uint8_t>& pixels, std::vector<int32_t> labels, int64_t classes) {
  Dataset data;
  const int64_t n = static_cast<int64_t>(labels.size());
  data.images = Tensor(Shape{n, 3, 32, 32});  // (N, C, H, W): the records are already CHW
  float* out = data.images.data();
  for (size_t i = 0; i < pixels.size(); ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  data.labels = std::move(labels);
  data.classes = classes;
  return data;
}

bool has_mnist_files(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("train-", 0) == 0 || n.rfind("t10k-", 0) == 0) return true;
  }
  return false;
}

}  // namespace

bool is_cifar10_dir(const std::string& dir) { return !cifar_root(dir).empty(); }

Dataset load_cifar10_split(const std::string& dir, bool train, int64_t limit, int64_t classes) {
  check(classes >= 1, "load_cifar10_split: classes is ", classes, " (expected at least 1)");
  {
    std::error_code ec;
    check(fs::is_directory(dir, ec), "CIFAR-10 directory '", dir, "' does not exist or is not a directory");
  }
  std::string root = cifar_root(dir);
  if (root.empty()) root = dir;
  const std::vector<std::string> names = cifar_file_names(train);
  // Every file must be there (a missing batch is an error, not a smaller training set).
  for (const std::string& name : names) {
    std::error_code ec;
    check(fs::is_regular_file(fs::path(root) / name, ec), "CIFAR-10 directory '", root, "' has no ",
          name, " (", train ? "training needs data_batch_1.bin .. data_batch_5.bin" : "the test split is test_batch.bin",
          ")");
  }
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  for (const std::string& name : names) {
    const int64_t want = limit < 0 ? -1 : limit - static_cast<int64_t>(labels.size());
    if (want == 0) break;
    read_cifar_file((fs::path(root) / name).string(), want, classes, pixels, labels);
  }
  return to_dataset(pixels, std::move(labels), classes);
}

Dataset parse_cifar10(const uint8_t* data, size_t size, const std::string& what, int64_t classes) {
  check(classes >= 1, "parse_cifar10: classes is ", classes, " (expected at least 1)");
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  append_cifar_records(data, size, what, -1, classes, pixels, labels);
  return to_dataset(pixels, std::move(labels), classes);
}

Dataset load_split(const std::string& dir, bool train, int64_t limit, int64_t classes) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    if (is_cifar10_dir(dir)) return load_cifar10_split(dir, train, limit, classes);
    check(has_mnist_files(dir), "data directory '", dir,
          "' holds neither MNIST-format files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) nor "
          "CIFAR-10 binary files (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)");
  }
  return load_mnist_split(dir, train, limit, classes);
}

}  // namespace normnet
