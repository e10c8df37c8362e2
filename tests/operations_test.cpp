// The production loop through frugal serve (docs/OPERATIONS.md): shadow checks that never hold
// up the client and reach /metrics and the distillation log, the drift alarm firing on traffic
// shifted to the hard tail and escalate-all taking effect, and reloads (POST /admin/reload)
// that keep every request answered, bring in the new threshold, and refuse a bad config while
// the old one keeps serving.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/drift.h"
#include "live_server.h"
#include "server/server.h"

namespace frugal::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kSource = FRUGAL_SOURCE_DIR;

fs::path temp_dir(const std::string& name) { return test::temp_dir("operations_test", name); }

// The bundled cascade's text (frugal.toml) with model paths made absolute, its [shadow] tables
// dropped, `extra` appended,
// and the cache tier dropped when `cache` is false (repeated prompts then reach the tiers).
std::string bundled_text(const std::string& extra, bool cache = true) {
  std::ifstream in(kSource + "/frugal.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text = std::regex_replace(text, std::regex("model = \"models/"),
                            "model = \"" + kSource + "/models/");
  // frugal.toml ends with the [shadow] table its calibration wrote; each test writes its own.
  const size_t shadow = text.find("\n[shadow]\n");
  if (shadow != std::string::npos) text.erase(shadow + 1);
  EXPECT_EQ(text.find("[shadow"), std::string::npos) << "frugal.toml's [shadow] is no longer last";
  if (!cache) {
    const std::string cache_tier = "[[tier]]\nname = \"cache\"\nkind = \"cache\"\nlatency_ms_fixed = 1.0\n";
    const size_t at = text.find(cache_tier);
    EXPECT_NE(at, std::string::npos) << "frugal.toml's cache tier changed; update this test";
    if (at != std::string::npos) text.erase(at, cache_tier.size());
  }
  return text + "\n" + extra;
}

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

cascade::CascadeConfig load(const std::string& path) {
  auto c = cascade::load_cascade_config(path);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? *c : cascade::CascadeConfig{};
}

struct Item {
  json line;
  json request(int max_tokens = 32) const {
    json check = line["check"];
    return {{"model", "frugal"},
            {"messages", line["messages"]},
            {"max_tokens", max_tokens},
            {"frugal", {{"slice", line["slice"]}, {"check", check}}}};
  }
};

std::vector<Item> heldout(int difficulty = 0) {
  std::ifstream in(kSource + "/data/heldout.jsonl");
  std::vector<Item> out;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    if (difficulty == 0 || j["difficulty"] == difficulty) out.push_back({j});
  }
  return out;
}

using test::LiveServer;
using test::Reply;

// A chat request's reply, its body given as JSON.
Reply post(httplib::Client& c, const std::string& path, const json& body,
           const httplib::Headers& headers = {}) {
  return test::post_json(c, path, body, headers);
}

