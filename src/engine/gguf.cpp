// GGUF reader: metadata values, the bounds-checked parser and the typed getters of GgufFile.
// Spec: github.com/ggerganov/ggml/blob/master/docs/gguf.md (read, not copied).
#include "engine/gguf.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

namespace frugal {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxTensorDims = 4;
// Arrays of arrays are legal but nothing real nests deeply; the limit keeps recursion bounded.
constexpr int kMaxArrayDepth = 8;

bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64;
}
bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}
bool is_float_type(GgufValueType t) {
  return t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64;
}

// Smallest encoding of one value of `t`; bounds every count before anything is allocated.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
    case GgufValueType::kString: return 8;      // the length prefix
    case GgufValueType::kArray: return 4 + 8;   // element type + count
  }
  return 1;
}

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

// ---- GgufValue ----------------------------------------------------------------------------

GgufValue GgufValue::from_uint(GgufValueType type, uint64_t v) {
  CHECK(is_unsigned_type(type), "from_uint with %s", gguf_value_type_name(type));
  GgufValue r;
  r.type_ = type;
  r.u_ = v;
  return r;
}

GgufValue GgufValue::from_int(GgufValueType type, int64_t v) {
  CHECK(is_signed_type(type), "from_int with %s", gguf_value_type_name(type));
  GgufValue r;
  r.type_ = type;
  r.i_ = v;
  return r;
}

GgufValue GgufValue::from_float(GgufValueType type, double v) {
  CHECK(is_float_type(type), "from_float with %s", gguf_value_type_name(type));
  GgufValue r;
  r.type_ = type;
  // A float32 value holds what the file can hold, so reading back compares equal.
  r.f_ = type == GgufValueType::kFloat32 ? static_cast<double>(static_cast<float>(v)) : v;
  return r;
}

GgufValue GgufValue::from_bool(bool v) {
  GgufValue r;
  r.type_ = GgufValueType::kBool;
  r.u_ = v ? 1 : 0;
  return r;
}

GgufValue GgufValue::from_string(std::string v) {
  GgufValue r;
  r.type_ = GgufValueType::kString;
  r.s_ = std::move(v);
  return r;
}

GgufValue GgufValue::from_array(GgufValueType element_type, std::vector<GgufValue> elements) {
  for (const GgufValue& e : elements)
    CHECK(e.type() == element_type, "array of %s holds a %s", gguf_value_type_name(element_type),
          gguf_value_type_name(e.type()));
  // Keep the compact form for strings and numbers so accessors do not depend on the builder.
  if (element_type == GgufValueType::kString) {
    std::vector<std::string> v;
    v.reserve(elements.size());
    for (GgufValue& e : elements) v.push_back(std::move(e.s_));
    return from_string_array(std::move(v));
  }
  if (is_unsigned_type(element_type) || is_signed_type(element_type)) {
    std::vector<int64_t> v;
    v.reserve(elements.size());
    for (const GgufValue& e : elements)
      v.push_back(is_unsigned_type(element_type) ? static_cast<int64_t>(e.u_) : e.i_);
    return from_int_array(element_type, std::move(v));
  }
  if (is_float_type(element_type)) {
    std::vector<double> v;
    v.reserve(elements.size());
    for (const GgufValue& e : elements) v.push_back(e.f_);
    return from_float_array(element_type, std::move(v));
  }
  GgufValue r;
  r.type_ = GgufValueType::kArray;
  r.array_type_ = element_type;
  r.values_ = std::move(elements);
  return r;
}

GgufValue GgufValue::from_string_array(std::vector<std::string> v) {
  GgufValue r;
  r.type_ = GgufValueType::kArray;
  r.array_type_ = GgufValueType::kString;
  r.strings_ = std::move(v);
  return r;
}

GgufValue GgufValue::from_int_array(GgufValueType element_type, std::vector<int64_t> v) {
  CHECK(is_unsigned_type(element_type) || is_signed_type(element_type), "int array of %s",
        gguf_value_type_name(element_type));
  GgufValue r;
  r.type_ = GgufValueType::kArray;
  r.array_type_ = element_type;
  r.ints_ = std::move(v);
  return r;
}

