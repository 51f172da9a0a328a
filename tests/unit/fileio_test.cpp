// read_file and write_file_atomic: round trips, and errors that name the path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace fs = std::filesystem;
using namespace normnet;

namespace {

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("normnet_fileio_test_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Files in the directory, so tests can check no temporary is left behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }
  fs::path dir_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(FileIoTest, WriteThenReadRoundTripsAndReplaces) {
  std::vector<uint8_t> big(300000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 31);
  write_file_atomic(path("a.bin"), big.data(), big.size());
  EXPECT_EQ(read_file(path("a.bin")), big);
  write_file_atomic(path("a.bin"), std::string("short"));
  const auto got = read_file(path("a.bin"));
  EXPECT_EQ(std::string(got.begin(), got.end()), "short");
  write_file_atomic(path("e.bin"), nullptr, 0);
  EXPECT_TRUE(read_file(path("e.bin")).empty());
  EXPECT_EQ(listing().size(), 2u);  // a.bin, e.bin: no temporaries left
}

TEST_F(FileIoTest, ReadErrorsNameThePath) {
  const std::string missing = error_of([&] { read_file(path("missing.bin")); });
  EXPECT_NE(missing.find(path("missing.bin")), std::string::npos) << missing;
  EXPECT_NE(missing.find("No such file"), std::string::npos) << missing;
  const std::string dir = error_of([&] { read_file(dir_.string()); });
  EXPECT_NE(dir.find(dir_.string()), std::string::npos) << dir;
  EXPECT_NE(dir.find("directory"), std::string::npos) << dir;
}

TEST_F(FileIoTest, WriteErrorsNameThePathAndLeaveNoTemporary) {
  const std::string p = path("no/such/dir/x.bin");
  const std::string msg = error_of([&] { write_file_atomic(p, std::string("x")); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  // The target is an existing directory: the temporary is written, the rename fails and the
  // temporary is removed.
  fs::create_directories(path("target"));
  const std::string ren = error_of([&] { write_file_atomic(path("target"), std::string("x")); });
  EXPECT_NE(ren.find(path("target")), std::string::npos) << ren;
  EXPECT_EQ(listing(), std::vector<std::string>{"target"});
}

}  // namespace