// The value of one series in /metrics text (0 when absent): `series` as it appears, labels
// included, e.g. frugal_drift_alarm{slice="all"}.
double metric(httplib::Client& c, const std::string& series) {
  auto res = c.Get("/metrics");
  if (!res) return -1;
  std::istringstream in(res->body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(series, 0) == 0 && line.size() > series.size() &&
        (line[series.size()] == ' ' || line[series.size()] == '{' || line[series.size()] == ',')) {
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return sum;
}

std::vector<json> read_lines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

// ---------------------------------------------------------------------------- shadow checks

TEST(OperationsShadow, KeptAnswersAreCheckedEscalationsLoggedAndTheClientNeverWaits) {
  const fs::path dir = temp_dir("shadow");
  const std::string log_path = (dir / "distill.jsonl").string();
  ServerOptions o;
  o.config = load(write(dir / "frugal.toml",
                        bundled_text("[shadow]\nfraction = 1.0\nbudget_per_hour = 1.0\n", false) +
                            "\n"));
  o.config.server.distill_log = log_path;
  o.shadow_seed = 1;  // the same checks sampled on every run
  LiveServer s(std::move(o));
  auto c = s.client();
  const std::vector<Item> items = heldout();
  int kept = 0, escalated = 0;
  std::map<std::string, int> kept_by_slice;
  for (size_t i = 0; i < 40; ++i) {
    Reply r = post(*c, "/v1/chat/completions", items[i].request());
    ASSERT_EQ(r.status, 200) << r.body;
    if (r.tier() == "small") {
      ++kept;
      kept_by_slice[items[i].line["slice"]]++;
    } else {
      ++escalated;
    }
  }
  ASSERT_GT(kept, 5);
  ASSERT_GT(escalated, 2);
  s.server().shadow()->wait_idle();
  EXPECT_EQ(metric(*c, "frugal_shadow_checks_total"), kept) << "every kept answer was checked";
  for (const auto& [slice, n] : kept_by_slice) {
    EXPECT_EQ(metric(*c, "frugal_shadow_checks_total{slice=\"" + slice + "\""), n) << slice;
  }
  EXPECT_EQ(metric(*c, "frugal_shadow_checks_total{slice=\"lookup\",outcome=\"agree\",method=\"check\"}") +
                metric(*c, "frugal_shadow_checks_total{slice=\"lookup\",outcome=\"disagree\",method=\"check\"}"),
            kept_by_slice["lookup"])
      << "requests carrying an item check are compared by it";
  EXPECT_GT(metric(*c, "frugal_shadow_spent_dollars_total"), 0);
  EXPECT_EQ(metric(*c, "frugal_distill_log_lines"), kept + escalated);
  const std::vector<json> lines = read_lines(log_path);
  ASSERT_EQ(static_cast<int>(lines.size()), kept + escalated);
  int shadow_lines = 0, escalated_lines = 0;
  for (const json& l : lines) {
    if (l["kind"] == "shadow") {
      ++shadow_lines;
      EXPECT_TRUE(l["agree"].is_boolean());
      EXPECT_EQ(l["tier1"]["tier"], "small");
      EXPECT_FALSE(l["top"]["tokens"].empty());
    } else {
      ++escalated_lines;
      EXPECT_EQ(l["kind"], "escalated");
      EXPECT_EQ(l["top"]["tier"], "large");
      // Stopped early by the logprob floor, tier 1 has no score.
      EXPECT_EQ(l["tier1"]["score"].is_number(), !l["escalated_early"].get<bool>()) << l.dump();
      ASSERT_FALSE(l["top"]["tokens"].empty());
      EXPECT_LE(l["top"]["tokens"][0]["logprob"].get<double>(), 0.0);
    }
    EXPECT_FALSE(l["messages"].empty());
    EXPECT_TRUE(l["slice"].is_string());
  }
  EXPECT_EQ(shadow_lines, kept);
  EXPECT_EQ(escalated_lines, escalated);
  fs::remove_all(dir);
}

// A top tier that takes 1.5 s: the kept answer's response still comes at tier 1's speed, and
// the check lands in /metrics afterwards.
class SlowTier : public cascade::SyncTier {
 public:
  SlowTier(cascade::TierConfig c, std::string text, std::chrono::milliseconds delay)
      : SyncTier(std::move(c)), text_(std::move(text)), delay_(delay) {}

 protected:
  Result<cascade::TierAnswer> answer_now(const cascade::TierRequest&,
                                         const cascade::TokenObserver& observer) override {
    std::this_thread::sleep_for(delay_);
    cascade::TierAnswer a;
    a.text = text_;
    a.finish = FinishReason::kStop;
    a.tokens_in = 10;
    a.tokens_out = 1;
    cascade::AnswerToken t;
    t.id = 1;
    t.piece = t.text = text_;
    t.logprob = -0.1f;
    a.tokens = {t};
    if (observer) observer(t);
    a.cost = cost(10, 1);
    return a;
  }

 private:
  std::string text_;
  std::chrono::milliseconds delay_;
};

TEST(OperationsShadow, TheResponseDoesNotWaitForTheTopTier) {
  ServerOptions o;
  auto cfg = cascade::parse_cascade_config(
      "[shadow]\nfraction = 1.0\nbudget_per_hour = 1.0\n"
      "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"x.gguf\"\nprice_in = 1\nprice_out = 1\n"
      "[[tier]]\nname = \"large\"\nkind = \"local\"\nmodel = \"x.gguf\"\nprice_in = 10\nprice_out = 10\n",
      "scripted.toml", "");
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  o.config = *cfg;
  o.make_cascade = [](const cascade::CascadeConfig& c, const cascade::CascadeOptions&)
      -> Result<std::unique_ptr<cascade::Cascade>> {
    std::vector<std::unique_ptr<cascade::Tier>> tiers;
    tiers.push_back(std::make_unique<SlowTier>(*c.model_tiers()[0], "42", 0ms));
    tiers.push_back(std::make_unique<SlowTier>(*c.model_tiers()[1], "42", 1500ms));
    auto k = std::make_unique<cascade::Cascade>(c, nullptr, std::move(tiers));
    k->set_scorer([](const std::vector<double>&) { return 1.0; });
    return k;
  };
  o.shadow_seed = 1;  // the same checks sampled on every run
  LiveServer s(std::move(o));
  auto c = s.client();
  const auto start = Clock::now();
  Reply r = post(*c, "/v1/chat/completions",
                 {{"messages", {{{"role", "user"}, {"content", "6 times 7?"}}}}});
  const auto took = Clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.tier(), "small");
  EXPECT_LT(took, 700ms) << "the client waited for the shadow check";
  EXPECT_EQ(metric(*c, "frugal_shadow_checks_total"), 0) << "the check is still running";
  s.server().shadow()->wait_idle();
  EXPECT_EQ(metric(*c, "frugal_shadow_checks_total{slice=\"none\",outcome=\"agree\",method=\"exact\"}"), 1);
}

