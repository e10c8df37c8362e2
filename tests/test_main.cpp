// The main() of every test binary: GoogleTest's, plus one rule. When a suite's SetUpTestSuite
// fails (a server that did not start in time, a model that did not load), GoogleTest marks
// each of its tests "[  SKIPPED ]", and ctest's skip pattern for discovered tests then reports
// the failure as a skip, which CI counts as a pass. Here the first such test ends the process
// with a failure instead, before anything prints "SKIPPED".
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace {

class SuiteSetUpFailureFails : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo& info) override {
    const ::testing::TestSuite* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
    if (suite == nullptr || !suite->ad_hoc_test_result().Failed()) return;
    std::printf("FAILED: %s.%s did not run because %s's SetUpTestSuite failed (above)\n",
                info.test_suite_name(), info.name(), info.test_suite_name());
    std::fflush(stdout);
    std::_Exit(1);
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new SuiteSetUpFailureFails);
  return RUN_ALL_TESTS();
}
