// Files a user names: opening one for reading without ever blocking (a FIFO, a terminal device),
// reading one whole with a size limit, and writing one atomically without touching anything the
// program did not create. Every reader and writer of user-named files goes through here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace frugal {

// Files read whole (configs, task items, prompts, eval results) larger than this are refused
// before anything is allocated; models are mapped, never read whole.
inline constexpr uint64_t kMaxReadFileBytes = uint64_t{1} << 30;  // 1 GiB

// An open, read-only file descriptor of a regular file, closed when dropped.
class ReadableFile {
 public:
  // Opens `path` with O_NONBLOCK (so a FIFO or a device cannot block the open), checks with
  // fstat that it is a regular file, then clears O_NONBLOCK. Errors: kNotFound (no such file),
  // kInvalidArgument ("PATH is a directory / a FIFO / a device / a socket, not a regular
  // file"), kIo (permission denied and other refusals, with the system's reason).
  static Result<ReadableFile> open(const std::string& path);
  ReadableFile(ReadableFile&& other) noexcept;
  ReadableFile& operator=(ReadableFile&& other) noexcept;
  ReadableFile(const ReadableFile&) = delete;
  ReadableFile& operator=(const ReadableFile&) = delete;
  ~ReadableFile();

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // at open time
  const std::string& path() const { return path_; }

 private:
  ReadableFile(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// Reads a whole regular file. Errors: those of ReadableFile::open; kOutOfRange when the file
// is larger than `max_bytes` (both sizes in the message); kIo for a failed read.
Result<std::string> read_file(const std::string& path, uint64_t max_bytes = kMaxReadFileBytes);

// Checks that `path` can be written as a regular file: it does not exist yet, or it is a
// regular file, or a symlink to one. Returns the path to write (a symlink is followed to the
// file it names, so the link stays a link). Errors: kInvalidArgument naming what it is
// instead (a directory, a FIFO, a device, a socket, a symlink to one of those or to nothing).
Result<std::string> writable_file_path(const std::string& path);

// A file written atomically: the bytes go to a new temporary file beside the destination
// (created exclusively, so no existing file is ever truncated), and commit() renames it over
// the destination, keeping the destination's permission bits when it existed. Until commit(),
// readers see the old file or none; if commit() is never reached (an error, an early return)
// the temporary file is removed and the destination is untouched.
class AtomicFile {
 public:
  // Errors: those of writable_file_path; kIo when the temporary file cannot be created (a
  // missing or read-only folder), naming the folder.
  static Result<std::unique_ptr<AtomicFile>> create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Errors: kIo (disk full, ...), naming the destination.
  Status write(const void* data, size_t n);
  Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  // Flushes, syncs and renames over the destination. Errors: kIo. At most once.
  Status commit();

  const std::string& path() const { return path_; }  // the destination (symlinks followed)

 private:
  AtomicFile() = default;
  std::string path_;
  std::string tmp_path_;
  std::FILE* f_ = nullptr;
  int mode_ = -1;  // the replaced file's permission bits; -1 when it did not exist
  bool committed_ = false;
};

// Writes `bytes` to `path` through an AtomicFile. Errors: those of AtomicFile.
Status write_file(const std::string& path, std::string_view bytes);

}  // namespace frugal
