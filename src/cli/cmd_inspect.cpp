// `frugal inspect MODEL.gguf [--json]`: a GGUF file's version, metadata and tensor table.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "util/file_io.h"
#include "kernels/ops.h"

namespace frugal::cli {

namespace {

using nlohmann::json;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// The full value (arrays not summarised): JSON is for programs.
json value_json(const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kBool: return *v.as_bool();
    case GgufValueType::kString: return *v.as_string();
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64: return *v.as_float();
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64: return *v.as_uint();
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64: return *v.as_int();
    case GgufValueType::kArray: break;
  }
  json out = json::array();
  if (const auto* s = v.as_string_array()) {
    for (const std::string& x : *s) out.push_back(x);
  } else if (const auto* ints = v.as_int_array()) {
    bool is_u64 = v.array_type() == GgufValueType::kUint64;
    for (int64_t x : *ints) {
      if (is_u64) out.push_back(static_cast<uint64_t>(x));
      else out.push_back(x);
    }
  } else if (const auto* floats = v.as_float_array()) {
    for (double x : *floats) out.push_back(x);
  } else if (const auto* values = v.as_value_array()) {
    for (const GgufValue& x : *values) out.push_back(value_json(x));
  }
  return out;
}

// Which chat template `frugal run` and the cascade use for this file, and why.
std::string chat_template_in_use(const GgufFile& f) {
  auto t = resolve_chat_template(f.get_string_or("tokenizer.chat_template", ""));
  return t.is_ok() ? t->description : "none usable (" + t.status().message() + ")";
}

json file_json(const GgufFile& f) {
  json j;
  j["file"] = f.name();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  json meta = json::object();
  for (const auto& [key, value] : f.metadata()) {
    json m;
    m["type"] = gguf_value_type_name(value.type());
    if (value.type() == GgufValueType::kArray)
      m["element_type"] = gguf_value_type_name(value.array_type());
    m["value"] = value_json(value);
    meta[key] = std::move(m);
  }
  j["metadata"] = std::move(meta);
  j["chat_template_in_use"] = chat_template_in_use(f);
  json tensors = json::array();
  for (const GgufTensorInfo& t : f.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", ggml_type_info(t.type)->name},
                       {"shape", t.shape},
                       {"offset", t.offset},
                       {"n_bytes", t.n_bytes}});
  }
  j["tensors"] = std::move(tensors);
  return j;
}

void print_text(const GgufFile& f) {
  uint64_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) total += t.n_bytes;
  std::printf("%s: GGUF v%u, alignment %llu, data at offset %llu\n", f.name().c_str(),
              f.version(), static_cast<unsigned long long>(f.alignment()),
              static_cast<unsigned long long>(f.data_offset()));
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  size_t width = 0;
  for (const auto& kv : f.metadata()) width = std::max(width, kv.first.size());
  for (const auto& [key, value] : f.metadata()) {
    std::string type = gguf_value_type_name(value.type());
    if (value.type() == GgufValueType::kArray)
      type += "<" + std::string(gguf_value_type_name(value.array_type())) + ">";
    std::printf("  %-*s  %-15s %s\n", static_cast<int>(width), key.c_str(), type.c_str(),
                value.to_display_string().c_str());
  }
  std::printf("\nchat template: %s\n", chat_template_in_use(f).c_str());
  std::printf("\ntensors (%zu, %.2f MiB):\n", f.tensors().size(),
              static_cast<double>(total) / (1024.0 * 1024.0));
  width = 4;
  for (const GgufTensorInfo& t : f.tensors()) width = std::max(width, t.name.size());
  std::printf("  %-*s  %-7s %-22s %14s %14s\n", static_cast<int>(width), "name", "type",
              "shape", "offset", "bytes");
  for (const GgufTensorInfo& t : f.tensors()) {
    std::printf("  %-*s  %-7s %-22s %14llu %14llu\n", static_cast<int>(width), t.name.c_str(),
                ggml_type_info(t.type)->name, shape_string(t.shape).c_str(),
                static_cast<unsigned long long>(t.offset),
                static_cast<unsigned long long>(t.n_bytes));
  }
}

// Writes tensor `name` of `f`, dequantized, to `out_path` as little-endian float32 in GGUF
// element order (row by row).
Status dump_tensor(const GgufFile& f, const std::string& name, const std::string& out_path) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (t == nullptr) return not_found("tensor " + name + " is not in " + f.name());
  const GgmlTypeInfo* info = ggml_type_info(t->type);
  if (info == nullptr || !info->computable) {
    return unsupported("tensor " + name + " has type " + (info ? info->name : "unknown") +
                       ", which this build cannot read");
  }
  const int64_t n_cols = t->shape.empty() ? 1 : t->shape[0];
  const int64_t n_rows = t->n_elements() / n_cols;
  const int64_t row_bytes = ggml_row_bytes(t->type, n_cols);
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> out, AtomicFile::create(out_path));
  std::vector<float> row(static_cast<size_t>(n_cols));
  for (int64_t r = 0; r < n_rows; ++r) {
    kernels::dequantize_row(t->type, t->data + r * row_bytes, row.data(), n_cols);
    FRUGAL_RETURN_IF_ERROR(out->write(row.data(), row.size() * sizeof(float)));
  }
  return out->commit();
}

}  // namespace

void register_inspect(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("inspect", "Print a GGUF file's metadata and tensor table");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("model", *path, "GGUF file")->required();
  cmd->add_flag("--json", *as_json, "Machine-readable output with full metadata values");
  auto dump = std::make_shared<std::string>();
  auto dump_out = std::make_shared<std::string>();
  cmd->add_option("--dump-tensor", *dump,
                  "Write this tensor, dequantized, as float32 to --out (instead of printing)");
  cmd->add_option("--out", *dump_out, "File for --dump-tensor");
  cmd->callback([path, as_json, dump, dump_out, &exit_code] {
    auto f = GgufFile::open(*path);
    if (!f.is_ok()) {
      std::fprintf(stderr, "frugal inspect: %s\n", f.status().to_string().c_str());
      exit_code = 1;
      return;
    }
    if (!dump->empty()) {
      if (dump_out->empty()) {
        std::fprintf(stderr, "frugal inspect: --dump-tensor needs --out FILE\n");
        exit_code = 2;
        return;
      }
      const Status s = dump_tensor(**f, *dump, *dump_out);
      if (!s.is_ok()) std::fprintf(stderr, "frugal inspect: %s\n", s.to_string().c_str());
      exit_code = s.is_ok() ? 0 : 1;
      return;
    }
    if (*as_json) {
      std::string out =
          file_json(**f).dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
      std::printf("%s\n", out.c_str());
    } else {
      print_text(**f);
    }
    exit_code = 0;
  });
}

}  // namespace frugal::cli
