// OpenAI request parsing and response shapes. Reference: the OpenAI API reference for
// /v1/chat/completions and /v1/completions (fields, stream chunks, logprobs, usage, errors).
#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace frugal::server {

using nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json ApiError::body() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

ApiError api_error(const Status& status, std::string param) {
  ApiError e;
  e.message = status.message();
  e.param = std::move(param);
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      e.status = 400;
      e.type = "invalid_request_error";
      break;
    case ErrorCode::kOutOfRange:
      e.status = 400;
      e.type = "invalid_request_error";
      e.code = "context_length_exceeded";
      break;
    case ErrorCode::kNotFound:
      e.status = 404;
      e.type = "invalid_request_error";
      e.code = "model_not_found";
      break;
    case ErrorCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "rate_limit_exceeded";
      break;
    case ErrorCode::kUnavailable:
      e.status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      break;
    case ErrorCode::kBadGateway:
      e.status = 502;
      e.type = "server_error";
      e.code = "bad_gateway";
      break;
    case ErrorCode::kDeadlineExceeded:
      e.status = 504;
      e.type = "timeout_error";
      e.code = "timeout";
      break;
    case ErrorCode::kCancelled:
      e.status = 499;
      e.type = "cancelled";
      break;
    case ErrorCode::kOk:
    case ErrorCode::kCorrupt:
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      e.status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

// ---------------------------------------------------------------------------- parsing

namespace {

ParseResult fail(std::string message, std::string param, int status = 400) {
  ParseResult r;
  r.error.status = status;
  r.error.type = "invalid_request_error";
  r.error.message = std::move(message);
  r.error.param = std::move(param);
  return r;
}

// The field's value when present and not null; nullptr otherwise.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "null";
  }
}

std::string must_be(const char* name, const char* what, const json& got) {
  return std::string("'") + name + "' must be " + what + ", not " + type_name(got);
}

// An integer field in [lo, hi]; false with *err set when present and wrong.
bool read_int(const json& body, const char* name, int64_t lo, int64_t hi, int64_t* out,
              ParseResult* err) {
  const json* v = field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number_integer()) {
    *err = fail(must_be(name, "an integer", *v), name);
    return false;
  }
  int64_t x = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    x = u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  } else {
    x = v->get<int64_t>();
  }
  if (x < lo || x > hi) {
    *err = fail("'" + std::string(name) + "' is " + std::to_string(x) + "; it must be from " +
                    std::to_string(lo) + " to " + std::to_string(hi),
                name);
    return false;
  }
  *out = x;
  return true;
}

bool read_real(const json& body, const char* name, double lo, double hi, double* out,
               ParseResult* err) {
  const json* v = field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number()) {
    *err = fail(must_be(name, "a number", *v), name);
    return false;
  }
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "'%s' is %g; it must be from %g to %g", name, x, lo, hi);
    *err = fail(buf, name);
    return false;
  }
  *out = x;
  return true;
}

bool read_bool(const json& body, const char* name, bool* out, ParseResult* err) {
  const json* v = field(body, name);
  if (v == nullptr) return true;
  if (!v->is_boolean()) {
    *err = fail(must_be(name, "true or false", *v), name);
    return false;
  }
  *out = v->get<bool>();
  return true;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
bool read_content(const json& m, size_t i, std::string* out, ParseResult* err) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) {
    // An assistant turn may be content-less (a tool call); it is empty text here.
    return true;
  }
  if (it->is_string()) {
    *out = it->get<std::string>();
    return true;
  }
  if (!it->is_array()) {
    *err = fail("'" + param + "' must be a string or an array of text parts, not " +
                    type_name(*it),
                param);
    return false;
  }
  for (size_t k = 0; k < it->size(); ++k) {
    const json& part = (*it)[k];
    const std::string pp = param + "[" + std::to_string(k) + "]";
    if (!part.is_object()) {
      *err = fail("'" + pp + "' must be an object like {\"type\": \"text\", \"text\": \"...\"}", pp);
      return false;
    }
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text") {
      *err = fail("'" + pp + ".type' must be \"text\": this server takes text only", pp + ".type");
      return false;
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      *err = fail("'" + pp + ".text' must be a string", pp + ".text");
      return false;
    }
    *out += text->get<std::string>();
  }
  return true;
}

