// safetensors reader and writer (see include/normnet/safetensors.h).
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON header, space padded][data section].
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}, offsets
// relative to the start of the data section; "__metadata__" optionally maps strings to strings.
// The reader trusts nothing: every length, offset and shape is checked against the file before
// a byte of data is copied, and the tensors must tile the data section exactly, as the reference
// implementation (huggingface/safetensors) requires. The writer produces what the reference
// writer produces for a single dtype: compact JSON, "__metadata__" first, fields in the order
// dtype, shape, data_offsets, header padded with spaces to a multiple of 8 bytes.
#include "normnet/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "normnet/error.h"
#include "normnet/fileio.h"

namespace normnet {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts need byte swapping here");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

struct DtypeInfo {
  const char* name;
  size_t size;
};
// Every dtype of the format; the ones normnet computes with are F32 and I64.
constexpr DtypeInfo kDtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    {"I64", 8}, {"I32", 4}, {"I16", 2},  {"I8", 1},   {"U64", 8},     {"U32", 4},
    {"U16", 2}, {"U8", 1},  {"BOOL", 1},
};

size_t find_dtype_size(const std::string& dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (dtype == d.name) return d.size;
  return 0;
}

std::string dtype_list() {
  std::string s;
  for (const DtypeInfo& d : kDtypes) {
    if (!s.empty()) s += ' ';
    s += d.name;
  }
  return s;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// Bytes of a tensor of this shape and dtype size, or false on overflow of uint64.
bool byte_count(const std::vector<int64_t>& shape, size_t elem_size, uint64_t& bytes) {
  uint64_t n = elem_size;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  bytes = n;
  return true;
}

template <typename... Parts>
[[noreturn]] void bad_file(const std::string& what, const Parts&... parts) {
  fail("safetensors file '", what, "': ", parts...);
}

// The offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF), or npos if all of s is.
size_t invalid_utf8_at(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string::npos;
}

// nlohmann's parser keeps the last of duplicate keys without a word; this callback notes the
// first duplicate at any depth so the reader can reject it.
struct DuplicateFinder {
  struct Frame {
    std::set<std::string> keys;
    std::string owner;  // the key whose value this object is ("" for the root)
    std::string last_key;
  };
  std::vector<Frame> frames;
  bool found = false;
  size_t depth = 0;  // 1: a top-level key
  std::string owner, key;

  struct TooDeep {};
  static constexpr int kMaxDepth = 16;  // a header nests 3 levels ({name: {shape: [...]}})

  bool operator()(int nesting, json::parse_event_t event, json& parsed) {
    // Parsing is iterative, but dump() (error messages) and other walks recurse: a header of
    // 300000 nested '[' overflowed the stack (found with fuzz/fuzz_safetensors.cpp).
    if (nesting > kMaxDepth) throw TooDeep{};
    switch (event) {
      case json::parse_event_t::object_start:
        frames.push_back({{}, frames.empty() ? std::string() : frames.back().last_key, {}});
        break;
      case json::parse_event_t::object_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case json::parse_event_t::key:
        if (!frames.empty() && parsed.is_string()) {
          Frame& f = frames.back();
          f.last_key = parsed.get<std::string>();
          if (!f.keys.insert(f.last_key).second && !found) {
            found = true;
            depth = frames.size();
            owner = f.owner;
            key = f.last_key;
          }
        }
        break;
      default:
        break;
    }
    return true;
  }
};

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// Reads an integer JSON value into out; false if it is not an integer or is outside
// [min, max].
bool get_int(const json& v, int64_t min, uint64_t max, int64_t& out, bool& negative) {
  negative = false;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > max) return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    negative = i < 0;
    if (i < min || (i >= 0 && static_cast<uint64_t>(i) > max)) return false;
    out = i;
    return true;
  }
  return false;
}

