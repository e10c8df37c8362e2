// MappedFile: a read-only memory map of a whole file; model weights are views into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/file_io.h"  // read_file, write_file
#include "util/status.h"

namespace frugal {

class MappedFile {
 public:
  // Maps `path` read-only. Errors: those of ReadableFile::open (a FIFO, device or directory is
  // refused without blocking), kIo (cannot map).
  // An empty file maps to size() == 0 and data() == nullptr.
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace frugal
