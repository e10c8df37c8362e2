// libFuzzer target over the Jinja interpreter: any bytes as a chat template, parsed with
// transformers' whitespace settings and with jinja2's, then rendered over a conversation with a
// system prompt, tools and a tool call. Parse and render may fail, but only with a Status: never
// a crash, a hang (the work limit) or unbounded memory (the output limit).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/jinja.h"

namespace {

const frugal::jinja::ValueDict& globals() {
  static const frugal::jinja::ValueDict g = [] {
    auto j = nlohmann::ordered_json::parse(R"({
      "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris? <|im_end|> {{ x }}"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call00001", "type": "function",
          "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "<think>\nok\n</think>\n\n21 °C"}
      ],
      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
      "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true
    })");
    frugal::jinja::ValueDict d;
    for (const auto& [k, v] : j.items()) d.set(k, frugal::jinja::Value::from_json(v));
    return d;
  }();
  return g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  for (bool transformers_whitespace : {true, false}) {
    frugal::jinja::Options o;
    o.trim_blocks = o.lstrip_blocks = transformers_whitespace;
    // Small limits keep each input fast; the limits themselves are tested (jinja_test). The
    // corpus drifts toward inputs that run to the work limit, so the limit sets the speed: at
    // 200,000 steps the ASan build ran ~50 inputs a second on a grown corpus, at 20,000 ~300,
    // at 4,000 ~800. Every seed template renders (or fails) over this conversation at 1,000
    // steps exactly as at the product's 5,000,000 (checked 2026-12-03), and 64 KiB of output
    // is within reach of the work limit (bytes built cost 1/32 step each).
    o.max_work = 4'000;
    o.max_output_bytes = 64 << 10;
    o.now = 1700000000;
    auto t = frugal::jinja::Template::parse(source, o);
    if (!t.is_ok()) continue;
    auto out = t->render(globals());
    if (out.is_ok() && out->size() > o.max_output_bytes) __builtin_trap();
  }
  return 0;
}
