// libFuzzer target over whole models: mutated GGUF files (seeded with tests/tiny_model.h's tiny
// llama and qwen2 models, a few KB each) through Model::load, the tokenizer and a prefill plus
// one decode step. Any input either loads, or is refused with a message; a loaded model runs
// without a crash, a read out of bounds or undefined behaviour, and its logits have the shape
// the config promises.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/tokenizer.h"

namespace {

// The input goes to an in-memory file that Model::load opens by path, as a user's file is.
int memfd() {
  static const int fd = memfd_create("model_fuzz.gguf", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd();
  if (ftruncate(fd, 0) != 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  frugal::ModelOptions options;
  options.n_threads = 1;
  auto loaded = frugal::Model::load("/proc/self/fd/" + std::to_string(fd), options);
  if (!loaded.is_ok()) {
    if (loaded.status().message().empty()) std::abort();  // every refusal must say why
    return 0;
  }
  frugal::Model& model = **loaded;
  const frugal::ModelConfig& c = model.config();
  const frugal::Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> prompt = tok.encode("hi the <s> \xE2\x96\x81on", true, true);
  if (prompt.size() > 8) prompt.resize(8);
  if (prompt.empty()) prompt.push_back(0);
  for (int32_t id : prompt) {
    if (id < 0 || id >= c.n_vocab) std::abort();  // the tokenizer gave an id the model lacks
    (void)tok.token_to_piece(id, true);
  }
  for (int32_t id = 0; id < c.n_vocab && id < 300; ++id) (void)tok.token_to_piece(id, false);

  auto kv = model.make_kv_cache(32);
  const frugal::KvCache::SeqId seq = kv->create_sequence();
  std::vector<float> logits;
  frugal::SeqBatch prefill;
  prefill.seq = seq;
  prefill.tokens = prompt;
  prefill.all_logits = true;
  frugal::Status s = model.forward(std::span<const frugal::SeqBatch>(&prefill, 1), *kv, logits);
  if (!s.is_ok()) {
    if (s.message().empty()) std::abort();
    return 0;
  }
  if (logits.size() != prompt.size() * static_cast<size_t>(c.n_vocab)) std::abort();
  // One decode step on the prefill's greedy choice.
  int32_t next = 0;
  for (int64_t v = 1; v < c.n_vocab; ++v) {
    if (logits[logits.size() - c.n_vocab + v] > logits[logits.size() - c.n_vocab + next]) {
      next = static_cast<int32_t>(v);
    }
  }
  frugal::SeqBatch decode;
  decode.seq = seq;
  decode.tokens = std::span<const int32_t>(&next, 1);
  s = model.forward(std::span<const frugal::SeqBatch>(&decode, 1), *kv, logits);
  if (s.is_ok() && logits.size() != static_cast<size_t>(c.n_vocab)) std::abort();
  return 0;
}
