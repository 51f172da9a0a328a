// Data layer: IDX reading (raw and gzip, every malformed case), MNIST split loading,
// normalization, shuffling, batch gathering and crop-flip augmentation.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/error.h"
#include "normnet/fileio.h"

namespace fs = std::filesystem;
using namespace normnet;

namespace {

// An IDX file image: magic 00 00, type, rank, big-endian dimensions, then the payload.
std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

std::vector<uint8_t> iota_bytes(size_t n, int step = 1) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * step);
  return v;
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  ASSERT_EQ(gzclose(gz), Z_OK);
}

// Runs fn, expects a normnet::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected normnet::Error mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
  }
}

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("normnet_data_test_" + std::to_string(getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // Writes NAME raw and NAME.gz with the same bytes; returns both paths.
  std::vector<std::string> write_both(const std::string& name, const std::vector<uint8_t>& b) {
    write_raw(path(name), b);
    write_gz(path(name + ".gz"), b);
    return {path(name), path(name + ".gz")};
  }

  // A split of n images of h x w and the given labels, gzip or raw.
  void write_split(const std::string& prefix, uint32_t n, uint32_t h, uint32_t w,
                   const std::vector<uint8_t>& labels, bool gz) {
    const auto images = idx_bytes(0x08, {n, h, w}, iota_bytes(size_t{n} * h * w, 7));
    const auto lab = idx_bytes(0x08, {static_cast<uint32_t>(labels.size())}, labels);
    if (gz) {
      write_gz(path(prefix + "-images-idx3-ubyte.gz"), images);
      write_gz(path(prefix + "-labels-idx1-ubyte.gz"), lab);
    } else {
      write_raw(path(prefix + "-images-idx3-ubyte"), images);
      write_raw(path(prefix + "-labels-idx1-ubyte"), lab);
    }
  }

  std::string dir_;
};

// ---- IDX: good files ----

TEST_F(DataTest, ReadsRawAndGzipIdentically) {
  const auto payload = iota_bytes(2 * 3 * 4, 5);
  for (const std::string& p : write_both("a-idx3-ubyte", idx_bytes(0x08, {2, 3, 4}, payload))) {
    SCOPED_TRACE(p);
    const IdxArray a = read_idx(p);
    EXPECT_EQ(a.type, 0x08);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(a.bytes, payload);
  }
}

TEST_F(DataTest, ReadsMultiByteTypesAsStoredAndLargePayloads) {
  // float (4 bytes) rank 2: the payload is kept big-endian as stored.
  const auto payload = iota_bytes(3 * 2 * 4);
  for (const std::string& p : write_both("f-idx2", idx_bytes(0x0D, {3, 2}, payload))) {
    const IdxArray a = read_idx(p);
    EXPECT_EQ(a.type, 0x0D);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(a.bytes, payload);
  }
  // Larger than the reader's 1 MiB chunk, so the gzip path reads in several pieces.
  const auto big = iota_bytes(3 * 700 * 1000, 13);
  for (const std::string& p : write_both("big-idx3", idx_bytes(0x08, {3, 700, 1000}, big))) {
    SCOPED_TRACE(p);
    EXPECT_EQ(read_idx(p).bytes, big);
  }
  // A zero dimension is an empty, valid array.
  for (const std::string& p : write_both("empty-idx3", idx_bytes(0x08, {0, 28, 28}, {}))) {
    const IdxArray a = read_idx(p);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{0, 28, 28}));
    EXPECT_TRUE(a.bytes.empty());
  }
}

