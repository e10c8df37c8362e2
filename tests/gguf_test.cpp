// GGUF: writer->reader round trips, truncation and byte-flip robustness, named malformed cases.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "util/mmap_file.h"
#include "process_helpers.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

// In a folder of this process's own, removed when the process exits.
std::string temp_path(const std::string& name) {
  static const test::TempDir dir("gguf-test");
  return dir.file(name);
}

// Bytes of `n` elements of a type, filled with a recognisable pattern.
std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31);
  return v;
}

void add_every_value_type(GgufWriter& w) {
  w.set_uint8("t.u8", 250);
  w.set_int8("t.i8", -100);
  w.set_uint16("t.u16", 65000);
  w.set_int16("t.i16", -32000);
  w.set_uint32("t.u32", 4000000000u);
  w.set_int32("t.i32", -2000000000);
  w.set_uint64("t.u64", 18000000000000000000ull);
  w.set_int64("t.i64", -9000000000000000000ll);
  w.set_float32("t.f32", 1e-5f);
  w.set_float64("t.f64", 3.141592653589793);
  w.set_bool("t.true", true);
  w.set_bool("t.false", false);
  w.set_string("t.str", std::string("h\xe2\x96\x81llo\0x", 9));
  w.set_string("t.empty_str", "");
  w.set_string_array("t.strs", {"a", "", "\xe2\x96\x81the", "<0x0A>"});
  w.set_int_array("t.u8s", GgufValueType::kUint8, {0, 1, 255});
  w.set_int_array("t.i8s", GgufValueType::kInt8, {-128, 0, 127});
  w.set_int_array("t.u16s", GgufValueType::kUint16, {0, 65535});
  w.set_int_array("t.i16s", GgufValueType::kInt16, {-32768, 32767});
  w.set_int_array("t.u32s", GgufValueType::kUint32, {0, 4294967295ll});
  w.set_int_array("t.i32s", GgufValueType::kInt32, {1, 2, 3, -4});
  w.set_int_array("t.u64s", GgufValueType::kUint64, {0, -1});  // -1: all bits set
  w.set_int_array("t.i64s", GgufValueType::kInt64, {INT64_MIN, INT64_MAX});
  w.set_float_array("t.f32s", GgufValueType::kFloat32, {0.5, -1.25, 1e30});
  w.set_float_array("t.f64s", GgufValueType::kFloat64, {1e-300, 2.5});
  w.set_int_array("t.empty_ints", GgufValueType::kInt32, {});
  w.set("t.bools", GgufValue::from_array(GgufValueType::kBool,
                                         {GgufValue::from_bool(true), GgufValue::from_bool(false)}));
  w.set("t.nested",
        GgufValue::from_array(
            GgufValueType::kArray,
            {GgufValue::from_int_array(GgufValueType::kInt32, {1, 2}),
             GgufValue::from_string_array({"x", "y", "z"}),
             GgufValue::from_array(GgufValueType::kArray,
                                   {GgufValue::from_float_array(GgufValueType::kFloat64, {7})})}));
}