// ---------------------------------------------------------------------------- drift alarm

// Prompts of kinds the student never learned: 4-digit sums, 2-by-2-digit products, 12-letter
// reversals (the suite stops at 3 digits, 3-by-1 and 9 letters). The scorer escalates most of
// them, but the few tier 1 keeps are mostly wrong.
std::vector<Item> unlearned(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  auto in = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Item> out;
  for (int i = 0; i < n; ++i) {
    json line;
    const json numeric = {{"method", "numeric"}, {"tolerance", 0}};
    if (i % 3 == 0) {
      const int a = in(1000, 9999), b = in(1000, 9999);
      line = {{"slice", "add4"}, {"content", "What is " + std::to_string(a) + " + " + std::to_string(b) + "?"},
              {"check", numeric}};
    } else if (i % 3 == 1) {
      const int a = in(10, 99), b = in(10, 99);
      line = {{"slice", "mul2"}, {"content", "What is " + std::to_string(a) + " * " + std::to_string(b) + "?"},
              {"check", numeric}};
    } else {
      std::string text = "Reverse:";
      for (int k = in(11, 13); k > 0; --k) text += std::string(" ") + static_cast<char>('a' + in(0, 25));
      line = {{"slice", "reverse12"}, {"content", text}, {"check", {{"method", "exact"}}}};
    }
    line["messages"] = json::array({{{"role", "user"}, {"content", line["content"]}}});
    out.push_back({line});
  }
  return out;
}