Entry parse_entry(const std::string& what, const std::string& name, const json& v,
                  uint64_t data_size) {
  auto bad = [&](const auto&... parts) { bad_file(what, "tensor '", name, "': ", parts...); };
  if (!v.is_object()) bad("entry is a JSON ", v.type_name(), ", expected an object");
  for (const auto& [k, unused] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      bad("unexpected key '", k, "' (expected dtype, shape, data_offsets)");
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!v.contains(k)) bad("missing '", k, "'");
  Entry e;
  e.name = name;

  const json& dtype = v["dtype"];
  if (!dtype.is_string()) bad("'dtype' is a JSON ", dtype.type_name(), ", expected a string");
  e.dtype = dtype.get<std::string>();
  const size_t elem_size = find_dtype_size(e.dtype);
  if (elem_size == 0) bad("unknown dtype '", e.dtype, "' (expected one of ", dtype_list(), ")");

  const json& shape = v["shape"];
  if (!shape.is_array()) bad("'shape' is a JSON ", shape.type_name(), ", expected an array");
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t d = 0;
    bool negative = false;
    if (!get_int(shape[i], 0, INT64_MAX, d, negative)) {
      if (negative) bad("negative dimension ", shape[i].dump(), " at index ", i, " of 'shape'");
      if (shape[i].is_number_integer())
        bad("dimension ", shape[i].dump(), " at index ", i, " of 'shape' overflows int64");
      bad("'shape' element ", i, " is ", shape[i].dump(), ", expected a non-negative integer");
    }
    e.shape.push_back(d);
  }

  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    bad("'data_offsets' is ", offsets.dump(), ", expected an array of two integers [begin, end]");
  int64_t se[2];
  for (int i = 0; i < 2; ++i) {
    bool negative = false;
    if (!get_int(offsets[i], 0, INT64_MAX, se[i], negative))
      bad("'data_offsets' is ", offsets.dump(), ", expected two non-negative integers");
  }
  e.begin = static_cast<uint64_t>(se[0]);
  e.end = static_cast<uint64_t>(se[1]);
  if (e.begin > e.end)
    bad("data_offsets [", e.begin, ", ", e.end, "] are out of order (end before begin)");
  if (e.end > data_size)
    bad("data_offsets [", e.begin, ", ", e.end, "] run past the end of the data section (",
        data_size, " bytes)");

  uint64_t bytes = 0;
  if (!byte_count(e.shape, elem_size, bytes))
    bad("shape ", shape_str(e.shape), " of dtype ", e.dtype,
        " overflows: its byte count does not fit in 64 bits");
  if (bytes != e.end - e.begin)
    bad("shape ", shape_str(e.shape), " of dtype ", e.dtype, " needs ", bytes,
        " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin);
  return e;
}

std::string where(const std::string& source) {
  return source.empty() ? std::string("safetensors") : "safetensors file '" + source + "'";
}

// JSON string literal for s; names the item at fault if s is not valid UTF-8.
std::string quoted(const std::string& s, const std::string& item) {
  size_t at = invalid_utf8_at(s);
  if (at != std::string::npos)
    fail("safetensors: cannot write ", item, ": not valid UTF-8 (byte ", at, ")");
  return json(s).dump();
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  const size_t n = find_dtype_size(dtype);
  if (n == 0) fail("unknown safetensors dtype '", dtype, "' (expected one of ", dtype_list(), ")");
  return n;
}