TEST_F(DataTest, IdxToImagesScalesToUnitRange) {
  IdxArray a;
  a.type = 0x08;
  a.dims = {2, 2, 3};
  a.bytes = {0, 255, 51, 102, 153, 204, 1, 2, 3, 4, 5, 6};
  const Tensor t = idx_to_images(a, "x.idx");
  EXPECT_EQ(t.shape(), (Shape{2, 1, 2, 3}));
  for (size_t i = 0; i < a.bytes.size(); ++i)
    EXPECT_FLOAT_EQ(t.data()[i], a.bytes[i] / 255.0f) << i;

  a.type = 0x0D;
  expect_error([&] { idx_to_images(a, "x.idx"); }, {"x.idx", "0x0d", "expected 0x08"});
  a.type = 0x08;
  a.dims = {12};
  expect_error([&] { idx_to_images(a, "x.idx"); }, {"x.idx", "rank is 1", "expected rank 3"});
}

// ---- IDX: every malformed case, raw and gzip ----

TEST_F(DataTest, RejectsWrongMagic) {
  auto b = idx_bytes(0x08, {4}, iota_bytes(4));
  b[0] = 0x12;
  b[1] = 0x34;
  for (const std::string& p : write_both("magic-idx1-ubyte", b))
    expect_error([&] { read_idx(p); }, {p, "IDX magic bytes are 12 34 (expected 00 00)"});
}

TEST_F(DataTest, RejectsUnknownTypeByte) {
  for (const std::string& p : write_both("type-idx1", idx_bytes(0x07, {4}, iota_bytes(4))))
    expect_error([&] { read_idx(p); }, {p, "unknown IDX type byte 0x07"});
}

TEST_F(DataTest, RejectsRankOutsideOneToFour) {
  for (const std::string& p : write_both("rank0", idx_bytes(0x08, {}, iota_bytes(4))))
    expect_error([&] { read_idx(p); }, {p, "IDX rank is 0 (expected 1 to 4)"});
  for (const std::string& p : write_both("rank5", idx_bytes(0x08, {1, 1, 1, 1, 1}, {7})))
    expect_error([&] { read_idx(p); }, {p, "IDX rank is 5 (expected 1 to 4)"});
}

TEST_F(DataTest, RejectsTruncatedHeader) {
  for (const std::string& p : write_both("short", {0, 0}))
    expect_error([&] { read_idx(p); }, {p, "truncated", "4-byte IDX header"});
  auto b = idx_bytes(0x08, {2, 3, 4}, {});
  b.resize(4 + 7);  // rank 3 needs 12 bytes of dimensions
  for (const std::string& p : write_both("shortdims", b))
    expect_error([&] { read_idx(p); }, {p, "truncated", "needs 12 bytes of dimensions", "only 7"});
}

TEST_F(DataTest, RejectsTruncatedData) {
  const auto b = idx_bytes(0x08, {2, 3, 4}, iota_bytes(20));  // 24 needed
  for (const std::string& p : write_both("trunc-idx3-ubyte", b))
    expect_error([&] { read_idx(p); }, {p, "truncated", "only 20 of the 24", "(2, 3, 4)"});
  // Multi-byte type: 3 ints need 12 bytes.
  for (const std::string& p : write_both("trunc-int", idx_bytes(0x0C, {3}, iota_bytes(11))))
    expect_error([&] { read_idx(p); }, {p, "truncated", "only 11 of the 12"});
}

TEST_F(DataTest, RejectsTrailingGarbage) {
  const auto b = idx_bytes(0x08, {2, 3, 4}, iota_bytes(24 + 5));
  const auto paths = write_both("trail-idx3-ubyte", b);
  expect_error([&] { read_idx(paths[0]); }, {paths[0], "trailing garbage: 5 bytes after the 24"});
  expect_error([&] { read_idx(paths[1]); }, {paths[1], "trailing garbage", "past the 24"});
}

TEST_F(DataTest, RejectsDimensionsWhoseProductOverflows) {
  const uint32_t m = 0xFFFFFFFFu;
  for (const std::string& p : write_both("ovf", idx_bytes(0x08, {m, m, m, m}, iota_bytes(8))))
    expect_error([&] { read_idx(p); }, {p, "overflow int64", "4294967295"});
  // The element size counts too: 2^31 * 2^31 elements of 8 bytes is 2^65 bytes.
  const uint32_t h = 0x80000000u;
  for (const std::string& p : write_both("ovf8", idx_bytes(0x0E, {h, h}, iota_bytes(8))))
    expect_error([&] { read_idx(p); }, {p, "overflow int64"});
}

