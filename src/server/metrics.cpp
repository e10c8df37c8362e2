// Metrics: label rendering with escaping, cumulative histogram buckets, exposition text.
#include "server/metrics.h"

#include <cmath>
#include <cstdio>

#include "util/check.h"

namespace frugal::server {

namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

const char* type_name(Metrics::Type t) {
  switch (t) {
    case Metrics::Type::kCounter: return "counter";
    case Metrics::Type::kGauge: return "gauge";
    case Metrics::Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void Metrics::declare(const std::string& name, Type type, const std::string& help,
                      std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  CHECK(index_.count(name) == 0, "metric %s declared twice", name.c_str());
  index_[name] = families_.size();
  families_.push_back({name, help, type, std::move(buckets), {}});
}

Metrics::Family& Metrics::family(const std::string& name) {
  auto it = index_.find(name);
  CHECK(it != index_.end(), "metric %s used before it was declared", name.c_str());
  return families_[it->second];
}

std::string Metrics::render_labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    out += out.empty() ? "" : ",";
    out += k + "=\"" + escape(v) + "\"";
  }
  return out;
}

void Metrics::add(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  family(name).series[render_labels(labels)].value += value;
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  family(name).series[render_labels(labels)].value = value;
}

void Metrics::observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = family(name);
  Series& s = f.series[render_labels(labels)];
  if (s.counts.empty()) s.counts.assign(f.buckets.size(), 0);
  for (size_t i = 0; i < f.buckets.size(); ++i) {
    if (value <= f.buckets[i]) {
      s.counts[i] += 1;
      break;
    }
  }
  s.sum += value;
  s.count += 1;
}

double Metrics::value(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  if (it == index_.end()) return 0;
  const auto& series = families_[it->second].series;
  auto s = series.find(render_labels(labels));
  return s == series.end() ? 0 : s->second.value;
}

std::string Metrics::text() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + f.help + "\n";
    out += "# TYPE " + f.name + " " + type_name(f.type) + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        out += f.name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(s.value) + "\n";
        continue;
      }
      const std::string sep = labels.empty() ? "" : ",";
      double cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        cumulative += s.counts[i];
        out += f.name + "_bucket{" + labels + sep + "le=\"" + number(f.buckets[i]) + "\"} " +
               number(cumulative) + "\n";
      }
      out += f.name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + number(s.count) + "\n";
      const std::string braces = labels.empty() ? "" : "{" + labels + "}";
      out += f.name + "_sum" + braces + " " + number(s.sum) + "\n";
      out += f.name + "_count" + braces + " " + number(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace frugal::server
