// The frugal binary against hostile input (issue 15): one test per class the probe found —
// hangs, unbounded allocations, integer overflow, uncaught exceptions, wrong output with exit 0,
// unclear messages, and outputs that replaced what they should not. Each asserts what a user
// sees: the exit code, and a one-line message that names the input and what to do. Every
// command runs under `timeout`, so a hang fails the test (exit 124) instead of stalling it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/gguf_writer.h"
#include "test_shell.h"
#include "tiny_model.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

using Output = test::CommandOutput;

// frugal with `args` under a 60 s timeout, stderr joined to stdout.
Output frugal(const std::string& args) {
  return test::run_command("timeout 60 " + std::string(FRUGAL_BINARY) + " " + args + " 2>&1");
}

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("frugal_hostile_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = path("tiny.gguf");
    GgufWriter w = test::tiny_model_writer();
    ASSERT_TRUE(w.write(model_).is_ok());
    fifo_ = path("pipe");
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0);
    config_ = path("frugal.toml");
    std::ofstream(config_) << "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"tiny.gguf\"\n"
                              "price_in = 0.1\nprice_out = 0.1\n"
                              "[[tier]]\nname = \"large\"\nkind = \"local\"\nmodel = \"tiny.gguf\"\n"
                              "price_in = 1\nprice_out = 1\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  // A task-item line with the given id, difficulty and role.
  static std::string item(const std::string& id, const std::string& difficulty = "1",
                          const std::string& role = "user") {
    return R"({"id": ")" + id + R"(", "slice": "add", "difficulty": )" + difficulty +
           R"(, "messages": [{"role": ")" + role +
           R"(", "content": "hi"}], "reference": "2", "check": {"method": "numeric"}})";
  }
  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

  static void expect_error(const Output& o, int code, const std::string& says) {
    EXPECT_EQ(o.exit_code, code) << o.out;
    EXPECT_NE(o.out.find(says), std::string::npos) << "'" << says << "' not in:\n" << o.out;
    EXPECT_LT(o.out.size(), 600u) << "an error is a line or two, not a dump:\n" << o.out;
  }

  static fs::path dir_;
  static std::string model_, fifo_, config_;
};
fs::path HostileInputTest::dir_;
std::string HostileInputTest::model_, HostileInputTest::fifo_, HostileInputTest::config_;

// Hang: a FIFO blocked in open() before any check; now every reader refuses it at once.
TEST_F(HostileInputTest, AFifoAsAnyInputIsRefusedWithoutHanging) {
  const std::string is_fifo = "is a FIFO (named pipe), not a regular file";
  expect_error(frugal("run -m " + fifo_ + " -p hi"), 1, is_fifo);
  expect_error(frugal("run -m " + model_ + " -f " + fifo_), 2, is_fifo);
  expect_error(frugal("inspect " + fifo_), 1, is_fifo);
  expect_error(frugal("tokenize -m " + fifo_ + " < /dev/null"), 1, is_fifo);
  expect_error(frugal("cascade --config " + fifo_ + " -p hi"), 2, is_fifo);
  expect_error(frugal("eval --config " + fifo_ + " --data " + fifo_), 2, is_fifo);
  expect_error(frugal("eval --config " + config_ + " --data " + fifo_ + " -t 1"), 2, is_fifo);
  expect_error(frugal("plan cascade --config " + config_ + " --eval " + fifo_), 2, is_fifo);
  expect_error(frugal("plan memory --gguf " + fifo_), 2, is_fifo);
}

// Hang: -t 100000 kept spawning threads; counts are capped at 4 x the hardware threads.
TEST_F(HostileInputTest, AbsurdThreadCountsAreRefusedForEveryCommand) {
  for (const std::string& cmd :
       {"run -m " + model_ + " -p hi", "bench -m " + model_, "cascade --config " + config_ + " -p hi",
        "eval --config " + config_ + " --data x", "calibrate --config " + config_ + " --data x"}) {
    expect_error(frugal(cmd + " -t 100000"), 2, "--threads: a thread count of 100000 is more than");
    expect_error(frugal(cmd + " -t -3"), 2, "is negative");
  }
}

// Crash: std::system_error from std::thread when the system refuses a thread. A huge stack
// limit makes every new thread's stack mapping fail.
TEST_F(HostileInputTest, RefusedThreadsAreAnErrorNotACrash) {
  Output o = test::run_command("bash -c 'ulimit -s 1000000000 && exec timeout 60 " +
                               std::string(FRUGAL_BINARY) + " run -m " + model_ +
                               " -p hi -n 1 -t 2' 2>&1");
  expect_error(o, 1, "the system refused to start thread 2 of 2");
}

// Crash (bad_alloc): a block count of 2^31 - 1 was allocated before the tensors were checked.
// Wrong with exit 0: 3 layers of metadata over 4 of tensors ran another model.
TEST_F(HostileInputTest, BlockCountsThatDoNotMatchTheTensorsAreRefused) {
  GgufWriter huge = test::tiny_model_writer();
  huge.set_uint32("llama.block_count", 2147483647);
  ASSERT_TRUE(huge.write(path("huge.gguf")).is_ok());
  expect_error(frugal("run -m " + path("huge.gguf") + " -p hi -t 1"), 1,
               "llama.block_count is 2147483647 but the file has tensors for 2 layers");
  test::TinyModelShape four;
  four.n_layer = 4;
  GgufWriter fewer = test::tiny_model_writer(four);
  fewer.set_uint32("llama.block_count", 3);
  ASSERT_TRUE(fewer.write(path("fewer.gguf")).is_ok());
  expect_error(frugal("run -m " + path("fewer.gguf") + " -p hi -t 1"), 1,
               "the file has tensors for layer 3 but llama.block_count is 3");
}