TEST_F(DataTest, RejectsDimensionsLargerThanTheFile) {
  // 10^9 bytes claimed, 10 present: must fail without allocating the claim.
  const auto b = idx_bytes(0x08, {1000, 1000, 1000}, iota_bytes(10));
  for (const std::string& p : write_both("huge-idx3-ubyte", b))
    expect_error([&] { read_idx(p); }, {p, "truncated", "only 10 of the 1000000000"});
  // Over the 2 GiB cap: raw reports the size mismatch, gzip refuses the claim before reading.
  const auto c = idx_bytes(0x08, {65535, 65535, 65535}, iota_bytes(10));
  const auto paths = write_both("cap-idx3-ubyte", c);
  expect_error([&] { read_idx(paths[0]); }, {paths[0], "truncated", "only 10 of the"});
  expect_error([&] { read_idx(paths[1]); }, {paths[1], "exceed the limit"});
}

TEST_F(DataTest, RejectsCorruptGzipStreams) {
  const auto b = idx_bytes(0x08, {4, 50, 50}, iota_bytes(4 * 50 * 50, 3));
  write_gz(path("good.gz"), b);
  const std::vector<uint8_t> gz = read_file(path("good.gz"));
  ASSERT_GT(gz.size(), 30u);

  auto bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 0xFF;  // the CRC-32 in the trailer
  write_raw(path("crc-idx3-ubyte.gz"), bad_crc);
  expect_error([&] { read_idx(path("crc-idx3-ubyte.gz")); },
               {path("crc-idx3-ubyte.gz"), "corrupt gzip stream (zlib: incorrect data check)"});

  auto cut = gz;
  cut.resize(gz.size() / 2);  // the compressed stream stops in the middle
  write_raw(path("cut-idx3-ubyte.gz"), cut);
  expect_error([&] { read_idx(path("cut-idx3-ubyte.gz")); },
               {path("cut-idx3-ubyte.gz"), "corrupt gzip stream (zlib: unexpected end of file)"});

  std::vector<uint8_t> garbage = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03};
  for (int i = 0; i < 64; ++i) garbage.push_back(static_cast<uint8_t>(0xFF - i * 3));
  write_raw(path("garbage-idx3-ubyte.gz"), garbage);
  expect_error([&] { read_idx(path("garbage-idx3-ubyte.gz")); },
               {path("garbage-idx3-ubyte.gz"), "corrupt gzip stream"});
}

TEST_F(DataTest, RejectsMissingFile) {
  expect_error([&] { read_idx(path("nope-idx3-ubyte")); },
               {path("nope-idx3-ubyte"), "cannot open", "No such file"});
}

// ---- MNIST split loading ----