GgufValue GgufValue::from_float_array(GgufValueType element_type, std::vector<double> v) {
  CHECK(is_float_type(element_type), "float array of %s", gguf_value_type_name(element_type));
  if (element_type == GgufValueType::kFloat32)
    for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  GgufValue r;
  r.type_ = GgufValueType::kArray;
  r.array_type_ = element_type;
  r.floats_ = std::move(v);
  return r;
}

std::optional<int64_t> GgufValue::as_int() const {
  if (is_signed_type(type_)) return i_;
  if (is_unsigned_type(type_) || type_ == GgufValueType::kBool) {
    if (u_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u_);
  }
  return std::nullopt;
}

std::optional<uint64_t> GgufValue::as_uint() const {
  if (is_unsigned_type(type_) || type_ == GgufValueType::kBool) return u_;
  if (is_signed_type(type_) && i_ >= 0) return static_cast<uint64_t>(i_);
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (is_float_type(type_)) return f_;
  if (is_signed_type(type_)) return static_cast<double>(i_);
  if (is_unsigned_type(type_)) return static_cast<double>(u_);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (type_ == GgufValueType::kBool) return u_ != 0;
  return std::nullopt;
}

const std::string* GgufValue::as_string() const {
  return type_ == GgufValueType::kString ? &s_ : nullptr;
}

size_t GgufValue::array_size() const {
  if (type_ != GgufValueType::kArray) return 0;
  if (array_type_ == GgufValueType::kString) return strings_.size();
  if (is_unsigned_type(array_type_) || is_signed_type(array_type_)) return ints_.size();
  if (is_float_type(array_type_)) return floats_.size();
  return values_.size();
}

const std::vector<std::string>* GgufValue::as_string_array() const {
  if (type_ != GgufValueType::kArray || array_type_ != GgufValueType::kString) return nullptr;
  return &strings_;
}

const std::vector<int64_t>* GgufValue::as_int_array() const {
  if (type_ != GgufValueType::kArray ||
      !(is_unsigned_type(array_type_) || is_signed_type(array_type_)))
    return nullptr;
  return &ints_;
}

const std::vector<double>* GgufValue::as_float_array() const {
  if (type_ != GgufValueType::kArray || !is_float_type(array_type_)) return nullptr;
  return &floats_;
}

const std::vector<GgufValue>* GgufValue::as_value_array() const {
  if (type_ != GgufValueType::kArray ||
      !(array_type_ == GgufValueType::kBool || array_type_ == GgufValueType::kArray))
    return nullptr;
  return &values_;
}