bool read_messages(const json& body, std::vector<ChatMessage>* out, ParseResult* err) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) {
    *err = fail("'messages' is required: a non-empty array of {\"role\", \"content\"}", "messages");
    return false;
  }
  if (!it->is_array()) {
    *err = fail(must_be("messages", "an array", *it), "messages");
    return false;
  }
  if (it->empty()) {
    *err = fail("'messages' is empty; give at least one message", "messages");
    return false;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      *err = fail("'" + param + "' must be an object with 'role' and 'content'", param);
      return false;
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      *err = fail("'" + param + ".role' must be a string", param + ".role");
      return false;
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant") {
      *err = fail("'" + param + ".role' is '" + role->get<std::string>() +
                      "'; use system, developer, user or assistant",
                  param + ".role");
      return false;
    }
    ChatMessage msg;
    msg.role = r;
    if (!read_content(m, i, &msg.content, err)) return false;
    out->push_back(std::move(msg));
  }
  return true;
}

bool read_stop(const json& body, std::vector<std::string>* out, ParseResult* err) {
  const json* v = field(body, "stop");
  if (v == nullptr) return true;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) out->push_back(v->get<std::string>());
    return true;
  }
  if (!v->is_array()) {
    *err = fail(must_be("stop", "a string or an array of strings", *v), "stop");
    return false;
  }
  if (v->size() > 16) {
    *err = fail("'stop' has " + std::to_string(v->size()) + " strings; at most 16", "stop");
    return false;
  }
  for (const json& s : *v) {
    if (!s.is_string()) {
      *err = fail("'stop' must be an array of strings", "stop");
      return false;
    }
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return true;
}

}  // namespace

// The `frugal` extension object: {"slice": "...", "check": {"method", "tolerance", "keywords"}}
// (docs/SERVER.md), what the shadow check and the drift alarm know of a request.
bool read_frugal_extension(const json& body, cascade::ShadowTags* tags, ParseResult* err) {
  const json* f = field(body, "frugal");
  if (f == nullptr) return true;
  if (!f->is_object()) {
    *err = fail(must_be("frugal", "an object", *f), "frugal");
    return false;
  }
  if (const json* s = field(*f, "slice")) {
    if (!s->is_string() || s->get<std::string>().size() > 128) {
      *err = fail("'frugal.slice' must be a string of at most 128 bytes", "frugal.slice");
      return false;
    }
    tags->slice = s->get<std::string>();
  }
  const json* c = field(*f, "check");
  if (c == nullptr) return true;
  const json* m = c->is_object() ? field(*c, "method") : nullptr;
  const std::string method = m != nullptr && m->is_string() ? m->get<std::string>() : "";
  if (method != "exact" && method != "exact_ci" && method != "numeric" && method != "clarify") {
    *err = fail("'frugal.check' must be an object whose 'method' is exact, exact_ci, numeric or "
                "clarify (docs/TASKS.md)",
                "frugal.check");
    return false;
  }
  cascade::CheckSpec spec;
  spec.method = method;
  if (const json* t = field(*c, "tolerance")) {
    if (!t->is_number() || !(t->get<double>() >= 0)) {
      *err = fail("'frugal.check.tolerance' must be a number >= 0", "frugal.check.tolerance");
      return false;
    }
    spec.tolerance = t->get<double>();
  }
  if (const json* k = field(*c, "keywords")) {
    if (!k->is_array()) {
      *err = fail("'frugal.check.keywords' must be an array of strings", "frugal.check.keywords");
      return false;
    }
    for (const json& w : *k) {
      if (!w.is_string()) {
        *err = fail("'frugal.check.keywords' must be an array of strings", "frugal.check.keywords");
        return false;
      }
      spec.keywords.push_back(w.get<std::string>());
    }
  }
  if (method == "clarify" && spec.keywords.empty()) {
    *err = fail("a clarify check needs 'frugal.check.keywords'", "frugal.check.keywords");
    return false;
  }
  tags->check = std::move(spec);
  return true;
}