TEST_F(DataTest, LoadsSplitsFromGzipAndRawFiles) {
  write_split("train", 5, 3, 4, {0, 1, 2, 9, 3}, /*gz=*/true);
  write_split("t10k", 3, 3, 4, {7, 8, 9}, /*gz=*/false);
  const Dataset train = load_mnist_split(dir_, true);
  EXPECT_EQ(train.size(), 5);
  EXPECT_EQ(train.classes, 10);
  EXPECT_EQ(train.images.shape(), (Shape{5, 1, 3, 4}));
  EXPECT_EQ(train.labels, (std::vector<int32_t>{0, 1, 2, 9, 3}));
  const auto pixels = iota_bytes(5 * 3 * 4, 7);
  for (size_t i = 0; i < pixels.size(); ++i)
    ASSERT_FLOAT_EQ(train.images.data()[i], pixels[i] / 255.0f) << i;

  const Dataset test = load_mnist_split(dir_, false);
  EXPECT_EQ(test.images.shape(), (Shape{3, 1, 3, 4}));
  EXPECT_EQ(test.labels, (std::vector<int32_t>{7, 8, 9}));

  const Dataset first2 = load_mnist_split(dir_, true, 2);
  EXPECT_EQ(first2.images.shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(first2.labels, (std::vector<int32_t>{0, 1}));
  for (int64_t i = 0; i < first2.images.numel(); ++i)
    ASSERT_EQ(first2.images.data()[i], train.images.data()[i]);
  EXPECT_EQ(load_mnist_split(dir_, true, 100).size(), 5);  // limit above N keeps all
}

TEST_F(DataTest, SplitRejectsImageAndLabelCountsThatDiffer) {
  write_split("train", 5, 3, 4, {0, 1, 2, 3}, /*gz=*/true);
  expect_error([&] { load_mnist_split(dir_, true); },
               {"train-images-idx3-ubyte.gz", "holds 5 images", "train-labels-idx1-ubyte.gz",
                "holds 4 labels", "counts differ"});
}

TEST_F(DataTest, SplitRejectsLabelsOutsideTheClasses) {
  write_split("train", 4, 2, 2, {0, 1, 10, 3}, /*gz=*/false);
  expect_error([&] { load_mnist_split(dir_, true); },
               {"train-labels-idx1-ubyte", "label 10 at index 2", "outside [0, 10)"});
  // The same labels are fine for a model with more classes, and rejected for fewer.
  EXPECT_EQ(load_mnist_split(dir_, true, -1, 11).classes, 11);
  expect_error([&] { load_mnist_split(dir_, true, -1, 3); },
               {"train-labels-idx1-ubyte", "label 10 at index 2", "outside [0, 3)"});
}

TEST_F(DataTest, SplitRejectsWrongTypeOrRank) {
  write_raw(path("train-images-idx3-ubyte"), idx_bytes(0x0D, {1, 1, 1}, iota_bytes(4)));
  write_raw(path("train-labels-idx1-ubyte"), idx_bytes(0x08, {1}, {0}));
  expect_error([&] { load_mnist_split(dir_, true); },
               {"train-images-idx3-ubyte", "type byte is 0x0d", "expected 0x08"});
  write_raw(path("train-images-idx3-ubyte"), idx_bytes(0x08, {1, 1, 1}, {9}));
  write_raw(path("train-labels-idx1-ubyte"), idx_bytes(0x08, {1, 1}, {0}));
  expect_error([&] { load_mnist_split(dir_, true); },
               {"train-labels-idx1-ubyte", "rank is 2", "expected rank 1"});
  write_raw(path("train-labels-idx1-ubyte"), idx_bytes(0x09, {1}, {0}));
  expect_error([&] { load_mnist_split(dir_, true); },
               {"train-labels-idx1-ubyte", "type byte is 0x09", "expected 0x08"});
}

TEST_F(DataTest, SplitRejectsEmptyOrMissingDirectory) {
  expect_error([&] { load_mnist_split(dir_, true); },
               {dir_, "train images", "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"});
  expect_error([&] { load_mnist_split(dir_, false); }, {dir_, "t10k-images-idx3-ubyte.gz"});
  // Images present, labels missing: names the label files looked for.
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes(0x08, {1, 1, 1}, {9}));
  expect_error([&] { load_mnist_split(dir_, true); },
               {dir_, "train labels", "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte"});
  expect_error([&] { load_mnist_split(path("absent"), true); },
               {path("absent"), "does not exist"});
}

