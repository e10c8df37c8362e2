// Memory mapping with errors a user can act on.
#include "util/mmap_file.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace frugal {

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(ReadableFile in, ReadableFile::open(path));
  std::unique_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(in.size());
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, in.fd(), 0);
    if (p == MAP_FAILED) return io_error("cannot mmap " + path + ": " + std::strerror(errno));
    file->data_ = static_cast<const uint8_t*>(p);
  }
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace frugal