StFile parse_safetensors(const std::vector<uint8_t>& file, const std::string& what) {
  if (file.size() < 8)
    bad_file(what, "file is ", file.size(), " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | file[i];
  if (header_len > kMaxHeaderBytes)
    bad_file(what, "header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes,
             " bytes (100 MB)");
  if (header_len > file.size() - 8)
    bad_file(what, "header length ", header_len, " runs past the end of the file (",
             file.size() - 8, " bytes follow the length)");
  const std::string header(reinterpret_cast<const char*>(file.data()) + 8, header_len);
  const uint64_t data_size = file.size() - 8 - header_len;
  const uint8_t* data = file.data() + 8 + header_len;

  const size_t bad_byte = invalid_utf8_at(header);
  if (bad_byte != std::string::npos)
    bad_file(what, "header is not valid UTF-8 (byte ", bad_byte, " of the header)");
  // nlohmann's parser takes a NUL byte for the end of input; JSON allows none outside strings
  // (and inside them only escaped), so "{}\0junk" must not pass as "{}".
  const size_t nul = header.find('\0');
  if (nul != std::string::npos)
    bad_file(what, "header is not valid JSON: NUL byte at byte ", nul, " of the header");
  if (header.empty() || header[0] != '{')
    bad_file(what, "header does not start with '{' (a JSON object is expected)");

  DuplicateFinder dups;
  json root;
  try {
    root = json::parse(header, std::ref(dups));
  } catch (const json::exception& e) {
    bad_file(what, "header is not valid JSON: ", e.what());
  } catch (const DuplicateFinder::TooDeep&) {
    bad_file(what, "header nests deeper than ", DuplicateFinder::kMaxDepth, " levels");
  }
  if (!root.is_object()) bad_file(what, "header is not a JSON object");
  if (dups.found) {
    if (dups.depth == 1 && dups.key == "__metadata__")
      bad_file(what, "duplicate '__metadata__' in the header");
    if (dups.depth == 1) bad_file(what, "duplicate tensor name '", dups.key, "' in the header");
    if (dups.owner == "__metadata__")
      bad_file(what, "duplicate key '", dups.key, "' in __metadata__");
    bad_file(what, "tensor '", dups.owner, "': duplicate key '", dups.key, "'");
  }

  StFile out;
  out.source = what;
  std::vector<Entry> entries;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (!value.is_object())
        bad_file(what, "__metadata__ is a JSON ", value.type_name(),
                 ", expected an object mapping strings to strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          bad_file(what, "__metadata__ value for key '", k, "' is a JSON ", v.type_name(),
                   ", expected a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(what, name, value, data_size));
  }

  // The tensors must tile [0, data_size) with neither gaps nor overlaps, in some order.
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < covered)
      bad_file(what, "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end,
               "] overlap tensor '", prev->name, "' [", prev->begin, ", ", prev->end, "]");
    if (e->begin > covered)
      bad_file(what, "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end,
               "] leave a gap of ", e->begin - covered, " bytes after offset ", covered,
               " of the data section");
    covered = e->end;
    prev = e;
  }
  if (covered != data_size)
    bad_file(what, "the tensors cover ", covered, " bytes but the data section has ", data_size,
             " bytes: data_offsets do not cover the data section exactly (",
             data_size - covered, " trailing bytes)");

  for (const Entry& e : entries) {
    StTensor& t = out.tensors[e.name];
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.bytes.assign(data + e.begin, data + e.end);
  }
  return out;
}

StFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

std::vector<uint8_t> serialize_safetensors(const StFile& f) {
  std::string header = "{";
  if (!f.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : f.metadata) {
      if (!first) header += ",";
      first = false;
      header += quoted(k, "__metadata__ key '" + k + "'") + ":" +
                quoted(v, "__metadata__ value for key '" + k + "'");
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& entry : f.tensors) {
    // Not a structured binding: clang 14 (the fuzzing build) cannot capture those in a lambda.
    const std::string& name = entry.first;
    const StTensor& t = entry.second;
    auto bad = [&](const auto&... parts) {
      fail("safetensors: cannot write tensor '", name, "': ", parts...);
    };
    if (name == "__metadata__") bad("the name is reserved for metadata");
    const size_t elem_size = find_dtype_size(t.dtype);
    if (elem_size == 0) bad("unknown dtype '", t.dtype, "' (expected one of ", dtype_list(), ")");
    for (int64_t d : t.shape)
      if (d < 0) bad("negative dimension in shape ", shape_str(t.shape));
    uint64_t bytes = 0;
    if (!byte_count(t.shape, elem_size, bytes)) bad("shape ", shape_str(t.shape), " overflows");
    if (bytes != t.bytes.size())
      bad("shape ", shape_str(t.shape), " of dtype ", t.dtype, " needs ", bytes, " bytes but ",
          t.bytes.size(), " are given");
    if (header.size() > 1) header += ",";
    header += quoted(name, "tensor name '" + name + "'");
    header += ":{\"dtype\":\"";
    header += t.dtype;
    header += "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + bytes);
    header += "]}";
    offset += bytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const auto& [name, t] : f.tensors) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const StFile& f) {
  const std::vector<uint8_t> bytes = serialize_safetensors(f);
  write_file_atomic(path, bytes.data(), bytes.size());
}