TEST_F(DataTest, LoadsRealFashionMnistTestSplit) {
  const std::string real = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fs::path(real) / "t10k-images-idx3-ubyte.gz") &&
      !fs::exists(fs::path(real) / "t10k-images-idx3-ubyte"))
    GTEST_SKIP() << real << " is not present";
  const Dataset d = load_mnist_split(real, false);
  EXPECT_EQ(d.images.shape(), (Shape{10000, 1, 28, 28}));
  ASSERT_EQ(d.size(), 10000);
  std::vector<int> per_class(10, 0);
  for (int32_t l : d.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++per_class[l];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 1000) << "class " << c;
  float lo = 1.0f, hi = 0.0f;
  for (int64_t i = 0; i < d.images.numel(); ++i) {
    lo = std::min(lo, d.images.data()[i]);
    hi = std::max(hi, d.images.data()[i]);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

// ---- Normalization ----

TEST(Normalization, KnownValues) {
  const Tensor t = Tensor::from(Shape{1, 1, 2, 2}, {0.0f, 1.0f, 2.0f, 3.0f});
  const Normalization n = compute_normalization(t);
  EXPECT_FLOAT_EQ(n.mean, 1.5f);
  EXPECT_FLOAT_EQ(n.std, static_cast<float>(std::sqrt(1.25)));  // population std
  // Constant data: centred only, never divided by zero.
  const Normalization c = compute_normalization(Tensor::full(Shape{3, 1, 2, 2}, 0.25f));
  EXPECT_FLOAT_EQ(c.mean, 0.25f);
  EXPECT_EQ(c.std, 1.0f);
  expect_error([] { compute_normalization(Tensor(Shape{0, 1, 2, 2})); }, {"empty"});
  Tensor x = t.clone();
  expect_error([&] { normalize_inplace(x, Normalization{0.0f, 0.0f}); }, {"std > 0"});
}

TEST(Normalization, NormalizedDataHasZeroMeanUnitStd) {
  Rng rng(7);
  Tensor t(Shape{64, 1, 8, 8});
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<float>(0.3 + 0.2 * rng.normal() + (i % 7 == 0 ? 0.5 : 0.0));
  const Normalization n = compute_normalization(t);
  normalize_inplace(t, n);
  double sum = 0.0, sq = 0.0;
  for (int64_t i = 0; i < t.numel(); ++i) sum += t.data()[i];
  const double mean = sum / t.numel();
  for (int64_t i = 0; i < t.numel(); ++i) sq += (t.data()[i] - mean) * (t.data()[i] - mean);
  EXPECT_NEAR(mean, 0.0, 1e-5);
  EXPECT_NEAR(std::sqrt(sq / t.numel()), 1.0, 1e-5);
}

// ---- Shuffling ----

TEST(Shuffle, IsADeterministicPermutation) {
  for (int64_t n : {0, 1, 2, 10, 1000}) {
    Rng a(42), b(42);
    const auto p = shuffled_indices(n, a);
    EXPECT_EQ(p, shuffled_indices(n, b)) << n;
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << n;
  }
  Rng a(1), b(2);
  EXPECT_NE(shuffled_indices(1000, a), shuffled_indices(1000, b));
  // Successive calls on one generator give different orders.
  Rng c(3);
  EXPECT_NE(shuffled_indices(1000, c), shuffled_indices(1000, c));
  // Every element reaches every position: a crude uniformity check over 3 elements.
  Rng d(5);
  int counts[3][3] = {};
  for (int trial = 0; trial < 3000; ++trial) {
    const auto p = shuffled_indices(3, d);
    for (int pos = 0; pos < 3; ++pos) ++counts[pos][p[pos]];
  }
  for (auto& row : counts)
    for (int c3 : row) EXPECT_NEAR(c3, 1000, 120);
}

// ---- Batching ----

TEST(GatherBatch, CopiesSamplesAndLabels) {
  Dataset data;
  data.images = Tensor(Shape{5, 2, 2, 3});  // sample i filled with 100 i + offset
  for (int64_t i = 0; i < data.images.numel(); ++i)
    data.images.data()[i] = static_cast<float>(100 * (i / 12) + i % 12);
  data.labels = {4, 3, 2, 1, 0};
  Tensor batch;
  std::vector<int32_t> labels;
  const int64_t idx[] = {3, 0, 4};
  gather_batch(batch, labels, data, idx, 3);
  EXPECT_EQ(batch.shape(), (Shape{3, 2, 2, 3}));
  EXPECT_EQ(labels, (std::vector<int32_t>{1, 4, 0}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t k = 0; k < 12; ++k)
      ASSERT_EQ(batch.data()[b * 12 + k], static_cast<float>(100 * idx[b] + k));
  // Same shape: the buffer is reused. Shorter last batch: reshaped.
  const float* before = batch.data();
  const int64_t idx2[] = {1, 1, 2};
  gather_batch(batch, labels, data, idx2, 3);
  EXPECT_EQ(batch.data(), before);
  EXPECT_EQ(labels, (std::vector<int32_t>{3, 3, 2}));
  EXPECT_EQ(batch.data()[12 + 4], 104.0f);
  gather_batch(batch, labels, data, idx + 2, 1);
  EXPECT_EQ(batch.shape(), (Shape{1, 2, 2, 3}));
  EXPECT_EQ(labels, (std::vector<int32_t>{0}));
  EXPECT_EQ(batch.data()[5], 405.0f);
  const int64_t bad[] = {1, 5};
  expect_error([&] { gather_batch(batch, labels, data, bad, 2); },
               {"index 5 at batch position 1", "5 samples"});
}

// ---- Augmentation ----

// Whether out equals in shifted by (dy, dx) with zero fill, then mirrored if flip.
bool is_crop_flip(const float* out, const float* in, int64_t c, int64_t h, int64_t w, int64_t dy,
                  int64_t dx, bool flip) {
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sy = y + dy, sx = (flip ? w - 1 - x : x) + dx;
        const float want =
            (sy >= 0 && sy < h && sx >= 0 && sx < w) ? in[(ch * h + sy) * w + sx] : 0.0f;
        if (out[(ch * h + y) * w + x] != want) return false;
      }
  return true;
}

TEST(Augment, EveryOutputIsAShiftedCropOrItsMirror) {
  const int64_t n = 32, c = 2, h = 5, w = 6;
  for (int64_t pad : {0, 1, 2}) {
    SCOPED_TRACE("pad " + std::to_string(pad));
    Tensor input(Shape{n, c, h, w});
    Rng fill(11);
    for (int64_t i = 0; i < input.numel(); ++i) input.data()[i] = 1.0f + fill.uniform(0.0f, 1.0f);
    Tensor batch = input.clone();
    Rng rng(99);
    augment_crop_flip(batch, pad, rng);
    EXPECT_EQ(batch.shape(), input.shape());
    int flips = 0, shifts = 0;
    for (int64_t s = 0; s < n; ++s) {
      const float* in = input.data() + s * c * h * w;
      const float* out = batch.data() + s * c * h * w;
      bool found = false;
      for (int64_t dy = -pad; dy <= pad && !found; ++dy)
        for (int64_t dx = -pad; dx <= pad && !found; ++dx)
          for (bool flip : {false, true})
            if (is_crop_flip(out, in, c, h, w, dy, dx, flip)) {
              found = true;
              flips += flip;
              shifts += (dy != 0 || dx != 0);
              break;
            }
      EXPECT_TRUE(found) << "sample " << s << " is no crop or mirrored crop of its input";
    }
    // With 32 samples both outcomes of each draw occur (fixed seed, so this is deterministic).
    EXPECT_GT(flips, 0);
    EXPECT_LT(flips, n);
    if (pad > 0) {
      EXPECT_GT(shifts, 0);
    } else {
      EXPECT_EQ(shifts, 0);
    }

    // Deterministic: the same seed gives the same batch.
    Tensor again = input.clone();
    Rng rng2(99);
    augment_crop_flip(again, pad, rng2);
    for (int64_t i = 0; i < batch.numel(); ++i) ASSERT_EQ(again.data()[i], batch.data()[i]);
  }
  Tensor b3(Shape{2, 3, 4});
  Rng rng(1);
  expect_error([&] { augment_crop_flip(b3, 1, rng); }, {"(N, C, H, W)"});
  Tensor b4(Shape{1, 1, 2, 2});
  expect_error([&] { augment_crop_flip(b4, -1, rng); }, {"pad is -1"});
}

}  // namespace
