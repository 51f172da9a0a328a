// CIFAR-10 binary reader and the format dispatcher load_split, on small files the test writes:
// records decode to CHW images and labels across the five training files, `limit` stops early,
// the cifar-10-batches-bin subfolder is found, and every fault (missing file, empty file, size
// not a multiple of 3073, label > 9 or >= classes, empty or absent directory) is an error naming
// the file or directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/error.h"

namespace fs = std::filesystem;

namespace normnet {
namespace {

constexpr size_t kRecord = 3073;

// `n` records; record i has label (first_label + i) % 10 and pixel p = (i * 7 + p) % 256.
std::vector<uint8_t> records(int n, int first_label) {
  std::vector<uint8_t> b;
  for (int i = 0; i < n; ++i) {
    b.push_back(static_cast<uint8_t>((first_label + i) % 10));
    for (int p = 0; p < 3072; ++p) b.push_back(static_cast<uint8_t>((i * 7 + p) % 256));
  }
  return b;
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

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

class CifarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("normnet_cifar_test_" + std::to_string(getpid()) + "_" + info->name())).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // data_batch_k.bin with 2 records each (labels 2k-2, 2k-1), test_batch.bin with 3.
  void write_good(const std::string& sub = "") {
    const fs::path d = fs::path(dir_) / sub;
    fs::create_directories(d);
    for (int k = 1; k <= 5; ++k)
      write_raw((d / ("data_batch_" + std::to_string(k) + ".bin")).string(), records(2, 2 * k - 2));
    write_raw((d / "test_batch.bin").string(), records(3, 7));
  }
  std::string dir_;
};

TEST_F(CifarTest, ReadsRecordsAsChwImagesAcrossTheFiveTrainingFiles) {
  write_good();
  EXPECT_TRUE(is_cifar10_dir(dir_));
  const Dataset train = load_cifar10_split(dir_, true);
  ASSERT_EQ(train.size(), 10);
  EXPECT_EQ(train.images.shape(), (Shape{10, 3, 32, 32}));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(train.labels[i], i) << i;  // file k holds 2k-2, 2k-1
  // Sample 3 is record 1 of data_batch_2.bin: pixel p = (7 + p) % 256, red plane first.
  for (int c = 0; c < 3; ++c)
    for (int y : {0, 5, 31})
      for (int x : {0, 17, 31}) {
        const int p = c * 1024 + y * 32 + x;
        EXPECT_FLOAT_EQ(train.images.at({3, c, y, x}), static_cast<float>((7 + p) % 256) / 255.0f);
      }
  const Dataset test = load_cifar10_split(dir_, false);
  ASSERT_EQ(test.size(), 3);
  EXPECT_EQ(test.labels, (std::vector<int32_t>{7, 8, 9}));
  // The dispatcher picks CIFAR-10 from the files present.
  const Dataset via = load_split(dir_, false);
  EXPECT_EQ(via.labels, test.labels);
  EXPECT_EQ(via.images.shape(), test.images.shape());
}

TEST_F(CifarTest, LimitKeepsTheFirstSamples) {
  write_good();
  const Dataset three = load_cifar10_split(dir_, true, 3);
  ASSERT_EQ(three.size(), 3);
  EXPECT_EQ(three.labels, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(three.images.shape(), (Shape{3, 3, 32, 32}));
  EXPECT_EQ(load_cifar10_split(dir_, true, 100).size(), 10);  // above N keeps all
}

TEST_F(CifarTest, FindsTheArchiveSubfolder) {
  write_good("cifar-10-batches-bin");
  EXPECT_TRUE(is_cifar10_dir(dir_));
  EXPECT_EQ(load_split(dir_, true).size(), 10);
}

TEST_F(CifarTest, MissingTrainingFileIsNamed) {
  write_good();
  fs::remove(path("data_batch_4.bin"));
  expect_error([&] { load_cifar10_split(dir_, true); }, {dir_, "data_batch_4.bin"});
  EXPECT_EQ(load_cifar10_split(dir_, false).size(), 3);  // the test split does not need it
  fs::remove(path("test_batch.bin"));
  expect_error([&] { load_split(dir_, false); }, {dir_, "test_batch.bin"});
}

TEST_F(CifarTest, SizeNotAMultipleOfTheRecordIsAnError) {
  write_good();
  auto b = records(2, 0);
  b.pop_back();  // truncated: 2 * 3073 - 1 bytes
  write_raw(path("data_batch_3.bin"), b);
  expect_error([&] { load_cifar10_split(dir_, true); },
               {path("data_batch_3.bin"), std::to_string(2 * kRecord - 1), "3073"});
  b = records(1, 0);
  b.push_back(0);  // one byte too many
  write_raw(path("test_batch.bin"), b);
  expect_error([&] { load_cifar10_split(dir_, false); }, {path("test_batch.bin"), "not a multiple"});
}

TEST_F(CifarTest, EmptyFileIsAnError) {
  write_good();
  write_raw(path("data_batch_1.bin"), {});
  expect_error([&] { load_cifar10_split(dir_, true); }, {path("data_batch_1.bin"), "empty"});
}

TEST_F(CifarTest, LabelAboveNineIsAnError) {
  write_good();
  auto b = records(3, 0);
  b[2 * kRecord] = 10;  // record 2
  write_raw(path("test_batch.bin"), b);
  expect_error([&] { load_cifar10_split(dir_, false); },
               {path("test_batch.bin"), "record 2", "label 10", "0..9"});
  b[2 * kRecord] = 255;
  write_raw(path("test_batch.bin"), b);
  expect_error([&] { load_cifar10_split(dir_, false); }, {path("test_batch.bin"), "label 255"});
}

TEST_F(CifarTest, LabelOutsideTheModelsClassesIsAnError) {
  write_good();
  EXPECT_EQ(load_cifar10_split(dir_, false, -1, 12).classes, 12);
  expect_error([&] { load_cifar10_split(dir_, false, -1, 8); },
               {path("test_batch.bin"), "label 8", "8 classes"});
}

TEST_F(CifarTest, EmptyOrAbsentDirectoryIsAnError) {
  EXPECT_FALSE(is_cifar10_dir(dir_));
  expect_error([&] { load_split(dir_, true); }, {dir_, "neither", "MNIST", "CIFAR-10"});
  expect_error([&] { load_cifar10_split(dir_, true); }, {dir_, "data_batch_1.bin"});
  expect_error([&] { load_cifar10_split(path("absent"), true); }, {path("absent"), "does not exist"});
  expect_error([&] { load_split(path("absent"), true); }, {path("absent")});
}

}  // namespace
}  // namespace normnet
