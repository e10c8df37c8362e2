// GgufWriter: builds a GGUF v3 file from metadata and tensors, streaming tensor bytes to disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/gguf.h"
#include "kernels/ggml_type.h"
#include "util/status.h"

namespace frugal {

class GgufWriter {
 public:
  // Hands `n` bytes of a tensor's data to the file; returns the write error, if any.
  using ByteSink = std::function<Status(const void* bytes, size_t n)>;
  // Produces one tensor's bytes, in order, through `sink`, in as many pieces as it likes; it
  // must emit exactly the tensor's byte size. Called once, during write().
  using TensorProducer = std::function<Status(const ByteSink& sink)>;

  GgufWriter() = default;

  // Sets `key` (a new key is appended; an existing key keeps its place and takes the value).
  // "general.alignment" (a nonzero power of two) also sets the data alignment (default 32).
  void set(const std::string& key, GgufValue value);
  void set_uint8(const std::string& key, uint8_t v);
  void set_int8(const std::string& key, int8_t v);
  void set_uint16(const std::string& key, uint16_t v);
  void set_int16(const std::string& key, int16_t v);
  void set_uint32(const std::string& key, uint32_t v);
  void set_int32(const std::string& key, int32_t v);
  void set_uint64(const std::string& key, uint64_t v);
  void set_int64(const std::string& key, int64_t v);
  void set_float32(const std::string& key, float v);
  void set_float64(const std::string& key, double v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string v);
  void set_string_array(const std::string& key, std::vector<std::string> v);
  // `element_type` is one of the integer types; values must fit it.
  void set_int_array(const std::string& key, GgufValueType element_type, std::vector<int64_t> v);
  // `element_type` is kFloat32 or kFloat64.
  void set_float_array(const std::string& key, GgufValueType element_type, std::vector<double> v);
  // Removes `key` if present.
  void erase(const std::string& key);
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }

  // Adds a tensor whose bytes live at `data` (n_bytes long) until write() returns.
  // `shape` is in GGUF order (shape[0] = row length), 1 to 4 positive dimensions; shape[0]
  // must be a multiple of the type's block size and n_bytes must equal the tensor's size.
  // Errors: kInvalidArgument naming the tensor (duplicate name, bad shape, wrong byte count).
  Status add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                    const void* data, size_t n_bytes);
  // Same, with bytes produced while writing: only one tensor's data is in flight at a time.
  Status add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                    TensorProducer producer);
  size_t n_tensors() const { return tensors_.size(); }

  // Writes the whole file to `path` atomically (util's AtomicFile: a temporary file beside
  // it, then rename). Errors: kInvalidArgument when `path` is a directory, FIFO, device or
  // socket; kIo (create, write, rename), or what a producer returned; a producer that emits
  // the wrong number of bytes is kInternal. On error `path` is untouched.
  Status write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    uint64_t n_bytes;
    TensorProducer producer;
  };
  Status check_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                      uint64_t* n_bytes) const;

  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<PendingTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  uint64_t alignment_ = 32;
};

}  // namespace frugal
