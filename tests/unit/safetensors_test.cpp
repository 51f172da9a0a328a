// safetensors reader/writer and the atomic file writer: round trips, the exact byte layout of
// a small file built by hand from the format description, and one test per way a file can be
// malformed, each checking that the message names the file and the fault.
#include "normnet/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace fs = std::filesystem;
using namespace normnet;
using namespace std::string_literals;

namespace {

// A fresh, empty directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("normnet_st_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

void put_u64_le(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A file from a header (used as given, no padding) and a data section.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> f;
  put_u64_le(f, header.size());
  f.insert(f.end(), header.begin(), header.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

// Parses bytes that must be rejected; returns the message.
std::string rejection(const std::vector<uint8_t>& file) {
  try {
    parse_safetensors(file, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "the file was accepted";
  return "";
}

#define EXPECT_REJECTED(file, ...)                                          \
  do {                                                                      \
    const std::string msg = rejection(file);                                \
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;       \
    for (const char* part : {__VA_ARGS__})                                  \
      EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part   \
                                                   << "' in: " << msg;      \
  } while (0)

// A one-tensor header with the given entry text.
std::string one(const std::string& entry) { return "{\"t\":" + entry + "}"; }

}  // namespace

// --- round trips ---

TEST_F(SafetensorsTest, RoundTripF32I64MetadataEmptyAndScalar) {
  // A non-contiguous view: the transpose of a 2x3 tensor.
  Tensor base = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor transposed = base.permute({1, 0});  // (3, 2)
  ASSERT_FALSE(transposed.is_contiguous());
  const std::vector<int64_t> labels = {7, -1, INT64_MAX, INT64_MIN};
  const int64_t step = 42;

  StFile f;
  f.put_f32("layer.weight", transposed);
  f.put_f32("empty", Tensor({2, 0, 3}));
  f.put_f32("scalar", Tensor::full(Shape(std::vector<int64_t>{}), 2.5f));
  f.put_i64("labels", {2, 2}, labels.data());
  f.put_i64("step", {}, &step);
  f.put_i64("no_labels", {0}, nullptr);
  f.metadata["format"] = "pt";
  f.metadata["note"] = "ünïcode \"quoted\" \\ and\nnewline";
  write_safetensors(path("m.safetensors"), f);

  const StFile g = read_safetensors(path("m.safetensors"));
  EXPECT_EQ(g.source, path("m.safetensors"));
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), 6u);

  Tensor w = g.get_f32("layer.weight");
  EXPECT_EQ(w.shape(), Shape({3, 2}));
  const std::vector<float> expect_w = {1, 4, 2, 5, 3, 6};
  EXPECT_EQ(std::vector<float>(w.data(), w.data() + 6), expect_w);

  Tensor e = g.get_f32("empty");
  EXPECT_EQ(e.shape(), Shape({2, 0, 3}));
  EXPECT_EQ(e.numel(), 0);

  Tensor s = g.get_f32("scalar");
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.data()[0], 2.5f);

  EXPECT_EQ(g.get_i64("labels"), labels);
  EXPECT_EQ(g.tensors.at("labels").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(g.get_i64("step"), std::vector<int64_t>{42});
  EXPECT_TRUE(g.tensors.at("step").shape.empty());
  EXPECT_TRUE(g.get_i64("no_labels").empty());

  // Writing what was read gives the same bytes.
  EXPECT_EQ(serialize_safetensors(g), read_file(path("m.safetensors")));
}

TEST_F(SafetensorsTest, RoundTripRawDtypes) {
  StFile f;
  const uint8_t b[3] = {1, 0, 1};
  const uint16_t h[2] = {0x3C00, 0xC000};  // F16 1.0, -2.0
  const double d = 3.25;
  f.put_raw("mask", "BOOL", {3}, b, 3);
  f.put_raw("half", "F16", {2}, h, 4);
  f.put_raw("double", "F64", {1, 1}, &d, 8);
  const StFile g = parse_safetensors(serialize_safetensors(f), "raw");
  for (const auto& [name, t] : f.tensors) {
    ASSERT_TRUE(g.has(name)) << name;
    EXPECT_EQ(g.tensors.at(name).dtype, t.dtype);
    EXPECT_EQ(g.tensors.at(name).shape, t.shape);
    EXPECT_EQ(g.tensors.at(name).bytes, t.bytes);
  }
}

TEST_F(SafetensorsTest, EmptyFileHasNoTensors) {
  const std::vector<uint8_t> bytes = serialize_safetensors(StFile{});
  // "{}" padded to 8 bytes.
  EXPECT_EQ(bytes, make_file("{}      ", {}));
  const StFile g = parse_safetensors(bytes, "empty");
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_TRUE(g.metadata.empty());
}

// --- the exact layout ---

TEST_F(SafetensorsTest, ByteExactLayout) {
  StFile f;
  f.put_f32("b", Tensor::from({2}, {1.0f, -2.0f}));
  const int64_t seven = 7;
  f.put_i64("a", {}, &seven);
  f.metadata["k"] = "v";

  // Metadata first, then tensors sorted by name, compact JSON, fields in the order dtype,
  // shape, data_offsets; data laid out in the same order.
  std::string header =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"a\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
  ASSERT_EQ(header.size(), 132u);
  header += "    ";  // padded with spaces to 136, a multiple of 8
  std::vector<uint8_t> expected = {136, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), header.begin(), header.end());
  const std::vector<uint8_t> data = {
      7,    0,    0,    0,    0, 0, 0, 0,     // a: int64 7
      0x00, 0x00, 0x80, 0x3F,                // b[0]: 1.0f
      0x00, 0x00, 0x00, 0xC0,                // b[1]: -2.0f
  };
  expected.insert(expected.end(), data.begin(), data.end());

  EXPECT_EQ(serialize_safetensors(f), expected);
  write_safetensors(path("x.safetensors"), f);
  EXPECT_EQ(read_file(path("x.safetensors")), expected);
}

TEST_F(SafetensorsTest, AcceptsReferenceWriterLayouts) {
  // The reference writer orders data by dtype before name, so data order need not follow name
  // order; key order inside an entry and the place of __metadata__ are free; the header may be
  // padded with trailing spaces; zero-byte tensors may sit anywhere, even at the same offset.
  const std::string header =
      "{\"z\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
      "\"a\":{\"shape\":[2],\"data_offsets\":[8,16],\"dtype\":\"F32\"},"
      "\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
      "\"e2\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
      "\"__metadata__\":{\"format\":\"pt\"}}      ";
  std::vector<uint8_t> data(16, 0);
  const double z = -1.5;
  const float a[2] = {0.5f, 4.0f};
  std::memcpy(data.data(), &z, 8);
  std::memcpy(data.data() + 8, a, 8);
  const StFile g = parse_safetensors(make_file(header, data), "ref");
  EXPECT_EQ(g.metadata.at("format"), "pt");
  Tensor t = g.get_f32("a");
  EXPECT_EQ(t.data()[0], 0.5f);
  EXPECT_EQ(t.data()[1], 4.0f);
  EXPECT_EQ(g.tensors.at("z").dtype, "F64");
  EXPECT_EQ(g.get_f32("e1").numel(), 0);
  EXPECT_TRUE(g.tensors.at("e2").bytes.empty());
}

// --- rejections: the container ---

TEST_F(SafetensorsTest, RejectsFileShorterThan8Bytes) {
  EXPECT_REJECTED(std::vector<uint8_t>({2, 0, 0, 0, 0}), "shorter than", "8");
  EXPECT_REJECTED(std::vector<uint8_t>{}, "shorter than");
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  std::vector<uint8_t> f = make_file("{}      ", {});
  f[0] = 9;  // one byte more than there is
  EXPECT_REJECTED(f, "header length 9", "past the end of the file");
  std::vector<uint8_t> g;
  put_u64_le(g, UINT64_MAX);  // must not wrap around
  EXPECT_REJECTED(g, "header length");
}

TEST_F(SafetensorsTest, RejectsHeaderOver100MB) {
  std::vector<uint8_t> f;
  put_u64_le(f, 100'000'001);
  f.push_back('{');
  EXPECT_REJECTED(f, "100000001", "100 MB");
}

TEST_F(SafetensorsTest, RejectsHeaderNotUtf8) {
  EXPECT_REJECTED(make_file("{\"a\xff\":{}}", {}), "UTF-8");
  // An overlong encoding of '/' and a lone surrogate are not UTF-8 either.
  EXPECT_REJECTED(make_file("{\"\xc0\xaf\":1}", {}), "UTF-8");
  EXPECT_REJECTED(make_file("{\"\xed\xa0\x80\":1}", {}), "UTF-8");
  // A truncated sequence at the end of the header.
  EXPECT_REJECTED(make_file("{}\xe2\x82", {}), "UTF-8");
}

TEST_F(SafetensorsTest, RejectsHeaderNotJson) {
  EXPECT_REJECTED(make_file("{\"t\":", {}), "not valid JSON");
  EXPECT_REJECTED(make_file("{} trailing", {}), "not valid JSON");
  EXPECT_REJECTED(make_file("{}\0\0\0\0\0\0"s, {}), "not valid JSON", "NUL");
  EXPECT_REJECTED(make_file("{}\0junk"s, {}), "not valid JSON", "NUL");
}

TEST_F(SafetensorsTest, RejectsHeaderNotStartingWithBrace) {
  EXPECT_REJECTED(make_file("  {}    ", {}), "start with '{'");
  EXPECT_REJECTED(make_file("[]      ", {}), "start with '{'");
  EXPECT_REJECTED(make_file("", {}), "start with '{'");
}

// --- rejections: tensor entries ---

TEST_F(SafetensorsTest, RejectsEntryMissingField) {
  EXPECT_REJECTED(make_file(one("{\"shape\":[1],\"data_offsets\":[0,4]}"), zeros(4)), "tensor 't'",
                  "missing 'dtype'");
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), zeros(4)),
                  "tensor 't'", "missing 'shape'");
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F32\",\"shape\":[1]}"), zeros(4)), "tensor 't'",
                  "missing 'data_offsets'");
}