ParseResult parse_request(Endpoint endpoint, std::string_view text, const ParseLimits& limits) {
  json body = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return fail("the request body is not valid JSON; send a JSON object (Content-Type: "
                "application/json)",
                "");
  }
  if (!body.is_object()) return fail("the request body must be a JSON object", "");
  ParseResult err;
  ApiRequest r;
  r.endpoint = endpoint;
  cascade::TierRequest& t = r.tier;

  if (const json* m = field(body, "model")) {
    if (!m->is_string()) return fail(must_be("model", "a string", *m), "model");
    r.model = m->get<std::string>();
  }
  if (endpoint == Endpoint::kChat) {
    if (!read_messages(body, &t.messages, &err)) return err;
  } else {
    const json* p = field(body, "prompt");
    if (p == nullptr) return fail("'prompt' is required: the text to complete", "prompt");
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      t.raw_prompt = (*p)[0].get<std::string>();
    } else if (p->is_string()) {
      t.raw_prompt = p->get<std::string>();
    } else if (p->is_array()) {
      return fail("'prompt' must be one string (an array of several prompts or of token ids is "
                  "not supported; send one request per prompt)",
                  "prompt");
    } else {
      return fail(must_be("prompt", "a string", *p), "prompt");
    }
    if (t.raw_prompt->empty()) return fail("'prompt' is empty", "prompt");
    bool echo = false;
    if (!read_bool(body, "echo", &echo, &err)) return err;
    if (echo) return fail("'echo' is not supported", "echo");
  }
  int64_t chars = t.raw_prompt ? static_cast<int64_t>(t.raw_prompt->size()) : 0;
  for (const ChatMessage& m : t.messages) chars += static_cast<int64_t>(m.content.size());
  if (chars > limits.max_prompt_chars) {
    return fail("the prompt has " + std::to_string(chars) + " characters; this server takes at "
                "most " + std::to_string(limits.max_prompt_chars),
                endpoint == Endpoint::kChat ? "messages" : "prompt");
  }

  t.max_tokens = limits.default_max_tokens;
  if (!read_int(body, "max_tokens", 1, limits.max_tokens_limit, &t.max_tokens, &err)) return err;
  if (!read_int(body, "max_completion_tokens", 1, limits.max_tokens_limit, &t.max_tokens, &err))
    return err;
  double temperature = 0.0, top_p = 1.0;
  if (!read_real(body, "temperature", 0.0, 2.0, &temperature, &err)) return err;
  if (!read_real(body, "top_p", 0.0, 1.0, &top_p, &err)) return err;
  if (top_p == 0.0) return fail("'top_p' must be above 0", "top_p");
  t.temperature = static_cast<float>(temperature);
  t.top_p = static_cast<float>(top_p);
  int64_t seed = 0;
  if (field(body, "seed") != nullptr) {
    if (!read_int(body, "seed", INT64_MIN, INT64_MAX, &seed, &err)) return err;
    t.seed = static_cast<uint64_t>(seed);
    t.seed_set = true;
  }
  if (!read_stop(body, &t.stop, &err)) return err;
  int64_t n = 1;
  if (!read_int(body, "n", 1, 128, &n, &err)) return err;
  if (n != 1) return fail("'n' is " + std::to_string(n) + "; this server returns one choice per "
                          "request (n = 1): send n requests instead", "n");

  if (endpoint == Endpoint::kChat) {
    if (!read_bool(body, "logprobs", &r.logprobs, &err)) return err;
    int64_t top = 0;
    if (!read_int(body, "top_logprobs", 0, 20, &top, &err)) return err;
    if (top > 0 && !r.logprobs) {
      return fail("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
    r.top_logprobs = static_cast<int>(top);
  } else {
    // Completions: logprobs is the number of alternatives (0 still returns each token's).
    const json* lp = field(body, "logprobs");
    if (lp != nullptr) {
      int64_t k = 0;
      if (!read_int(body, "logprobs", 0, 20, &k, &err)) return err;
      r.logprobs = true;
      r.top_logprobs = static_cast<int>(k);
    }
  }
  if (!read_bool(body, "stream", &r.stream, &err)) return err;
  // An extension vLLM and llama-server share, for benchmarks: generate max_tokens tokens.
  if (!read_bool(body, "ignore_eos", &t.ignore_eos, &err)) return err;
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return fail(must_be("stream_options", "an object", *so), "stream_options");
    if (!read_bool(*so, "include_usage", &r.include_usage, &err)) {
      err.error.param = "stream_options.include_usage";
      return err;
    }
  }
  if (const json* u = field(body, "user")) {
    if (!u->is_string()) return fail(must_be("user", "a string", *u), "user");
    r.user = u->get<std::string>();
  }
  if (!read_frugal_extension(body, &r.frugal, &err)) return err;
  // The scorer reads tier 1's top-5 alternatives whatever the client asks to see.
  t.n_logprobs = std::max(5, r.top_logprobs);
  ParseResult ok;
  ok.ok = true;
  ok.request = std::move(r);
  return ok;
}

// ---------------------------------------------------------------------------- responses

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json score_json(double score) { return std::isfinite(score) ? json(score) : json(nullptr); }

