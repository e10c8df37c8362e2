// util: Status/Result propagation, file mapping errors, the thread pool's coverage of a range,
// and the file rules every command relies on: reads that never block on a FIFO, writes that are
// atomic, go only to regular files and never touch a file the program did not create; thread
// counts and thread-creation failures reported, never thrown; checked size arithmetic.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "util/checked_math.h"
#include "util/file_io.h"
#include "util/mmap_file.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("frugal_util_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string contents(const std::string& name) const {
    std::ifstream in(path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};

Result<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument("value must be positive, got " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  FRUGAL_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST(Status, PropagatesErrorsWithMessage) {
  EXPECT_EQ(doubled(4).value(), 8);
  Result<int> bad = doubled(-1);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().to_string(), "invalid argument: value must be positive, got -1");
}

TEST(MappedFile, MissingFileIsNotFound) {
  auto f = MappedFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

TEST(MappedFile, DirectoryIsRefused) {
  auto f = MappedFile::open("/tmp");
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(f.status().message(), "/tmp is a directory, not a regular file");
}

TEST_F(FileIoTest, AFifoIsRefusedWithoutBlocking) {
  const std::string fifo = path("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // No writer ever opens the FIFO: a blocking open would hang here for good.
  const auto start = std::chrono::steady_clock::now();
  auto mapped = MappedFile::open(fifo);
  auto text = read_file(fifo);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_FALSE(mapped.is_ok());
  ASSERT_FALSE(text.is_ok());
  EXPECT_EQ(text.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(text.status().message(), fifo + " is a FIFO (named pipe), not a regular file");
  auto device = read_file("/dev/zero");  // would never end if read
  ASSERT_FALSE(device.is_ok());
  EXPECT_NE(device.status().message().find("a character device"), std::string::npos);
}

TEST_F(FileIoTest, ReadFileRefusesAFileOverTheLimitWithBothSizes) {
  ASSERT_TRUE(write_file(path("big"), std::string(100, 'x')).is_ok());
  EXPECT_EQ(read_file(path("big")).value(), std::string(100, 'x'));
  auto r = read_file(path("big"), 10);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("is 100 bytes, more than the 10 bytes"), std::string::npos)
      << r.status().message();
}

TEST_F(FileIoTest, WriteFileReplacesARegularFileWholeAndKeepsItsMode) {
  ASSERT_TRUE(write_file(path("out"), "first").is_ok());
  ASSERT_EQ(chmod(path("out").c_str(), 0640), 0);
  ASSERT_TRUE(write_file(path("out"), "second").is_ok());
  EXPECT_EQ(contents("out"), "second");
  struct stat st;
  ASSERT_EQ(stat(path("out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(names(), std::vector<std::string>{"out"}) << "no temporary file left behind";
}

TEST_F(FileIoTest, WriteFileRefusesWhatIsNotARegularFileAndLeavesItAlone) {
  const std::string fifo = path("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  fs::create_directories(path("folder"));
  fs::create_symlink(path("nowhere"), path("dangling"));
  fs::create_symlink("/dev/null", path("to-device"));
  const struct {
    std::string target;
    const char* says;
  } cases[] = {{fifo, "is a FIFO (named pipe); the output must be a regular file"},
               {path("folder"), "is a directory; the output must be a regular file"},
               {"/dev/null", "is a character device"},
               {path("dangling"), "is a symbolic link to nothing"},
               {path("to-device"), "is a symbolic link to a character device"}};
  for (const auto& c : cases) {
    Status s = write_file(c.target, "x");
    ASSERT_FALSE(s.is_ok()) << c.target;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(s.message().find(c.target + " " + c.says), std::string::npos) << s.message();
  }
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO is still a FIFO";
  EXPECT_TRUE(fs::is_symlink(path("dangling")));
  EXPECT_FALSE(fs::exists(path("nowhere"))) << "a dangling link is not followed into a new file";
  EXPECT_EQ(names(), (std::vector<std::string>{"dangling", "folder", "pipe", "to-device"}));
}

TEST_F(FileIoTest, WriteFileFollowsASymlinkToARegularFile) {
  ASSERT_TRUE(write_file(path("real"), "old").is_ok());
  fs::create_symlink(path("real"), path("link"));
  ASSERT_TRUE(write_file(path("link"), "new").is_ok());
  EXPECT_TRUE(fs::is_symlink(path("link"))) << "the link stays a link";
  EXPECT_EQ(contents("real"), "new");
}

TEST_F(FileIoTest, AFailedWriteLeavesTheOldFileAndNoTemporaryFile) {
  ASSERT_TRUE(write_file(path("out"), "old").is_ok());
  // A file called like a naive temporary name is someone else's and must survive.
  ASSERT_TRUE(write_file(path("out.tmp"), "not mine").is_ok());
  {
    auto f = AtomicFile::create(path("out"));
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    ASSERT_TRUE((*f)->write("half of the new").is_ok());
    EXPECT_EQ(contents("out"), "old") << "nothing visible before commit";
  }  // dropped without commit: an error path
  EXPECT_EQ(contents("out"), "old");
  EXPECT_EQ(contents("out.tmp"), "not mine");
  EXPECT_EQ(names(), (std::vector<std::string>{"out", "out.tmp"}));
  Status missing = write_file(path("no/such/folder/x"), "x");
  EXPECT_EQ(missing.code(), ErrorCode::kIo);
  EXPECT_NE(missing.message().find("cannot create a file in " + path("no/such/folder")),
            std::string::npos)
      << missing.message();
}

TEST(ThreadCount, ZeroIsTheDefaultAndAbsurdCountsAreRefusedWithBothNumbers) {
  EXPECT_EQ(resolve_thread_count(0).value(), default_thread_count());
  EXPECT_EQ(resolve_thread_count(1).value(), 1);
  EXPECT_EQ(resolve_thread_count(max_thread_count()).value(), max_thread_count());
  auto many = resolve_thread_count(100000);
  ASSERT_FALSE(many.is_ok());
  EXPECT_EQ(many.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(many.status().message().find("100000 is more than " +
                                         std::to_string(max_thread_count())),
            std::string::npos)
      << many.status().message();
  EXPECT_FALSE(resolve_thread_count(-1).is_ok());
  EXPECT_FALSE(ThreadPool::create(100000).is_ok());
  auto pool = ThreadPool::create(2);
  ASSERT_TRUE(pool.is_ok());
  EXPECT_EQ((*pool)->n_threads(), 2);
}

#if defined(__SANITIZE_ADDRESS__)
#define FRUGAL_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRUGAL_UNDER_ASAN 1
#endif
#endif

// With an address-space limit just above what the process uses, no thread stack fits: the
// pool reports it as an error instead of letting std::system_error end the program.
TEST(ThreadCount, ThreadCreationFailureIsAnErrorNotACrash) {
#ifdef FRUGAL_UNDER_ASAN
  GTEST_SKIP() << "ASan reserves terabytes of address space; RLIMIT_AS cannot be used";
#else
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    statm >> pages;
    const rlim_t limit = pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + (2 << 20);
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(10);
    auto pool = ThreadPool::create(std::max(2, max_thread_count()));
    if (pool.is_ok()) _exit(11);
    if (pool.status().code() != ErrorCode::kUnavailable) _exit(12);
    if (pool.status().message().find("refused to start thread 2") == std::string::npos) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child crashed";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit, 11: created anyway, 12: wrong code, "
                                       "13: wrong message";
#endif
}

TEST(CheckedMath, OverflowIsReportedNotWrapped) {
  EXPECT_EQ(checked_mul(3, 4), 12);
  EXPECT_EQ(checked_mul(int64_t{1} << 62, 4), std::nullopt);
  EXPECT_EQ(checked_mul(int64_t{1} << 33, int64_t{1} << 31), std::nullopt);
  EXPECT_EQ(checked_add(std::numeric_limits<int64_t>::max(), 1), std::nullopt);
  EXPECT_EQ(checked_product({2, 3, 7}), 42);
  EXPECT_EQ(checked_product({int64_t{1} << 40, int64_t{1} << 20, 16}), std::nullopt);
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 64, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      for (int rep = 0; rep < 20; ++rep) {
        pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
      }
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 20) << "n=" << n << " i=" << i;
    }
  }
}

}  // namespace
}  // namespace frugal
