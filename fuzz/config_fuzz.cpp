// libFuzzer target over cascade configs: any TOML text through parse_cascade_config, and,
// when every model tier is local and names one of two tiny seed models (tests/tiny_model.h,
// written to a temporary folder at start), through Cascade::create, which loads them, and one
// short greedy answer. A config either parses into values within the documented ranges, or is
// refused naming the file; a created cascade answers without a crash.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cascade/cascade.h"
#include "cascade/config.h"
#include "tiny_model.h"

namespace {

namespace fs = std::filesystem;

// The folder holding small.gguf and large.gguf, which relative model paths resolve against.
const std::string& seed_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/frugal_config_fuzz_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    const std::string d = tmpl;
    frugal::test::TinyModelShape large;
    large.seed = 7;
    large.n_layer = 1;
    frugal::GgufWriter small_w = frugal::test::tiny_model_writer();
    frugal::GgufWriter large_w = frugal::test::tiny_model_writer(large);
    if (!small_w.write(d + "/small.gguf").is_ok()) std::abort();
    if (!large_w.write(d + "/large.gguf").is_ok()) std::abort();
    return d;
  }();
  return dir;
}

bool names_a_seed_model(const std::string& path) {
  return path == seed_dir() + "/small.gguf" || path == seed_dir() + "/large.gguf";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = frugal::cascade::parse_cascade_config(text, "fuzz.toml", seed_dir());
  if (!config.is_ok()) {
    if (config.status().message().rfind("fuzz.toml", 0) != 0) std::abort();  // names the file
    return 0;
  }
  const frugal::cascade::CascadeConfig& c = *config;
  if (!(c.threshold >= 0 && c.threshold <= 1) || c.max_tokens < 1 || c.model_tiers().empty()) {
    std::abort();
  }
  for (const frugal::cascade::TierConfig& t : c.tiers) {
    if (!std::isfinite(t.price_in_per_mtok) || !std::isfinite(t.price_out_per_mtok) ||
        t.price_in_per_mtok < 0 || t.price_out_per_mtok < 0) {
      std::abort();
    }
    if (t.kind == frugal::cascade::TierKind::kRemote) return 0;  // no network here
    if (t.kind == frugal::cascade::TierKind::kLocal && !names_a_seed_model(t.model)) return 0;
  }
  frugal::cascade::CascadeOptions options;
  options.n_threads = 1;
  options.n_ctx = 64;
  auto cascade = frugal::cascade::Cascade::create(c, options);
  if (!cascade.is_ok()) {
    if (cascade.status().message().empty()) std::abort();
    return 0;
  }
  frugal::cascade::TierRequest request;
  request.messages.push_back({"user", "hi"});
  request.max_tokens = 2;
  request.temperature = 0.0f;
  auto answer = (*cascade)->answer(request);
  if (!answer.is_ok() && answer.status().message().empty()) std::abort();
  return 0;
}