TEST(GgufRoundTrip, EveryValueTypeAndTensorType) {
  GgufWriter w;
  add_every_value_type(w);
  w.set_uint32("general.alignment", 64);

  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
  };
  std::vector<Spec> specs = {
      {"f32", {3, 2}, GgmlType::kF32},        {"f16", {5}, GgmlType::kF16},
      {"bf16", {4, 1, 2}, GgmlType::kBF16},   {"q8_0", {64, 3}, GgmlType::kQ8_0},
      {"q4_0", {32, 2, 1, 2}, GgmlType::kQ4_0}, {"q4_1", {32}, GgmlType::kQ4_1},
      {"q4_k", {256, 2}, GgmlType::kQ4_K},    {"q6_k", {256}, GgmlType::kQ6_K},
      {"i32", {7}, GgmlType::kI32},           {"f64", {2}, GgmlType::kF64},
  };
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgmlTypeInfo* info = ggml_type_info(specs[i].type);
    int64_t n = 1;
    for (int64_t d : specs[i].shape) n *= d;
    data.push_back(pattern_bytes(n / info->block_size * info->type_size, uint8_t(i)));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i % 2 == 0) {
      ASSERT_TRUE(w.add_tensor(specs[i].name, specs[i].shape, specs[i].type, data[i].data(),
                               data[i].size())
                      .is_ok());
    } else {
      // Produced in two pieces, as a streaming converter would.
      const std::vector<uint8_t>* bytes = &data[i];
      ASSERT_TRUE(w.add_tensor(specs[i].name, specs[i].shape, specs[i].type,
                               [bytes](const GgufWriter::ByteSink& sink) {
                                 size_t half = bytes->size() / 2;
                                 FRUGAL_RETURN_IF_ERROR(sink(bytes->data(), half));
                                 return sink(bytes->data() + half, bytes->size() - half);
                               })
                      .is_ok());
    }
  }
  std::string path = temp_path("roundtrip.gguf");
  ASSERT_TRUE(w.write(path).is_ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  ASSERT_EQ((*f)->metadata().size(), w.metadata().size());
  for (size_t i = 0; i < w.metadata().size(); ++i) {
    EXPECT_EQ((*f)->metadata()[i].first, w.metadata()[i].first);
    EXPECT_TRUE((*f)->metadata()[i].second == w.metadata()[i].second)
        << w.metadata()[i].first << ": " << (*f)->metadata()[i].second.to_display_string()
        << " vs " << w.metadata()[i].second.to_display_string();
  }
  // Typed getters convert between widths.
  EXPECT_EQ((*f)->get_int("t.i8").value(), -100);
  EXPECT_EQ((*f)->get_int("t.u32").value(), 4000000000ll);
  EXPECT_FALSE((*f)->get_int("t.u64").is_ok());  // does not fit int64
  EXPECT_EQ((*f)->find("t.u64")->as_uint().value(), 18000000000000000000ull);
  EXPECT_FLOAT_EQ(static_cast<float>((*f)->get_float("t.f32").value()), 1e-5f);
  EXPECT_EQ((*f)->get_string("t.str").value(), std::string("h\xe2\x96\x81llo\0x", 9));
  EXPECT_TRUE((*f)->get_bool("t.true").value());
  EXPECT_EQ((*f)->get_string("t.u8").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ((*f)->get_string("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ((*f)->get_int_or("nope", 42), 42);
  EXPECT_EQ((*f)->find("t.strs")->as_string_array()->at(2), "\xe2\x96\x81the");
  EXPECT_EQ((*f)->find("t.nested")->as_value_array()->at(1).as_string_array()->size(), 3u);

  ASSERT_EQ((*f)->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgufTensorInfo* t = (*f)->find_tensor(specs[i].name);
    ASSERT_NE(t, nullptr) << specs[i].name;
    EXPECT_EQ(t->shape, specs[i].shape);
    EXPECT_EQ(t->type, specs[i].type);
    EXPECT_EQ(t->offset % 64, 0u);
    ASSERT_EQ(t->n_bytes, data[i].size());
    EXPECT_EQ(std::memcmp(t->data, data[i].data(), data[i].size()), 0) << specs[i].name;
  }
}

TEST(GgufWriter, RefusesBadTensorsAndLeavesNoFileOnError) {
  GgufWriter w;
  float x[4] = {1, 2, 3, 4};
  EXPECT_TRUE(w.add_tensor("a", {4}, GgmlType::kF32, x, sizeof(x)).is_ok());
  EXPECT_EQ(w.add_tensor("a", {4}, GgmlType::kF32, x, sizeof(x)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("b", {3}, GgmlType::kF32, x, sizeof(x)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("c", {16}, GgmlType::kQ4_0, x, sizeof(x)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("d", {1, 1, 1, 1, 1}, GgmlType::kF32, x, 4).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("e", {0}, GgmlType::kF32, x, 0).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(w.add_tensor("short", {4}, GgmlType::kF32,
                           [&](const GgufWriter::ByteSink& sink) { return sink(x, 8); })
                  .is_ok());
  std::string path = temp_path("short.gguf");
  Status s = w.write(path);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("short"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(w.write("/nonexistent-dir/x.gguf").code(), ErrorCode::kIo);
}

// A small valid file: a few keys (one of each kind) and three tensors.
std::string small_valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", 2);
  w.set_float32("llama.rope.freq_base", 10000);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "a"});
  w.set("t.nested", GgufValue::from_array(GgufValueType::kArray,
                                          {GgufValue::from_int_array(GgufValueType::kInt8, {1})}));
  static const std::vector<uint8_t> a = pattern_bytes(4 * 3, 1);
  static const std::vector<uint8_t> b = pattern_bytes(34, 2);
  static const std::vector<uint8_t> c = pattern_bytes(2 * 2, 3);
  CHECK(w.add_tensor("a", {3}, GgmlType::kF32, a.data(), a.size()).is_ok());
  CHECK(w.add_tensor("b", {32}, GgmlType::kQ8_0, b.data(), b.size()).is_ok());
  CHECK(w.add_tensor("c", {1, 2}, GgmlType::kF16, c.data(), c.size()).is_ok());
  std::string path = temp_path("small.gguf");
  CHECK(w.write(path).is_ok());
  return read_file(path).value();
}

Result<std::unique_ptr<GgufFile>> parse_bytes(const std::string& bytes) {
  return GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test");
}

// Reads every byte of every tensor, so an out-of-bounds view would show under ASan.
uint64_t touch_all(const GgufFile& f) {
  uint64_t sum = 0;
  for (const GgufTensorInfo& t : f.tensors())
    for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
  return sum;
}

TEST(GgufRobustness, EveryTruncationIsRefusedAsCorrupt) {
  std::string bytes = small_valid_file();
  ASSERT_TRUE(parse_bytes(bytes).is_ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A fresh heap copy of exactly n bytes, so reading past it is caught by sanitizers.
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = GgufFile::parse(cut.data(), cut.size(), "cut");
    ASSERT_FALSE(r.is_ok()) << "truncated at " << n << " parsed";
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << n << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().message();
  }
}

TEST(GgufRobustness, RandomByteFlipsNeverCrash) {
  std::string bytes = small_valid_file();
  std::mt19937 rng(1234);
  int parsed = 0, refused = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> v(bytes.begin(), bytes.end());
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      size_t at = rng() % v.size();
      // Mostly random bytes; sometimes extreme values that hit length and count fields.
      uint32_t kind = rng() % 4;
      v[at] = kind == 0 ? 0xFF : kind == 1 ? 0x00 : static_cast<uint8_t>(rng());
    }
    auto r = GgufFile::parse(v.data(), v.size(), "flipped");
    if (r.is_ok()) {
      ++parsed;
      touch_all(**r);
    } else {
      ++refused;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  // Both outcomes occur: flips in tensor data parse, flips in the header are refused.
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

// Hand-built GGUF bytes for malformed cases the writer would never produce.
class Bytes {
 public:
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    s_ += s;
    return *this;
  }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    return u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment) {
    while (s_.size() % alignment) s_ += '\0';
    return *this;
  }
  Bytes& zeros(size_t n) {
    s_.append(n, '\0');
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  Bytes& raw(const void* p, size_t n) {
    s_.append(static_cast<const char*>(p), n);
    return *this;
  }
  std::string s_;
};

void expect_refused(const Bytes& b, ErrorCode code, const std::string& fragment) {
  auto r = parse_bytes(b.str());
  ASSERT_FALSE(r.is_ok()) << "expected refusal containing '" << fragment << "'";
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("at offset"), std::string::npos) << r.status().message();
}

TEST(GgufMalformed, HeaderProblems) {
  expect_refused(Bytes().u32(0x46554746).u32(3).u64(0).u64(0), ErrorCode::kCorrupt, "bad magic");
  expect_refused(Bytes().header(1, 0, 0), ErrorCode::kUnsupported, "version 1");
  expect_refused(Bytes().header(7, 0, 0), ErrorCode::kUnsupported, "unknown GGUF version 7");
  expect_refused(Bytes().header(3, 0, 1ull << 60), ErrorCode::kCorrupt, "metadata count");
  expect_refused(Bytes().header(3, 1ull << 60, 0), ErrorCode::kCorrupt, "tensor count");
  expect_refused(Bytes().u32(0x46554747).u32(3).u32(0), ErrorCode::kCorrupt, "truncated");
}

TEST(GgufMalformed, MetadataProblems) {
  expect_refused(Bytes().header(3, 0, 1).str("k").u32(99).u32(0), ErrorCode::kCorrupt,
                 "unknown metadata value type 99");
  expect_refused(Bytes().header(3, 0, 1).str("k").u32(8).u64(1000).str("abc"),
                 ErrorCode::kCorrupt, "exceeds");
  expect_refused(Bytes().header(3, 0, 1).u64(1ull << 62).zeros(8), ErrorCode::kCorrupt,
                 "metadata key length");
  expect_refused(Bytes().header(3, 0, 1).str("k").u32(9).u32(4).u64(1ull << 61).zeros(16),
                 ErrorCode::kCorrupt, "cannot fit");
  expect_refused(Bytes().header(3, 0, 1).str("k").u32(9).u32(77).u64(1), ErrorCode::kCorrupt,
                 "unknown metadata value type 77");
  expect_refused(Bytes().header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2), ErrorCode::kCorrupt,
                 "duplicate metadata key 'k'");
  expect_refused(Bytes().header(3, 0, 1).kv_u32("general.alignment", 0), ErrorCode::kCorrupt,
                 "power of two");
  expect_refused(Bytes().header(3, 0, 1).kv_u32("general.alignment", 48), ErrorCode::kCorrupt,
                 "power of two");
  Bytes deep;
  deep.header(3, 0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  expect_refused(deep, ErrorCode::kCorrupt, "nested deeper");
}

TEST(GgufMalformed, TensorProblems) {
  auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data) {
    Bytes b;
    b.header(3, 1, 0).tensor("w", std::move(dims), type, offset).pad(32).zeros(data);
    return b;
  };
  expect_refused(one({1, 1, 1, 1, 1}, 0, 0, 4), ErrorCode::kCorrupt, "5 dimensions");
  expect_refused(one({4, 0}, 0, 0, 16), ErrorCode::kCorrupt, "dimension 1 is zero");
  expect_refused(one({~0ull}, 0, 0, 16), ErrorCode::kCorrupt, "negative or too large");
  expect_refused(one({1ull << 40, 1ull << 40}, 0, 0, 16), ErrorCode::kCorrupt, "overflows");
  expect_refused(one({33}, 2, 0, 64), ErrorCode::kCorrupt, "not a multiple of the q4_0 block");
  expect_refused(one({4}, 99, 0, 16), ErrorCode::kUnsupported, "unknown type id 99");
  expect_refused(one({8}, 0, 0, 16), ErrorCode::kCorrupt, "ends past the data section");
  expect_refused(one({4}, 0, 1ull << 63, 16), ErrorCode::kCorrupt, "ends past");
  expect_refused(one({4}, 0, 8, 64), ErrorCode::kCorrupt, "not a multiple of the alignment");

  Bytes overlap;
  overlap.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad(32).zeros(128);
  expect_refused(overlap, ErrorCode::kCorrupt, "overlaps");
  Bytes dup;
  dup.header(3, 2, 0).tensor("a", {4}, 0, 0).tensor("a", {4}, 0, 32).pad(32).zeros(64);
  expect_refused(dup, ErrorCode::kCorrupt, "duplicate tensor name 'a'");
  Bytes no_data;
  no_data.header(3, 1, 0).tensor("a", {4}, 0, 0);
  expect_refused(no_data, ErrorCode::kCorrupt, "truncated");
}

TEST(GgufMalformed, AcceptsVersion2AndCustomAlignment) {
  Bytes b;
  b.header(2, 2, 1).kv_u32("general.alignment", 8);
  b.tensor("a", {2}, 0, 0).tensor("b", {1}, 0, 8).pad(8);
  float vals[3] = {1.5f, -2.0f, 7.0f};
  b.u32(0).u32(0).u32(0).u32(0);
  std::string bytes = b.str();
  size_t data = bytes.size() - 16;
  std::memcpy(&bytes[data], &vals[0], 8);
  std::memcpy(&bytes[data + 8], &vals[2], 4);
  auto r = parse_bytes(bytes);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)->version(), 2u);
  EXPECT_EQ((*r)->alignment(), 8u);
  EXPECT_EQ((*r)->data_offset(), data);
  float got;
  std::memcpy(&got, (*r)->find_tensor("b")->data, 4);
  EXPECT_EQ(got, 7.0f);
}

TEST(GgufFileOpen, MissingFileIsNotFound) {
  auto r = GgufFile::open(temp_path("does-not-exist.gguf"));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
}

// With FRUGAL_WRITE_FUZZ_SEEDS=DIR, writes the fuzzer's seed corpus (fuzz/corpus is made so).
TEST(GgufFuzzSeeds, WriteWhenAsked) {
  const char* dir = std::getenv("FRUGAL_WRITE_FUZZ_SEEDS");
  if (dir == nullptr) GTEST_SKIP() << "set FRUGAL_WRITE_FUZZ_SEEDS=DIR to write seeds";
  fs::create_directories(dir);
  ASSERT_TRUE(write_file(std::string(dir) + "/small.gguf", small_valid_file()).is_ok());
  GgufWriter w;
  add_every_value_type(w);
  float x[4] = {1, 2, 3, 4};
  ASSERT_TRUE(w.add_tensor("x", {2, 2}, GgmlType::kF32, x, sizeof(x)).is_ok());
  ASSERT_TRUE(w.write(std::string(dir) + "/values.gguf").is_ok());
  Bytes v2;
  v2.header(2, 1, 1).kv_u32("general.alignment", 8).tensor("a", {2}, 0, 0).pad(8).zeros(8);
  ASSERT_TRUE(write_file(std::string(dir) + "/v2.gguf", v2.str()).is_ok());
}

}  // namespace
}  // namespace frugal