TEST_F(SafetensorsTest, RejectsEntryWithWrongJsonTypes) {
  EXPECT_REJECTED(make_file(one("[1,2]"), {}), "tensor 't'", "expected an object");
  EXPECT_REJECTED(make_file(one("{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}"), zeros(4)),
                  "tensor 't'", "'dtype'", "expected a string");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}"), zeros(4)),
      "tensor 't'", "'shape'", "expected an array");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}"), zeros(4)),
      "tensor 't'", "'shape' element 0");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}"), zeros(4)),
      "tensor 't'", "'shape' element 0");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}"), zeros(4)),
      "tensor 't'", "'data_offsets'");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}"), zeros(4)),
      "tensor 't'", "'data_offsets'");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}"), zeros(4)),
      "tensor 't'", "'data_offsets'");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"), zeros(4)),
      "tensor 't'", "'data_offsets'");
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
                                "\"extra\":1}"),
                            zeros(4)),
                  "tensor 't'", "unexpected key 'extra'");
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F4\",\"shape\":[1],\"data_offsets\":[0,4]}"),
                            zeros(4)),
                  "tensor 't'", "unknown dtype 'F4'");
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}"),
                            zeros(4)),
                  "unknown dtype 'f32'");
  EXPECT_THROW(dtype_size("F4"), Error);
  EXPECT_EQ(dtype_size("BF16"), 2u);
}

