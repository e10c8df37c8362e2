// Metrics: a small Prometheus registry — counters, gauges and histograms with labels — and
// its text exposition format (version 0.0.4), which `promtool check metrics` accepts.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace frugal::server {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Declares a family before use; `buckets` (ascending upper bounds) for histograms.
  void declare(const std::string& name, Type type, const std::string& help,
               std::vector<double> buckets = {});
  void add(const std::string& name, const Labels& labels, double value = 1.0);  // counter
  void set(const std::string& name, const Labels& labels, double value);        // gauge
  void observe(const std::string& name, const Labels& labels, double value);    // histogram
  // The value of a counter or gauge series (0 when absent), for tests and logs.
  double value(const std::string& name, const Labels& labels) const;
  // The exposition text of every family, in declaration order.
  std::string text() const;

 private:
  struct Series {
    double value = 0;              // counter / gauge
    std::vector<double> counts;    // histogram: per bucket (not cumulative)
    double sum = 0;
    double count = 0;
  };
  struct Family {
    std::string name, help;
    Type type = Type::kCounter;
    std::vector<double> buckets;
    std::map<std::string, Series> series;  // by rendered label set
  };
  Family& family(const std::string& name);
  static std::string render_labels(const Labels& labels);

  mutable std::mutex mu_;
  std::vector<Family> families_;
  std::map<std::string, size_t> index_;
};

}  // namespace frugal::server