// --- typed helpers ---

void StFile::put_raw(const std::string& name, const std::string& dtype,
                     const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  auto bad = [&](const auto&... parts) {
    fail(where(source), ": cannot store tensor '", name, "': ", parts...);
  };
  if (name == "__metadata__") bad("the name is reserved for metadata");
  const size_t elem_size = find_dtype_size(dtype);
  if (elem_size == 0) bad("unknown dtype '", dtype, "' (expected one of ", dtype_list(), ")");
  for (int64_t d : shape)
    if (d < 0) bad("negative dimension in shape ", shape_str(shape));
  uint64_t need = 0;
  if (!byte_count(shape, elem_size, need)) bad("shape ", shape_str(shape), " overflows");
  if (need != bytes)
    bad("shape ", shape_str(shape), " of dtype ", dtype, " needs ", need, " bytes but ", bytes,
        " are given");
  StTensor t;
  t.dtype = dtype;
  t.shape = shape;
  const auto* p = static_cast<const uint8_t*>(data);
  if (bytes > 0) t.bytes.assign(p, p + bytes);
  tensors[name] = std::move(t);
}

void StFile::put_f32(const std::string& name, const Tensor& t) {
  if (!t.defined())
    fail(where(source), ": cannot store tensor '", name, "': the tensor holds no buffer");
  const Tensor c = t.contiguous();
  put_raw(name, "F32", c.shape().vec(), c.data(), static_cast<size_t>(c.numel()) * sizeof(float));
}

void StFile::put_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* v) {
  uint64_t bytes = 0;
  if (!byte_count(shape, sizeof(int64_t), bytes))
    fail(where(source), ": cannot store tensor '", name, "': shape ", shape_str(shape),
         " overflows");
  put_raw(name, "I64", shape, v, bytes);
}

namespace {

const StTensor& find_typed(const StFile& f, const std::string& name, const char* dtype) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) fail(where(f.source), ": no tensor named '", name, "'");
  const StTensor& t = it->second;
  if (t.dtype != dtype)
    fail(where(f.source), ": tensor '", name, "' has dtype ", t.dtype, ", expected ", dtype);
  uint64_t bytes = 0;
  if (!byte_count(t.shape, find_dtype_size(t.dtype), bytes) || bytes != t.bytes.size())
    fail(where(f.source), ": tensor '", name, "' holds ", t.bytes.size(),
         " bytes, which does not match its shape ", shape_str(t.shape));
  return t;
}

}  // namespace

Tensor StFile::get_f32(const std::string& name) const {
  const StTensor& t = find_typed(*this, name, "F32");
  if (t.shape.size() > static_cast<size_t>(kMaxDims))
    fail(where(source), ": tensor '", name, "' has shape ", shape_str(t.shape), " of rank ",
         t.shape.size(), "; normnet tensors have at most ", kMaxDims, " dimensions");
  Tensor out{Shape(t.shape)};
  if (!t.bytes.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

std::vector<int64_t> StFile::get_i64(const std::string& name) const {
  const StTensor& t = find_typed(*this, name, "I64");
  std::vector<int64_t> out(t.bytes.size() / sizeof(int64_t));
  if (!out.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

}  // namespace normnet