TEST_F(SafetensorsTest, RejectsNegativeDimension) {
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}"), {}),
      "tensor 't'", "negative dimension -1");
  EXPECT_REJECTED(
      make_file(one("{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}"), zeros(16)),
      "tensor 't'", "negative dimension");
}

TEST_F(SafetensorsTest, RejectsShapeProductOverflow) {
  // 2^32 * 2^32 elements: the element count wraps to 0 in 64 bits, matching the empty span.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
                                "\"data_offsets\":[0,0]}"),
                            {}),
                  "tensor 't'", "overflows");
  // The element count fits but the byte count does not: 2^62 F32 elements.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                                "\"data_offsets\":[0,0]}"),
                            {}),
                  "tensor 't'", "overflows");
  // A dimension past int64.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[18446744073709551615],"
                                "\"data_offsets\":[0,0]}"),
                            {}),
                  "tensor 't'", "overflows");
}

TEST_F(SafetensorsTest, RejectsShapeNotMatchingByteSpan) {
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}"),
                            zeros(8)),
                  "tensor 't'", "needs 12 bytes", "span 8");
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}"),
                            zeros(4)),
                  "tensor 't'", "needs 8 bytes", "span 4");
}

// --- rejections: offsets ---

TEST_F(SafetensorsTest, RejectsOffsetsOutOfOrder) {
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}"),
                            zeros(8)),
                  "tensor 't'", "out of order");
}