// Stationary traffic from the calibration distribution (held-out items) raises no alarm; then
// the traffic turns to prompts the student never learned, tier 1's kept answers agree with
// the top tier far less often than calibration predicted, the alarm fires within the delay the
// CUSUM's design predicts for that agreement, and escalate-all sends every request to the top
// tier until a reload.
TEST(OperationsDrift, UnlearnedTrafficFiresTheAlarmAndEscalateAllTakesEffect) {
  const fs::path dir = temp_dir("drift");
  setenv("FRUGAL_OPS_TEST_ADMIN", "admin-secret", 1);
  // Near what `frugal calibrate` predicts for the bundled cascade (96.7 % at its own threshold;
  // at the shipped threshold kept answers agree 99.9 % of the time): docs/OPERATIONS.md.
  const double expected = 0.98;
  const std::string path = write(
      dir / "frugal.toml",
      bundled_text("[server]\nadmin_keys_env = \"FRUGAL_OPS_TEST_ADMIN\"\n\n[shadow]\n"
                   "fraction = 1.0\nbudget_per_hour = 10.0\naction = \"escalate-all\"\n"
                   "expected_agreement = " + std::to_string(expected) + "\ndrift_shift = 0.05\n",
                   false));
  ServerOptions o;
  o.config = load(path);
  o.shadow_seed = 1;  // the same checks sampled on every run
  LiveServer s(std::move(o));
  auto c = s.client();
  const std::vector<Item> calibration = heldout();
  for (size_t i = 0; i < 300; ++i) {
    Reply r = post(*c, "/v1/chat/completions", calibration[i].request());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  s.server().shadow()->wait_idle();
  ASSERT_EQ(metric(*c, "frugal_escalate_all"), 0) << s.log();
  const std::vector<cascade::DriftState> before = s.server().shadow()->drift();
  const int64_t stationary_checks = before[0].outcomes;
  EXPECT_GT(stationary_checks, 150);

  const std::vector<Item> shifted = unlearned(1500, 5);
  int sent = 0;
  for (; sent < 1500 && metric(*c, "frugal_escalate_all") == 0; ++sent) {
    Reply r = post(*c, "/v1/chat/completions", shifted[static_cast<size_t>(sent)].request());
    ASSERT_EQ(r.status, 200) << r.body;
    s.server().shadow()->wait_idle();
  }
  if (metric(*c, "frugal_escalate_all") != 1) {
    for (const cascade::DriftState& st : s.server().shadow()->drift()) {
      ADD_FAILURE() << "slice '" << st.slice << "': " << st.agreements << " of " << st.outcomes
                    << " agree, statistic " << st.statistic_nats << " of "
                    << st.design.threshold_nats() << " nats";
    }
    FAIL() << sent << " shifted requests raised no alarm\n" << s.log();
  }
  const std::vector<cascade::DriftState> drift = s.server().shadow()->drift();
  const cascade::DriftState& all = drift[0];
  const int64_t shifted_checks = all.outcomes - stationary_checks;
  std::printf("[ drift ] %lld checks of stationary traffic: no alarm; shifted traffic: alarm after "
              "%d requests, %lld checks; overall agreement %.3f (calibration: %.3f)\n",
              static_cast<long long>(stationary_checks), sent,
              static_cast<long long>(shifted_checks),
              static_cast<double>(all.agreements) / static_cast<double>(all.outcomes), expected);
  for (const cascade::DriftState& st : drift) {
    if (!st.alarm) continue;
    std::printf("[ drift ]   fired: slice '%s' after %lld of its checks (%lld agree)\n",
                st.slice.c_str(), static_cast<long long>(st.fired_at),
                static_cast<long long>(st.agreements));
  }
  EXPECT_NE(s.log().find("drift alarm"), std::string::npos) << s.log();
  EXPECT_GE(metric(*c, "frugal_drift_alarms_total"), 1);
  // The delay: the first detector to fire did so within the delay its design predicts at the
  // disagreement rate it saw after the shift (counted from S = 0, an upper bound when the
  // stationary phase left the statistic above 0). Kept answers to unlearned prompts nearly
  // all disagree: a detector then fires after about ceil(h / up) checks.
  bool checked = false;
  for (const cascade::DriftState& st : drift) {
    if (!st.alarm || checked) continue;
    checked = true;
    int64_t n0 = 0, a0 = 0;  // the detector's checks and agreements before the shift
    for (const cascade::DriftState& b : before) {
      if (b.slice == st.slice) {
        n0 = b.outcomes;
        a0 = b.agreements;
      }
    }
    const int64_t n = st.fired_at - n0;
    ASSERT_GT(n, 0);
    const double rate = 1.0 - static_cast<double>(st.agreements - a0) / static_cast<double>(st.outcomes - n0);
    const double predicted = cascade::cusum_expected_delay(st.design, rate);
    std::printf("[ drift ]   detector '%s': after the shift %lld checks, disagreement %.2f, "
                "predicted delay %.1f checks, fired after %lld\n",
                st.slice.c_str(), static_cast<long long>(st.outcomes - n0), rate, predicted,
                static_cast<long long>(n));
    EXPECT_GT(rate, 0.5) << st.slice;
    EXPECT_LE(static_cast<double>(n), 4 * predicted + 5) << st.slice;
  }
  // Escalate-all: requests the student would keep go to the top tier.
  for (size_t i = 0; i < 5; ++i) {
    Reply r = post(*c, "/v1/chat/completions", calibration[i].request());
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.tier(), "large");
  }
  EXPECT_GE(metric(*c, "frugal_escalations_total{reason=\"escalate_all\"}"), 5);
  // A reload (after recalibrating) clears it.
  Reply rl = post(*c, "/admin/reload", json::object(), {{"Authorization", "Bearer admin-secret"}});
  ASSERT_EQ(rl.status, 200) << rl.body;
  EXPECT_EQ(metric(*c, "frugal_escalate_all"), 0);
  int small = 0;
  for (size_t i = 0; i < 5; ++i)
    small += post(*c, "/v1/chat/completions", calibration[i].request()).tier() == "small";
  EXPECT_GT(small, 0);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------- reload

TEST(OperationsReload, RequestsDuringAReloadSucceedTheNewThresholdHoldsAndABadConfigIsRefused) {
  const fs::path dir = temp_dir("reload");
  setenv("FRUGAL_OPS_TEST_ADMIN", "admin-secret", 1);
  const std::string head = "[server]\nadmin_keys_env = \"FRUGAL_OPS_TEST_ADMIN\"\n";
  const std::string path = write(dir / "frugal.toml", bundled_text(head, false));
  ServerOptions o;
  o.config = load(path);
  o.shadow_seed = 1;  // the same checks sampled on every run
  LiveServer s(std::move(o));
  auto c = s.client();
  const std::vector<Item> items = heldout();

  // Keys: none, a client's, a wrong one.
  EXPECT_EQ(post(*c, "/admin/reload", json::object()).status, 401);
  EXPECT_EQ(post(*c, "/admin/reload", json::object(), {{"Authorization", "Bearer nope"}}).status, 401);

  // Clients keep asking while the config changes to threshold 0 (tier 1 keeps everything).
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto cc = s.client();
      for (size_t i = static_cast<size_t>(t); !stop.load(); i += 4) {
        Reply r = post(*cc, "/v1/chat/completions", items[i % items.size()].request(16));
        (r.status == 200 ? ok : failed)++;
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  std::string text = bundled_text(head, false);
  text = std::regex_replace(text, std::regex("threshold = [0-9.]+"), "threshold = 0.0");
  text = std::regex_replace(text, std::regex("\nearly_escalation_logprob"), "\n# early_escalation_logprob");
  write(dir / "frugal.toml", text);
  Reply rl = post(*c, "/admin/reload", json::object(), {{"Authorization", "Bearer admin-secret"}});
  ASSERT_EQ(rl.status, 200) << rl.body;
  EXPECT_DOUBLE_EQ(rl.json_body()["threshold"].get<double>(), 0.0);
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (std::thread& t : clients) t.join();
  EXPECT_GT(ok.load(), 8);
  EXPECT_EQ(failed.load(), 0) << "requests during the reload failed";
  EXPECT_DOUBLE_EQ(s.server().cascade()->threshold(), 0.0);
  // Threshold 0: every answer is tier 1's.
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(post(*c, "/v1/chat/completions", items[i].request(16)).tier(), "small");
  }

  // A broken config (a syntax error, then a missing model) is refused; the old one serves on.
  for (const std::string& bad :
       {text + "\n[cascade\n", std::regex_replace(text, std::regex("frugal-teacher.gguf"), "missing.gguf")}) {
    write(dir / "frugal.toml", bad);
    Reply refused = post(*c, "/admin/reload", json::object(), {{"Authorization", "Bearer admin-secret"}});
    EXPECT_EQ(refused.status, 422) << refused.body;
    EXPECT_NE(refused.body.find("still serving the previous config"), std::string::npos) << refused.body;
    EXPECT_DOUBLE_EQ(s.server().cascade()->threshold(), 0.0);
    Reply r = post(*c, "/v1/chat/completions", items[0].request(16));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.tier(), "small");
  }
  EXPECT_EQ(metric(*c, "frugal_reloads_total{outcome=\"ok\"}"), 1);
  EXPECT_EQ(metric(*c, "frugal_reloads_total{outcome=\"refused\"}"), 2);
  fs::remove_all(dir);
}

TEST(OperationsReload, WithoutAdminKeysTheEndpointIsForbidden) {
  ServerOptions o;
  const fs::path dir = temp_dir("noadmin");
  o.config = load(write(dir / "frugal.toml", bundled_text("", false)));
  o.shadow_seed = 1;  // the same checks sampled on every run
  LiveServer s(std::move(o));
  auto c = s.client();
  Reply r = post(*c, "/admin/reload", json::object(), {{"Authorization", "Bearer anything"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("SIGHUP"), std::string::npos) << r.body;
  // Server::reload (what SIGHUP calls) works regardless.
  EXPECT_TRUE(s.server().reload().is_ok());
  s.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal::server
