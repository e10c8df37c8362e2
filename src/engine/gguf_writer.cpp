// GgufWriter: serialises metadata and tensor infos, then streams tensor data, aligned, to disk.
#include "engine/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "util/file_io.h"

namespace frugal {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF", little-endian
constexpr uint32_t kGgufVersion = 3;
constexpr int kMaxTensorDims = 4;

template <typename T>
void put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian host, little-endian format
  out->append(buf, sizeof(T));
}

void put_string(std::string* out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out->append(s);
}

void put_int_as(std::string* out, GgufValueType type, int64_t v) {
  switch (type) {
    case GgufValueType::kUint8: put<uint8_t>(out, static_cast<uint8_t>(v)); return;
    case GgufValueType::kInt8: put<int8_t>(out, static_cast<int8_t>(v)); return;
    case GgufValueType::kUint16: put<uint16_t>(out, static_cast<uint16_t>(v)); return;
    case GgufValueType::kInt16: put<int16_t>(out, static_cast<int16_t>(v)); return;
    case GgufValueType::kUint32: put<uint32_t>(out, static_cast<uint32_t>(v)); return;
    case GgufValueType::kInt32: put<int32_t>(out, static_cast<int32_t>(v)); return;
    case GgufValueType::kUint64: put<uint64_t>(out, static_cast<uint64_t>(v)); return;
    case GgufValueType::kInt64: put<int64_t>(out, v); return;
    default: CHECK(false, "not an integer type: %s", gguf_value_type_name(type));
  }
}

void put_float_as(std::string* out, GgufValueType type, double v) {
  if (type == GgufValueType::kFloat32) {
    put<float>(out, static_cast<float>(v));
  } else {
    CHECK(type == GgufValueType::kFloat64, "not a float type: %s", gguf_value_type_name(type));
    put<double>(out, v);
  }
}

// The value's payload (no type tag), as the reader expects it.
void put_value(std::string* out, const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kBool: put<uint8_t>(out, *v.as_bool() ? 1 : 0); return;
    case GgufValueType::kString: put_string(out, *v.as_string()); return;
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64: put_float_as(out, v.type(), *v.as_float()); return;
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
      put_int_as(out, v.type(), static_cast<int64_t>(*v.as_uint()));
      return;
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64: put_int_as(out, v.type(), *v.as_int()); return;
    case GgufValueType::kArray: break;
  }
  GgufValueType elem = v.array_type();
  put<uint32_t>(out, static_cast<uint32_t>(elem));
  put<uint64_t>(out, v.array_size());
  if (const auto* s = v.as_string_array()) {
    for (const std::string& x : *s) put_string(out, x);
  } else if (const auto* ints = v.as_int_array()) {
    for (int64_t x : *ints) put_int_as(out, elem, x);
  } else if (const auto* floats = v.as_float_array()) {
    for (double x : *floats) put_float_as(out, elem, x);
  } else if (const auto* values = v.as_value_array()) {
    // A nested array's payload is its own element type, count and elements.
    for (const GgufValue& x : *values) put_value(out, x);
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key == "general.alignment") {
    std::optional<uint64_t> a = value.as_uint();
    CHECK(a && *a > 0 && (*a & (*a - 1)) == 0 && value.type() != GgufValueType::kBool,
          "general.alignment must be a nonzero power of two");
    alignment_ = *a;
  }
  auto it = metadata_index_.find(key);
  if (it != metadata_index_.end()) {
    metadata_[it->second].second = std::move(value);
    return;
  }
  metadata_index_.emplace(key, metadata_.size());
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::erase(const std::string& key) {
  auto it = metadata_index_.find(key);
  if (it == metadata_index_.end()) return;
  metadata_.erase(metadata_.begin() + static_cast<std::ptrdiff_t>(it->second));
  metadata_index_.clear();
  for (size_t i = 0; i < metadata_.size(); ++i) metadata_index_.emplace(metadata_[i].first, i);
  if (key == "general.alignment") alignment_ = 32;
}

void GgufWriter::set_uint8(const std::string& k, uint8_t v) {
  set(k, GgufValue::from_uint(GgufValueType::kUint8, v));
}
void GgufWriter::set_int8(const std::string& k, int8_t v) {
  set(k, GgufValue::from_int(GgufValueType::kInt8, v));
}
void GgufWriter::set_uint16(const std::string& k, uint16_t v) {
  set(k, GgufValue::from_uint(GgufValueType::kUint16, v));
}
void GgufWriter::set_int16(const std::string& k, int16_t v) {
  set(k, GgufValue::from_int(GgufValueType::kInt16, v));
}
void GgufWriter::set_uint32(const std::string& k, uint32_t v) {
  set(k, GgufValue::from_uint(GgufValueType::kUint32, v));
}
void GgufWriter::set_int32(const std::string& k, int32_t v) {
  set(k, GgufValue::from_int(GgufValueType::kInt32, v));
}
void GgufWriter::set_uint64(const std::string& k, uint64_t v) {
  set(k, GgufValue::from_uint(GgufValueType::kUint64, v));
}
void GgufWriter::set_int64(const std::string& k, int64_t v) {
  set(k, GgufValue::from_int(GgufValueType::kInt64, v));
}
void GgufWriter::set_float32(const std::string& k, float v) {
  set(k, GgufValue::from_float(GgufValueType::kFloat32, v));
}
void GgufWriter::set_float64(const std::string& k, double v) {
  set(k, GgufValue::from_float(GgufValueType::kFloat64, v));
}
void GgufWriter::set_bool(const std::string& k, bool v) { set(k, GgufValue::from_bool(v)); }
void GgufWriter::set_string(const std::string& k, std::string v) {
  set(k, GgufValue::from_string(std::move(v)));
}
void GgufWriter::set_string_array(const std::string& k, std::vector<std::string> v) {
  set(k, GgufValue::from_string_array(std::move(v)));
}
void GgufWriter::set_int_array(const std::string& k, GgufValueType t, std::vector<int64_t> v) {
  set(k, GgufValue::from_int_array(t, std::move(v)));
}
void GgufWriter::set_float_array(const std::string& k, GgufValueType t, std::vector<double> v) {
  set(k, GgufValue::from_float_array(t, std::move(v)));
}