TEST_F(SafetensorsTest, RejectsOverlappingOffsets) {
  const std::string header =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}";
  EXPECT_REJECTED(make_file(header, zeros(12)), "tensor 'b'", "overlap", "tensor 'a'");
  // Two tensors on the very same bytes.
  const std::string same =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  EXPECT_REJECTED(make_file(same, zeros(4)), "overlap");
}

TEST_F(SafetensorsTest, RejectsGapsBetweenTensors) {
  const std::string header =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}";
  EXPECT_REJECTED(make_file(header, zeros(12)), "tensor 'b'", "gap of 4 bytes");
  // The first tensor must start at offset 0.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}"),
                            zeros(8)),
                  "tensor 't'", "gap of 4 bytes");
}

TEST_F(SafetensorsTest, RejectsOffsetsNotCoveringDataSection) {
  // Trailing bytes nobody owns.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}"),
                            zeros(6)),
                  "do not cover the data section", "2 trailing bytes");
  EXPECT_REJECTED(make_file("{}", zeros(1)), "do not cover the data section");
  // Offsets past the end of the file.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}"),
                            zeros(4)),
                  "tensor 't'", "past the end of the data section");
}

// --- rejections: names and metadata ---

TEST_F(SafetensorsTest, RejectsDuplicateTensorNames) {
  const std::string header =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}";
  EXPECT_REJECTED(make_file(header, zeros(8)), "duplicate tensor name 'a'");
  // A duplicate field inside one entry.
  EXPECT_REJECTED(make_file(one("{\"dtype\":\"U8\",\"dtype\":\"F32\",\"shape\":[4],"
                                "\"data_offsets\":[0,4]}"),
                            zeros(4)),
                  "tensor 't'", "duplicate key 'dtype'");
  EXPECT_REJECTED(make_file("{\"__metadata__\":{},\"__metadata__\":{}}", {}),
                  "duplicate '__metadata__'");
}

TEST_F(SafetensorsTest, RejectsMetadataNotStringToString) {
  EXPECT_REJECTED(make_file("{\"__metadata__\":[\"a\"]}", {}), "__metadata__",
                  "expected an object");
  EXPECT_REJECTED(make_file("{\"__metadata__\":\"a\"}", {}), "__metadata__",
                  "expected an object");
  EXPECT_REJECTED(make_file("{\"__metadata__\":null}", {}), "__metadata__", "expected an object");
  EXPECT_REJECTED(make_file("{\"__metadata__\":{\"epoch\":3}}", {}),
                  "__metadata__ value for key 'epoch'", "expected a string");
  EXPECT_REJECTED(make_file("{\"__metadata__\":{\"m\":{\"x\":\"y\"}}}", {}),
                  "__metadata__ value for key 'm'");
  EXPECT_REJECTED(make_file("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", {}),
                  "duplicate key 'k' in __metadata__");
}

// --- typed access and writer checks ---

