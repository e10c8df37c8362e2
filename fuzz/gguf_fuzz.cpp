// libFuzzer target over GgufFile::parse: any bytes either parse into in-bounds views or are
// refused with a message; never a crash, a read out of bounds or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "engine/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = frugal::GgufFile::parse(data, size, "fuzz");
  if (!r.is_ok()) {
    if (r.status().message().empty()) std::abort();  // every refusal must say why
    return 0;
  }
  // Touch everything a caller may read: tensor bytes and every metadata rendering.
  const frugal::GgufFile& f = **r;
  volatile uint8_t sink = 0;
  for (const frugal::GgufTensorInfo& t : f.tensors()) {
    if (t.n_bytes > 0) sink = sink ^ t.data[0] ^ t.data[t.n_bytes - 1];
    if (t.data < data || t.data + t.n_bytes > data + size) std::abort();
  }
  for (const auto& kv : f.metadata()) (void)kv.second.to_display_string();
  (void)f.get_int_or("general.alignment", 0);
  return 0;
}