std::string GgufValue::to_display_string() const {
  constexpr size_t kShown = 8;  // longer arrays are summarised
  switch (type_) {
    case GgufValueType::kBool: return u_ ? "true" : "false";
    case GgufValueType::kString: {
      std::string out = "\"";
      for (char c : s_) {
        if (c == '"' || c == '\\') {
          out += '\\';
          out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
      }
      return out + "\"";
    }
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64: return format_double(f_);
    case GgufValueType::kArray: {
      size_t n = array_size();
      std::string elem = gguf_value_type_name(array_type_);
      if (n > kShown) return "[" + std::to_string(n) + " " + elem + "s]";
      std::string out = "[";
      for (size_t i = 0; i < n; ++i) {
        if (i) out += ", ";
        if (array_type_ == GgufValueType::kString) {
          out += from_string(strings_[i]).to_display_string();
        } else if (is_unsigned_type(array_type_)) {
          out += std::to_string(static_cast<uint64_t>(ints_[i]));
        } else if (is_signed_type(array_type_)) {
          out += std::to_string(ints_[i]);
        } else if (is_float_type(array_type_)) {
          out += format_double(floats_[i]);
        } else {
          out += values_[i].to_display_string();
        }
      }
      return out + "]";
    }
    default: break;
  }
  if (is_unsigned_type(type_)) return std::to_string(u_);
  return std::to_string(i_);
}

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- Parser -------------------------------------------------------------------------------

// Reads a GGUF byte range front to back. Every read checks the bytes left first; every count is
// bounded by the bytes left before anything is reserved.
class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  Status parse(GgufFile* f);

 private:
  size_t left() const { return size_ - pos_; }

  Status error(ErrorCode code, uint64_t offset, const std::string& what) const {
    return Status(code, name_ + ": " + what + " at offset " + std::to_string(offset));
  }
  Status truncated(const char* what, uint64_t need) const {
    return error(ErrorCode::kCorrupt, pos_,
                 std::string("truncated file: ") + what + " needs " + std::to_string(need) +
                     " bytes but only " + std::to_string(left()) + " remain");
  }

  template <typename T>
  Status read_pod(T* out, const char* what) {
    if (left() < sizeof(T)) return truncated(what, sizeof(T));
    std::memcpy(out, data_ + pos_, sizeof(T));  // the format is little-endian, as is the host
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status read_string(std::string* out, const char* what) {
    uint64_t len = 0;
    size_t at = pos_;
    FRUGAL_RETURN_IF_ERROR(read_pod(&len, what));
    if (len > left())
      return error(ErrorCode::kCorrupt, at,
                   std::string(what) + " length " + std::to_string(len) + " exceeds the " +
                       std::to_string(left()) + " bytes left");
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::ok();
  }

  Status read_value_type(GgufValueType* out, const char* what) {
    uint32_t t = 0;
    size_t at = pos_;
    FRUGAL_RETURN_IF_ERROR(read_pod(&t, what));
    if (!is_known_value_type(t))
      return error(ErrorCode::kCorrupt, at,
                   std::string("unknown metadata value type ") + std::to_string(t));
    *out = static_cast<GgufValueType>(t);
    return Status::ok();
  }

  Status read_scalar(GgufValueType type, GgufValue* out);
  Status read_value(GgufValueType type, GgufValue* out, int depth);
  Status read_array(GgufValue* out, int depth);
  Status read_tensor_info(GgufTensorInfo* t);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

Status GgufParser::read_scalar(GgufValueType type, GgufValue* out) {
  const char* what = gguf_value_type_name(type);
  auto read_uint = [&](auto zero) -> Status {
    decltype(zero) v = zero;
    FRUGAL_RETURN_IF_ERROR(read_pod(&v, what));
    *out = GgufValue::from_uint(type, v);
    return Status::ok();
  };
  auto read_int = [&](auto zero) -> Status {
    decltype(zero) v = zero;
    FRUGAL_RETURN_IF_ERROR(read_pod(&v, what));
    *out = GgufValue::from_int(type, v);
    return Status::ok();
  };
  auto read_float = [&](auto zero) -> Status {
    decltype(zero) v = zero;
    FRUGAL_RETURN_IF_ERROR(read_pod(&v, what));
    *out = GgufValue::from_float(type, v);
    return Status::ok();
  };
  switch (type) {
    case GgufValueType::kUint8: return read_uint(uint8_t{0});
    case GgufValueType::kUint16: return read_uint(uint16_t{0});
    case GgufValueType::kUint32: return read_uint(uint32_t{0});
    case GgufValueType::kUint64: return read_uint(uint64_t{0});
    case GgufValueType::kInt8: return read_int(int8_t{0});
    case GgufValueType::kInt16: return read_int(int16_t{0});
    case GgufValueType::kInt32: return read_int(int32_t{0});
    case GgufValueType::kInt64: return read_int(int64_t{0});
    case GgufValueType::kFloat32: return read_float(0.0f);
    case GgufValueType::kFloat64: return read_float(0.0);
    case GgufValueType::kBool: {
      uint8_t v = 0;
      FRUGAL_RETURN_IF_ERROR(read_pod(&v, what));
      *out = GgufValue::from_bool(v != 0);
      return Status::ok();
    }
    case GgufValueType::kString: {
      std::string s;
      FRUGAL_RETURN_IF_ERROR(read_string(&s, "string value"));
      *out = GgufValue::from_string(std::move(s));
      return Status::ok();
    }
    case GgufValueType::kArray: break;
  }
  CHECK(false, "read_scalar called with an array type");
  return Status::ok();
}

Status GgufParser::read_value(GgufValueType type, GgufValue* out, int depth) {
  if (type == GgufValueType::kArray) return read_array(out, depth + 1);
  return read_scalar(type, out);
}

Status GgufParser::read_array(GgufValue* out, int depth) {
  size_t at = pos_;
  if (depth > kMaxArrayDepth)
    return error(ErrorCode::kCorrupt, at,
                 "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
  GgufValueType elem;
  FRUGAL_RETURN_IF_ERROR(read_value_type(&elem, "array element type"));
  uint64_t n = 0;
  size_t count_at = pos_;
  FRUGAL_RETURN_IF_ERROR(read_pod(&n, "array length"));
  if (n > left() / min_value_bytes(elem))
    return error(ErrorCode::kCorrupt, count_at,
                 "array of " + std::to_string(n) + " " + gguf_value_type_name(elem) +
                     " values cannot fit in the " + std::to_string(left()) + " bytes left");
  const size_t count = static_cast<size_t>(n);
  if (elem == GgufValueType::kString) {
    std::vector<std::string> v(count);
    for (size_t i = 0; i < count; ++i)
      FRUGAL_RETURN_IF_ERROR(read_string(&v[i], "array string"));
    *out = GgufValue::from_string_array(std::move(v));
    return Status::ok();
  }
  if (is_unsigned_type(elem) || is_signed_type(elem)) {
    std::vector<int64_t> v(count);
    GgufValue e;
    for (size_t i = 0; i < count; ++i) {
      FRUGAL_RETURN_IF_ERROR(read_scalar(elem, &e));
      v[i] = is_unsigned_type(elem) ? static_cast<int64_t>(*e.as_uint()) : *e.as_int();
    }
    *out = GgufValue::from_int_array(elem, std::move(v));
    return Status::ok();
  }
  if (is_float_type(elem)) {
    std::vector<double> v(count);
    GgufValue e;
    for (size_t i = 0; i < count; ++i) {
      FRUGAL_RETURN_IF_ERROR(read_scalar(elem, &e));
      v[i] = *e.as_float();
    }
    *out = GgufValue::from_float_array(elem, std::move(v));
    return Status::ok();
  }
  std::vector<GgufValue> v(count);
  for (size_t i = 0; i < count; ++i) FRUGAL_RETURN_IF_ERROR(read_value(elem, &v[i], depth));
  *out = GgufValue::from_array(elem, std::move(v));
  return Status::ok();
}

Status GgufParser::read_tensor_info(GgufTensorInfo* t) {
  size_t start = pos_;
  FRUGAL_RETURN_IF_ERROR(read_string(&t->name, "tensor name"));
  uint32_t n_dims = 0;
  size_t at = pos_;
  FRUGAL_RETURN_IF_ERROR(read_pod(&n_dims, "tensor dimension count"));
  if (n_dims > kMaxTensorDims)
    return error(ErrorCode::kCorrupt, at,
                 "tensor '" + t->name + "' has " + std::to_string(n_dims) +
                     " dimensions (at most " + std::to_string(kMaxTensorDims) + ")");
  t->shape.assign(n_dims, 0);
  int64_t n_elements = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    at = pos_;
    uint64_t d = 0;
    FRUGAL_RETURN_IF_ERROR(read_pod(&d, "tensor dimension"));
    if (d == 0 || d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return error(ErrorCode::kCorrupt, at,
                   "tensor '" + t->name + "' dimension " + std::to_string(i) + " is " +
                       (d == 0 ? "zero" : "negative or too large (" + std::to_string(d) + ")"));
    int64_t dim = static_cast<int64_t>(d);
    if (n_elements > std::numeric_limits<int64_t>::max() / dim)
      return error(ErrorCode::kCorrupt, at,
                   "tensor '" + t->name + "' element count overflows 64 bits");
    n_elements *= dim;
    t->shape[i] = dim;
  }
  at = pos_;
  uint32_t type_id = 0;
  FRUGAL_RETURN_IF_ERROR(read_pod(&type_id, "tensor type"));
  t->type = static_cast<GgmlType>(type_id);
  const GgmlTypeInfo* info = ggml_type_info(t->type);
  if (info == nullptr)
    return error(ErrorCode::kUnsupported, at,
                 "tensor '" + t->name + "' has unknown type id " + std::to_string(type_id));
  int64_t row = n_dims > 0 ? t->shape[0] : 1;
  if (row % info->block_size != 0)
    return error(ErrorCode::kCorrupt, start,
                 "tensor '" + t->name + "' row of " + std::to_string(row) +
                     " elements is not a multiple of the " + info->name + " block size " +
                     std::to_string(info->block_size));
  int64_t n_blocks = n_elements / info->block_size;
  if (n_blocks > std::numeric_limits<int64_t>::max() / info->type_size)
    return error(ErrorCode::kCorrupt, start,
                 "tensor '" + t->name + "' byte size overflows 64 bits");
  t->n_bytes = static_cast<uint64_t>(n_blocks * info->type_size);
  FRUGAL_RETURN_IF_ERROR(read_pod(&t->offset, "tensor data offset"));
  return Status::ok();
}

Status GgufParser::parse(GgufFile* f) {
  uint32_t magic = 0;
  FRUGAL_RETURN_IF_ERROR(read_pod(&magic, "magic"));
  if (magic != kGgufMagic)
    return error(ErrorCode::kCorrupt, 0, "bad magic (not a GGUF file)");
  size_t at = pos_;
  FRUGAL_RETURN_IF_ERROR(read_pod(&f->version_, "version"));
  if (f->version_ == 1)
    return error(ErrorCode::kUnsupported, at,
                 "GGUF version 1 is not supported (only 2 and 3); re-convert the model");
  if (f->version_ != 2 && f->version_ != 3)
    return error(ErrorCode::kUnsupported, at,
                 "unknown GGUF version " + std::to_string(f->version_) + " (supported: 2, 3)");
  uint64_t n_tensors = 0, n_kv = 0;
  size_t tensors_at = pos_;
  FRUGAL_RETURN_IF_ERROR(read_pod(&n_tensors, "tensor count"));
  size_t kv_at = pos_;
  FRUGAL_RETURN_IF_ERROR(read_pod(&n_kv, "metadata count"));
  // Minimum sizes: a key/value is a key length, a type and one byte; a tensor info is a name
  // length, a dimension count, a type and an offset.
  constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
  constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
  if (n_kv > left() / kMinKvBytes)
    return error(ErrorCode::kCorrupt, kv_at,
                 "metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                     std::to_string(left()) + " bytes left");
  if (n_tensors > left() / kMinTensorInfoBytes)
    return error(ErrorCode::kCorrupt, tensors_at,
                 "tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                     std::to_string(left()) + " bytes left");

  f->metadata_.reserve(static_cast<size_t>(n_kv));
  f->alignment_ = kDefaultAlignment;
  for (uint64_t i = 0; i < n_kv; ++i) {
    size_t key_at = pos_;
    std::string key;
    FRUGAL_RETURN_IF_ERROR(read_string(&key, "metadata key"));
    if (f->metadata_index_.count(key))
      return error(ErrorCode::kCorrupt, key_at, "duplicate metadata key '" + key + "'");
    GgufValueType type;
    FRUGAL_RETURN_IF_ERROR(read_value_type(&type, "metadata value type"));
    size_t value_at = pos_;
    GgufValue value;
    FRUGAL_RETURN_IF_ERROR(read_value(type, &value, 0));
    if (key == "general.alignment") {
      std::optional<uint64_t> a = value.as_uint();
      if (!a || *a == 0 || (*a & (*a - 1)) != 0 || value.type() == GgufValueType::kBool)
        return error(ErrorCode::kCorrupt, value_at,
                     "general.alignment must be a nonzero power of two, got " +
                         value.to_display_string());
      f->alignment_ = *a;
    }
    f->metadata_index_.emplace(key, f->metadata_.size());
    f->metadata_.emplace_back(std::move(key), std::move(value));
  }

  f->tensors_.reserve(static_cast<size_t>(n_tensors));
  std::vector<size_t> info_offsets;
  info_offsets.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    size_t info_at = pos_;
    GgufTensorInfo t;
    FRUGAL_RETURN_IF_ERROR(read_tensor_info(&t));
    if (f->tensor_index_.count(t.name))
      return error(ErrorCode::kCorrupt, info_at, "duplicate tensor name '" + t.name + "'");
    f->tensor_index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
    info_offsets.push_back(info_at);
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t end_of_infos = pos_;
  uint64_t data_offset = (end_of_infos + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  if (data_offset < end_of_infos)  // wrapped: an enormous alignment
    return error(ErrorCode::kCorrupt, end_of_infos, "data section offset overflows");
  f->data_offset_ = data_offset;
  if (!f->tensors_.empty() && data_offset > size_)
    return error(ErrorCode::kCorrupt, end_of_infos,
                 "truncated file: data section starts at " + std::to_string(data_offset) +
                     " but the file has " + std::to_string(size_) + " bytes");

  const uint64_t data_size = f->tensors_.empty() ? 0 : size_ - data_offset;
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    GgufTensorInfo& t = f->tensors_[i];
    if (t.offset % f->alignment_ != 0)
      return error(ErrorCode::kCorrupt, info_offsets[i],
                   "tensor '" + t.name + "' data offset " + std::to_string(t.offset) +
                       " is not a multiple of the alignment " + std::to_string(f->alignment_));
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      return error(ErrorCode::kCorrupt, info_offsets[i],
                   "tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                       std::to_string(t.n_bytes) + ") ends past the data section of " +
                       std::to_string(data_size) + " bytes (file truncated?)");
    t.data = data_ + data_offset + t.offset;
  }

  std::vector<size_t> order(f->tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f->tensors_[a].offset < f->tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = f->tensors_[order[k - 1]];
    const GgufTensorInfo& cur = f->tensors_[order[k]];
    if (prev.offset + prev.n_bytes > cur.offset)
      return error(ErrorCode::kCorrupt, info_offsets[order[k]],
                   "tensor '" + cur.name + "' data overlaps tensor '" + prev.name + "'");
  }
  return Status::ok();
}

// ---- GgufFile -----------------------------------------------------------------------------

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::open(path));
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f,
                          parse(mapped->data(), mapped->size(), path));
  f->file_ = std::move(mapped);
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size,
                                                  const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = name;
  static const uint8_t kEmpty = 0;
  GgufParser parser(data != nullptr ? data : &kEmpty, data != nullptr ? size : 0, f->name_);
  FRUGAL_RETURN_IF_ERROR(parser.parse(f.get()));
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
Status missing_key(const std::string& file, std::string_view key) {
  return not_found(file + ": metadata key '" + std::string(key) + "' is missing");
}
Status wrong_type(const std::string& file, std::string_view key, const GgufValue& v,
                  const char* wanted) {
  return corrupt(file + ": metadata key '" + std::string(key) + "' is " +
                 gguf_value_type_name(v.type()) + " " + v.to_display_string() + ", expected " +
                 wanted);
}
}  // namespace

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(name_, key);
  std::optional<int64_t> r = v->as_int();
  if (!r) return wrong_type(name_, key, *v, "an integer");
  return *r;
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(name_, key);
  std::optional<double> r = v->as_float();
  if (!r) return wrong_type(name_, key, *v, "a number");
  return *r;
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(name_, key);
  const std::string* r = v->as_string();
  if (r == nullptr) return wrong_type(name_, key, *v, "a string");
  return *r;
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(name_, key);
  std::optional<bool> r = v->as_bool();
  if (!r) return wrong_type(name_, key, *v, "a bool");
  return *r;
}

int64_t GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  Result<int64_t> r = get_int(key);
  return r.is_ok() ? *r : fallback;
}

double GgufFile::get_float_or(std::string_view key, double fallback) const {
  Result<double> r = get_float(key);
  return r.is_ok() ? *r : fallback;
}

std::string GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  Result<std::string> r = get_string(key);
  return r.is_ok() ? *r : fallback;
}

bool GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  Result<bool> r = get_bool(key);
  return r.is_ok() ? *r : fallback;
}

}  // namespace frugal