TEST_F(SafetensorsTest, TypedGettersNameTheTensor) {
  StFile f;
  const int64_t v = 1;
  f.put_i64("count", {}, &v);
  f.put_f32("w", Tensor({2}));
  f.put_f32("six_d", Tensor({1, 1, 1, 1, 1}));
  f.tensors["six_d"].shape = {1, 1, 1, 1, 1, 1};
  const StFile g = parse_safetensors(serialize_safetensors(f), "typed.safetensors");
  auto message = [&](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::string m = message([&] { g.get_f32("count"); });
  EXPECT_NE(m.find("'count'"), std::string::npos) << m;
  EXPECT_NE(m.find("I64"), std::string::npos) << m;
  EXPECT_NE(m.find("typed.safetensors"), std::string::npos) << m;
  m = message([&] { g.get_i64("w"); });
  EXPECT_NE(m.find("'w'"), std::string::npos) << m;
  EXPECT_NE(m.find("expected I64"), std::string::npos) << m;
  m = message([&] { g.get_f32("missing"); });
  EXPECT_NE(m.find("no tensor named 'missing'"), std::string::npos) << m;
  m = message([&] { g.get_f32("six_d"); });
  EXPECT_NE(m.find("'six_d'"), std::string::npos) << m;
  EXPECT_NE(m.find("rank 6"), std::string::npos) << m;
}

TEST_F(SafetensorsTest, WriterRejectsInconsistentTensors) {
  auto message = [&](const StFile& f) -> std::string {
    try {
      serialize_safetensors(f);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  StFile f;
  f.tensors["bad"] = StTensor{"F32", {3}, std::vector<uint8_t>(8)};
  EXPECT_NE(message(f).find("tensor 'bad'"), std::string::npos) << message(f);
  f.tensors.clear();
  f.tensors["x\xff"] = StTensor{"U8", {0}, {}};
  EXPECT_NE(message(f).find("UTF-8"), std::string::npos) << message(f);
  f.tensors.clear();
  f.tensors["__metadata__"] = StTensor{"U8", {0}, {}};
  EXPECT_NE(message(f).find("reserved"), std::string::npos) << message(f);
  f.tensors.clear();
  f.tensors["q"] = StTensor{"Q4", {0}, {}};
  EXPECT_NE(message(f).find("unknown dtype 'Q4'"), std::string::npos) << message(f);

  StFile g;
  EXPECT_THROW(g.put_raw("r", "F32", {2}, nullptr, 4), Error);
  EXPECT_THROW(g.put_raw("r", "F32", {-1}, nullptr, 0), Error);
  EXPECT_THROW(g.put_f32("undefined", Tensor()), Error);
}

// --- the atomic writer ---

TEST_F(SafetensorsTest, WriteFileAtomicLeavesNoTemporary) {
  write_file_atomic(path("out.bin"), std::string("first version"));
  write_file_atomic(path("out.bin"), std::string("second"));
  const std::vector<uint8_t> got = read_file(path("out.bin"));
  EXPECT_EQ(std::string(got.begin(), got.end()), "second");
  EXPECT_EQ(listing(), std::vector<std::string>{"out.bin"});
  write_file_atomic(path("empty.bin"), nullptr, 0);
  EXPECT_TRUE(read_file(path("empty.bin")).empty());
  EXPECT_EQ(listing(), (std::vector<std::string>{"empty.bin", "out.bin"}));
}

TEST_F(SafetensorsTest, WriteFileAtomicIntoMissingDirectoryThrows) {
  const std::string target = path("no_such_dir/out.bin");
  try {
    write_file_atomic(target, std::string("data"));
    ADD_FAILURE() << "writing into a missing directory succeeded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(target), std::string::npos) << m;
    EXPECT_NE(m.find(std::strerror(ENOENT)), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(dir_ / "no_such_dir"));
  EXPECT_TRUE(listing().empty());
}

TEST_F(SafetensorsTest, WriteFileAtomicOverDirectoryRemovesTemporary) {
  // The rename fails (the target is a non-empty directory) after the temporary was written.
  fs::create_directories(dir_ / "target" / "inside");
  EXPECT_THROW(write_file_atomic(path("target"), std::string("data")), Error);
  EXPECT_EQ(listing(), std::vector<std::string>{"target"});
}

TEST_F(SafetensorsTest, ReadFileNamesMissingPath) {
  try {
    read_file(path("missing.safetensors"));
    ADD_FAILURE() << "reading a missing file succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_safetensors(path("missing.safetensors")), Error);
}