Status GgufWriter::check_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                GgmlType type, uint64_t* n_bytes) const {
  if (tensor_index_.count(name)) return invalid_argument("duplicate tensor name '" + name + "'");
  if (shape.empty() || shape.size() > kMaxTensorDims)
    return invalid_argument("tensor '" + name + "' needs 1 to 4 dimensions, got " +
                            std::to_string(shape.size()));
  const GgmlTypeInfo* info = ggml_type_info(type);
  if (info == nullptr)
    return invalid_argument("tensor '" + name + "' has unknown type id " +
                            std::to_string(static_cast<uint32_t>(type)));
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) return invalid_argument("tensor '" + name + "' has a non-positive dimension");
    if (n > std::numeric_limits<int64_t>::max() / d)
      return invalid_argument("tensor '" + name + "' element count overflows");
    n *= d;
  }
  if (shape[0] % info->block_size != 0)
    return invalid_argument("tensor '" + name + "' row of " + std::to_string(shape[0]) +
                            " is not a multiple of the " + info->name + " block size " +
                            std::to_string(info->block_size));
  *n_bytes = static_cast<uint64_t>(n / info->block_size * info->type_size);
  return Status::ok();
}

Status GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                              const void* data, size_t n_bytes) {
  uint64_t expected = 0;
  FRUGAL_RETURN_IF_ERROR(check_tensor(name, shape, type, &expected));
  if (expected != n_bytes)
    return invalid_argument("tensor '" + name + "' needs " + std::to_string(expected) +
                            " bytes, got " + std::to_string(n_bytes));
  TensorProducer producer = [data, n_bytes](const ByteSink& sink) { return sink(data, n_bytes); };
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back({name, std::move(shape), type, expected, std::move(producer)});
  return Status::ok();
}

Status GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                              TensorProducer producer) {
  uint64_t expected = 0;
  FRUGAL_RETURN_IF_ERROR(check_tensor(name, shape, type, &expected));
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back({name, std::move(shape), type, expected, std::move(producer)});
  return Status::ok();
}

Status GgufWriter::write(const std::string& path) const {
  // Header, metadata and tensor infos are small; they are built in memory first.
  std::string head;
  put<uint32_t>(&head, kGgufMagic);
  put<uint32_t>(&head, kGgufVersion);
  put<uint64_t>(&head, tensors_.size());
  put<uint64_t>(&head, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(&head, key);
    put<uint32_t>(&head, static_cast<uint32_t>(value.type()));
    put_value(&head, value);
  }
  std::vector<uint64_t> offsets(tensors_.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    offsets[i] = offset;
    offset = align_up(offset + t.n_bytes, alignment_);
    put_string(&head, t.name);
    put<uint32_t>(&head, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) put<uint64_t>(&head, static_cast<uint64_t>(d));
    put<uint32_t>(&head, static_cast<uint32_t>(t.type));
    put<uint64_t>(&head, offsets[i]);
  }

  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> out, AtomicFile::create(path));
  auto zeros = [&](size_t n) -> Status {
    static const char kZero[256] = {};
    for (size_t k = 0; n > 0; n -= k) {
      k = n < sizeof(kZero) ? n : sizeof(kZero);
      FRUGAL_RETURN_IF_ERROR(out->write(kZero, k));
    }
    return Status::ok();
  };
  FRUGAL_RETURN_IF_ERROR(out->write(head.data(), head.size()));
  FRUGAL_RETURN_IF_ERROR(zeros(align_up(head.size(), alignment_) - head.size()));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    uint64_t written = 0;
    ByteSink sink = [&](const void* bytes, size_t n) -> Status {
      if (n > t.n_bytes - written)
        return internal_error("tensor '" + t.name + "' producer emitted more than its " +
                              std::to_string(t.n_bytes) + " bytes");
      written += n;
      return out->write(bytes, n);
    };
    FRUGAL_RETURN_IF_ERROR(t.producer(sink));
    if (written != t.n_bytes)
      return internal_error("tensor '" + t.name + "' producer emitted " +
                            std::to_string(written) + " of its " + std::to_string(t.n_bytes) +
                            " bytes");
    // Padding goes between tensors only, so the file ends where the last tensor's data ends
    // and any truncation is detectable.
    if (i + 1 < tensors_.size())
      FRUGAL_RETURN_IF_ERROR(zeros(align_up(t.n_bytes, alignment_) - t.n_bytes));
  }
  return out->commit();
}

}  // namespace frugal