// Chat: {"content": [{token, logprob, bytes, top_logprobs}]}.
json chat_logprobs(const ApiRequest& r, const std::vector<cascade::AnswerToken>& tokens) {
  json content = json::array();
  for (const cascade::AnswerToken& t : tokens) {
    json top = json::array();
    for (int k = 0; k < r.top_logprobs && k < static_cast<int>(t.top.size()); ++k) {
      top.push_back({{"token", t.top[k].piece},
                     {"logprob", t.top[k].logprob},
                     {"bytes", bytes_of(t.top[k].piece)}});
    }
    content.push_back({{"token", t.piece},
                       {"logprob", t.logprob},
                       {"bytes", bytes_of(t.piece)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

// Completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
json completion_logprobs(const ApiRequest& r, const std::vector<cascade::AnswerToken>& tokens,
                         int64_t offset0) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  int64_t offset = offset0;
  for (const cascade::AnswerToken& t : tokens) {
    toks.push_back(t.piece);
    lps.push_back(t.logprob);
    json top = json::object();
    for (int k = 0; k < r.top_logprobs && k < static_cast<int>(t.top.size()); ++k)
      top[t.top[k].piece] = t.top[k].logprob;
    tops.push_back(top);
    offs.push_back(offset);
    offset += static_cast<int64_t>(t.text.size());
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

const char* object_name(const ApiRequest& r, bool chunk) {
  if (r.endpoint == Endpoint::kCompletions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

}  // namespace

json frugal_object(const cascade::CascadeAnswer& a) {
  json trace = json::array();
  for (const cascade::TierUse& u : a.trace) {
    trace.push_back({{"tier", u.tier},
                     {"tokens_in", u.tokens_in},
                     {"tokens_out", u.tokens_out},
                     {"cost", u.cost},
                     {"latency_ms", u.latency_ms}});
  }
  json j{{"tier", a.tier},
         {"score", score_json(a.score)},
         {"escalated", a.escalated},
         {"escalated_early", a.escalated_early},
         {"cache_hit", a.cache_hit},
         {"tokens_reused", a.tokens_reused},
         {"tokens_kept", a.tokens_kept},
         {"cost", a.cost},
         {"latency_ms", a.latency_ms},
         {"tiers", trace}};
  if (!a.tier_errors.empty()) j["tier_errors"] = a.tier_errors;
  if (std::isfinite(a.semantic_similarity)) {
    j["semantic_similarity"] = a.semantic_similarity;
    j["semantic_check_score"] = score_json(a.semantic_check_score);
    j["semantic_hit"] = a.semantic_hit;
  }
  return j;
}

json usage_object(const cascade::CascadeAnswer& a) {
  // A remote tier streams text in chunks that may hold several tokens: its endpoint's own
  // count is the one to report.
  const int64_t completion = std::max(static_cast<int64_t>(a.tokens.size()), a.answer_tokens_out);
  // A response-cache hit computed no prompt token: all of them were served from a cache.
  const int64_t cached = a.cache_hit ? a.answer_tokens_in : a.answer_tokens_in_cached;
  return {{"prompt_tokens", a.answer_tokens_in},
          {"completion_tokens", completion},
          {"total_tokens", a.answer_tokens_in + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json response_body(const ApiRequest& r, const ResponseMeta& meta, const cascade::CascadeAnswer& a) {
  json choice{{"index", 0}, {"finish_reason", finish_reason_name(a.finish)}};
  if (r.endpoint == Endpoint::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", a.text}};
    choice["logprobs"] = r.logprobs ? chat_logprobs(r, a.tokens) : json(nullptr);
  } else {
    choice["text"] = a.text;
    choice["logprobs"] = r.logprobs ? completion_logprobs(r, a.tokens, 0) : json(nullptr);
  }
  return {{"id", meta.id},
          {"object", object_name(r, false)},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({choice})},
          {"usage", usage_object(a)},
          {"frugal", frugal_object(a)}};
}

json token_chunk(const ApiRequest& r, const ResponseMeta& meta,
                 const std::vector<cascade::AnswerToken>& tokens, bool first) {
  std::string text;
  for (const cascade::AnswerToken& t : tokens) text += t.text;
  json choice{{"index", 0}, {"finish_reason", nullptr}};
  if (r.endpoint == Endpoint::kChat) {
    json delta{{"content", text}};
    if (first) delta["role"] = "assistant";
    choice["delta"] = delta;
    choice["logprobs"] = r.logprobs ? chat_logprobs(r, tokens) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = r.logprobs ? completion_logprobs(r, tokens, 0) : json(nullptr);
  }
  return {{"id", meta.id},
          {"object", object_name(r, true)},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({choice})}};
}

std::vector<json> final_chunks(const ApiRequest& r, const ResponseMeta& meta,
                               const cascade::CascadeAnswer& a) {
  std::vector<json> out;
  json last = token_chunk(r, meta, {}, false);
  json& choice = last["choices"][0];
  choice["finish_reason"] = finish_reason_name(a.finish);
  if (r.endpoint == Endpoint::kChat) {
    choice["delta"] = json::object();
    choice["logprobs"] = nullptr;
  }
  last["frugal"] = frugal_object(a);
  out.push_back(last);
  if (r.include_usage) {
    json usage{{"id", meta.id},
               {"object", object_name(r, true)},
               {"created", meta.created},
               {"model", meta.model},
               {"choices", json::array()},
               {"usage", usage_object(a)},
               {"frugal", frugal_object(a)}};
    out.push_back(usage);
  }
  return out;
}

}  // namespace frugal::server