// Overflow: -c 9223372036854775807 wrapped to a 16-token cache.
TEST_F(HostileInputTest, ContextSizesThatOverflowAreRefused) {
  for (const char* ctx : {"9223372036854775807", "2147483648", "-1"}) {
    expect_error(frugal("run -m " + model_ + " -p hi -t 1 -c " + std::string(ctx)), 2,
                 "--ctx: " + std::string(ctx) + " is out of range: give an integer from 0 to "
                 "2147483647");
  }
}

// Unclear: CLI11's own range errors printed a 300-digit bound.
TEST_F(HostileInputTest, RangeErrorsAreShortSentences) {
  expect_error(frugal("run -m " + model_ + " -p hi --temp 1e300"), 2,
               "--temp: 1e300 is out of range: give a number from 0 to 100");
  expect_error(frugal("eval --config " + config_ + " --data x --limit -1"), 2,
               "--limit: -1 is out of range: give an integer from 0 to");
  expect_error(frugal("cascade --config " + config_ + " -p hi --seed -5"), 2,
               "--seed: -5 is out of range");
  expect_error(frugal("run -m " + model_ + " -p hi --top-p nan"), 2, "--top-p: nan is out of range");
  Output long_number = frugal("run -m " + model_ + " -p hi -n " + std::string(300, '9'));
  expect_error(long_number, 2, "is not an integer from 0 to 1073741824");
}

// Wrong with exit 0: cascade -p '' answered while run refused.
TEST_F(HostileInputTest, AnEmptyPromptIsRefusedByCascadeAsByRun) {
  expect_error(frugal("cascade --config " + config_ + " -p '' -t 1"), 2, "the prompt is empty");
  expect_error(frugal("run -m " + model_ + " -p '' -t 1"), 2, "the prompt is empty");
}

// Wrong with exit 0 and unclear: task items the reader accepted, or refused with no reason.
TEST_F(HostileInputTest, BadTaskItemsAreRefusedNamingTheLine) {
  auto eval = [&](const std::string& name, const std::string& text) {
    return frugal("eval --config " + config_ + " -t 1 --data " + write(name, text));
  };
  expect_error(eval("d.jsonl", item("a", "99")), 2,
               "d.jsonl:1: field 'difficulty' must be an integer from 1 to 4 (got 99)");
  expect_error(eval("dup.jsonl", item("a") + "\n" + item("a")), 2,
               "dup.jsonl:2: id 'a' was already used on line 1");
  expect_error(eval("robot.jsonl", item("a", "1", "robot")), 2, "role 'robot'");
  std::string latin1 = item("a");
  latin1.replace(latin1.find("hi"), 2, "h\xe9");
  expect_error(eval("latin1.jsonl", latin1), 2, "latin1.jsonl:1: not UTF-8 text (byte 0xe9");
}

// Unclear: a directory as --config said "no tiers"; as --eval it threw.
TEST_F(HostileInputTest, ADirectoryGivenAsAFileIsNamedAsADirectory) {
  const std::string dir = dir_.string();
  expect_error(frugal("cascade --config " + dir + " -p hi"), 2, dir + " is a directory");
  expect_error(frugal("plan cascade --config " + config_ + " --eval " + dir), 2,
               dir + " is a directory");
  expect_error(frugal("run -m " + dir + " -p hi"), 1, dir + " is a directory");
}

// Outputs: quantize replaced a FIFO, a symlink or a device given as the output. Now the
// output is written atomically to a regular file (a symlink to one is followed) and anything
// else is refused, untouched.
TEST_F(HostileInputTest, OutputsAreRegularFilesWrittenAtomically) {
  fs::create_symlink("/dev/null", path("null-link"));
  const std::string quantize = "quantize " + model_ + " ";
  expect_error(frugal(quantize + fifo_ + " q8_0"), 1, fifo_ + " is a FIFO (named pipe); the "
                                                   "output must be a regular file");
  expect_error(frugal(quantize + "/dev/null q8_0"), 1, "/dev/null is a character device");
  expect_error(frugal(quantize + path("null-link") + " q8_0"), 1,
               "is a symbolic link to a character device");
  expect_error(frugal(quantize + dir_.string() + " q8_0"), 1, "is a directory");
  struct stat st;
  ASSERT_EQ(lstat(fifo_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  EXPECT_TRUE(fs::is_symlink(path("null-link")));

  // Through a symlink to a regular file: the file is replaced, the link stays.
  write("old.gguf", "not a model");
  fs::create_symlink(path("old.gguf"), path("link.gguf"));
  Output ok = frugal(quantize + path("link.gguf") + " q8_0");
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_TRUE(fs::is_symlink(path("link.gguf")));
  EXPECT_EQ(frugal("inspect " + path("old.gguf")).exit_code, 0);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos)
        << "temporary file left: " << e.path();
  }
  // run --dump-logits and eval --answers share the writer.
  expect_error(frugal("run -m " + model_ + " -p hi -n 0 -t 1 --dump-logits " + fifo_), 1,
               "is a FIFO (named pipe); the output must be a regular file");
}

}  // namespace
}  // namespace frugal
