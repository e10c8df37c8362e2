// GgufFile: a parsed, memory-mapped GGUF file (versions 2 and 3) — metadata and tensor views.
// Spec: github.com/ggerganov/ggml/blob/master/docs/gguf.md. Every malformed input is refused
// with a Status naming the problem and the byte offset; parsing never reads out of bounds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/ggml_type.h"
#include "util/mmap_file.h"
#include "util/status.h"

namespace frugal {

// Numeric values are the on-disk ids.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Scalars keep their declared type; integer and float accessors convert
// between widths when the value fits. Arrays hold one element type (nested arrays allowed).
class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue from_uint(GgufValueType type, uint64_t v);
  static GgufValue from_int(GgufValueType type, int64_t v);
  static GgufValue from_float(GgufValueType type, double v);
  static GgufValue from_bool(bool v);
  static GgufValue from_string(std::string v);
  static GgufValue from_array(GgufValueType element_type, std::vector<GgufValue> elements);
  // Compact arrays: what tokenizer vocabularies use (hundreds of thousands of entries).
  static GgufValue from_string_array(std::vector<std::string> v);
  static GgufValue from_int_array(GgufValueType element_type, std::vector<int64_t> v);
  static GgufValue from_float_array(GgufValueType element_type, std::vector<double> v);

  GgufValueType type() const { return type_; }
  GgufValueType array_type() const { return array_type_; }  // meaningful when type()==kArray

  // nullopt when the value is not of a compatible kind or does not fit.
  std::optional<int64_t> as_int() const;     // any integer type or bool
  std::optional<uint64_t> as_uint() const;   // any non-negative integer
  std::optional<double> as_float() const;    // any numeric type
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;      // nullptr unless kString

  size_t array_size() const;                 // 0 unless kArray
  // Element accessors for arrays; nullptr when the array holds another element type.
  const std::vector<std::string>* as_string_array() const;
  // Any integer element type; uint64 elements above INT64_MAX keep their bit pattern.
  const std::vector<int64_t>* as_int_array() const;
  const std::vector<double>* as_float_array() const;   // float32 / float64 elements
  const std::vector<GgufValue>* as_value_array() const;  // nested arrays, bools

  // Short human-readable rendering ("[151936 strings]", "\"llama\"", "1e-05").
  std::string to_display_string() const;

  // Same declared type(s) and same values (uint64 array elements compare by bit pattern).
  friend bool operator==(const GgufValue& a, const GgufValue& b) = default;

 private:
  GgufValueType type_ = GgufValueType::kUint8;
  GgufValueType array_type_ = GgufValueType::kUint8;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::vector<std::string> strings_;
  std::vector<int64_t> ints_;
  std::vector<double> floats_;
  std::vector<GgufValue> values_;
};

struct GgufTensorInfo {
  std::string name;
  // GGUF order: shape[0] is the fastest-varying dimension (a row's length for matrices).
  std::vector<int64_t> shape;
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;            // from the start of the data section
  const uint8_t* data = nullptr;  // into the mapped file; valid while the GgufFile lives
  uint64_t n_bytes = 0;
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Errors: kNotFound, kIo, kCorrupt (with offset), kUnsupported
  // (a version other than 2 or 3, an unknown tensor type).
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses bytes the caller keeps alive (fuzzing, tests). `name` appears in messages.
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size,
                                                 const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& name() const { return name_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters; errors: kNotFound (missing key), kCorrupt (wrong type), naming the key.
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  std::string get_string_or(std::string_view key, std::string fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::unique_ptr<MappedFile> file_;  // null when parse() was given caller-owned bytes
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace frugal
