// Non-blocking, regular-file-only reads and atomic writes of user-named files.
#include "util/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace frugal {

namespace {

// "a directory", "a FIFO", ... for a file that is not regular.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

std::string errno_text(int err) { return std::strerror(err); }

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------

Result<ReadableFile> ReadableFile::open(const std::string& path) {
  if (path.empty()) return invalid_argument("an empty file name was given");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return not_found("no such file: " + path);
    if (err == EISDIR) return invalid_argument(path + " is a directory, not a regular file");
    return io_error("cannot open " + path + ": " + errno_text(err));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat " + path + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + " is " + file_kind(st.st_mode) + ", not a regular file");
  }
  // Reads of a regular file never block in the O_NONBLOCK sense, but later readers should
  // see an ordinary descriptor.
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return ReadableFile(fd, static_cast<uint64_t>(st.st_size), path);
}

ReadableFile::ReadableFile(ReadableFile&& other) noexcept
    : fd_(other.fd_), size_(other.size_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

ReadableFile& ReadableFile::operator=(ReadableFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

ReadableFile::~ReadableFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::string> read_file(const std::string& path, uint64_t max_bytes) {
  FRUGAL_ASSIGN_OR_RETURN(ReadableFile file, ReadableFile::open(path));
  if (file.size() > max_bytes) {
    return out_of_range(path + " is " + std::to_string(file.size()) +
                        " bytes, more than the " + std::to_string(max_bytes) +
                        " bytes a file read whole may have");
  }
  std::string out(static_cast<size_t>(file.size()), '\0');
  size_t got = 0;
  // A file that grows while being read is read up to its size at open time, plus what fits
  // under the limit.
  while (true) {
    if (got == out.size()) {
      if (out.size() >= max_bytes) break;
      out.resize(std::min<uint64_t>(max_bytes, out.size() + 65536));
    }
    const ssize_t n = ::read(file.fd(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read " + path + ": " + errno_text(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

// ---- writing ------------------------------------------------------------------------------

Result<std::string> writable_file_path(const std::string& path) {
  if (path.empty()) return invalid_argument("an empty output file name was given");
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return path;  // a new file
    return io_error("cannot check " + path + ": " + errno_text(err));
  }
  if (S_ISREG(st.st_mode)) return path;
  if (!S_ISLNK(st.st_mode)) {
    return invalid_argument(path + " is " + file_kind(st.st_mode) +
                            "; the output must be a regular file (or a new file name)");
  }
  // A symlink: follow it to the regular file it names and replace that file.
  if (stat(path.c_str(), &st) != 0) {
    return invalid_argument(path + " is a symbolic link to nothing (" + errno_text(errno) +
                            "); give a regular file or a new file name");
  }
  if (!S_ISREG(st.st_mode)) {
    return invalid_argument(path + " is a symbolic link to " + file_kind(st.st_mode) +
                            "; the output must be a regular file (or a new file name)");
  }
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return io_error("cannot resolve the symbolic link " + path + ": " + errno_text(errno));
  }
  return std::string(resolved);
}

Result<std::unique_ptr<AtomicFile>> AtomicFile::create(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(std::string target, writable_file_path(path));
  std::unique_ptr<AtomicFile> f(new AtomicFile());
  f->path_ = target;
  struct stat st;
  if (stat(target.c_str(), &st) == 0) f->mode_ = static_cast<int>(st.st_mode & 07777);
  // A fresh name beside the destination (rename is atomic only within one file system),
  // created exclusively so that no existing file is ever opened for writing.
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(getpid()));
  const size_t slash = target.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : target.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof(suffix), ".tmp-%016llx",
                  static_cast<unsigned long long>(rng()));
    f->tmp_path_ = dir + "." + base + suffix;
    fd = ::open(f->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0666);
    if (fd < 0 && errno != EEXIST) {
      const int err = errno;
      f->tmp_path_.clear();
      return io_error("cannot write " + path + ": cannot create a file in " + folder_of(target) +
                      ": " + errno_text(err));
    }
  }
  if (fd < 0) {
    f->tmp_path_.clear();
    return io_error("cannot write " + path + ": no free temporary file name in " +
                    folder_of(target));
  }
  f->f_ = fdopen(fd, "wb");
  if (f->f_ == nullptr) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot write " + path + ": " + errno_text(err));
  }
  std::setvbuf(f->f_, nullptr, _IOFBF, 1 << 20);
  return f;
}

AtomicFile::~AtomicFile() {
  if (f_ != nullptr) std::fclose(f_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Status AtomicFile::write(const void* data, size_t n) {
  CHECK(f_ != nullptr, "AtomicFile::write after commit");
  if (n == 0) return Status::ok();
  if (std::fwrite(data, 1, n, f_) != n) {
    return io_error("cannot write " + path_ + ": " + errno_text(errno));
  }
  return Status::ok();
}

Status AtomicFile::commit() {
  CHECK(f_ != nullptr && !committed_, "AtomicFile::commit twice");
  const bool flushed = std::fflush(f_) == 0;
  const int flush_err = errno;
  if (flushed && mode_ >= 0) fchmod(fileno(f_), static_cast<mode_t>(mode_));
  const bool synced = flushed && fsync(fileno(f_)) == 0;
  const int sync_err = errno;
  const bool closed = std::fclose(f_) == 0;
  const int close_err = errno;
  f_ = nullptr;
  if (!flushed) return io_error("cannot write " + path_ + ": " + errno_text(flush_err));
  if (!synced) return io_error("cannot write " + path_ + ": " + errno_text(sync_err));
  if (!closed) return io_error("cannot write " + path_ + ": " + errno_text(close_err));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return io_error("cannot replace " + path_ + ": " + errno_text(errno));
  }
  committed_ = true;
  return Status::ok();
}

Status write_file(const std::string& path, std::string_view bytes) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> f, AtomicFile::create(path));
  FRUGAL_RETURN_IF_ERROR(f->write(bytes));
  return f->commit();
}

}  // namespace frugal
