// Writes a calibration's cost–quality curve as CSV, as a hand-built SVG plot and as a table.
#include "cascade/curve.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <vector>

#include "util/file_io.h"

namespace frugal::cascade {

namespace {

std::string num(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A tick step of 1, 2 or 5 times a power of ten giving about `want` intervals over `span`.
double nice_step(double span, int want) {
  if (!(span > 0)) return 1;
  const double raw = span / want;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= raw) return m * p;
  }
  return 10 * p;
}

// Axis range [lo, hi] snapped outwards to multiples of its tick step.
struct Axis {
  double lo, hi, step;
};
Axis make_axis(double lo, double hi, int want) {
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const double step = nice_step(hi - lo, want);
  return {std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step, step};
}

// Label for a tick value, with as many decimals as the step needs.
std::string tick_label(double v, double step) {
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  char fmt[16];
  std::snprintf(fmt, sizeof(fmt), "%%.%df", decimals);
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0.00"
  return num(fmt, v);
}

// A CSV field: quoted (with "" for ") when it holds a comma, quote or line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string curve_csv(const CalibrationResult& result) {
  std::ostringstream os;
  os << "threshold,escalation_rate,accuracy,relative_quality,margin,lower_bound,cost_per_item,"
        "relative_cost,meets_target,chosen,worst_slice,worst_slice_loss_points\n";
  for (size_t k = 0; k < result.curve.size(); ++k) {
    const CurvePoint& p = result.curve[k];
    os << num("%.10g", p.threshold) << ',' << num("%.10g", p.escalation_rate) << ','
       << num("%.10g", p.accuracy) << ',' << num("%.10g", p.relative_quality) << ','
       << num("%.10g", p.margin) << ',' << num("%.10g", p.lower_bound) << ','
       << num("%.10g", p.cost_per_item) << ',' << num("%.10g", p.relative_cost) << ','
       << (p.meets_target ? 1 : 0) << ',' << (k == result.chosen ? 1 : 0) << ','
       << csv_field(p.worst_slice) << ',' << num("%.10g", p.worst_slice_loss_points) << '\n';
  }
  return os.str();
}

std::string curve_svg(const CalibrationResult& result, const CurvePlotOptions& options) {
  const double width = options.width, height = options.height;
  const double left = 80, right = 30, top = 50, bottom = 70;
  const double plot_w = width - left - right, plot_h = height - top - bottom;

  double max_cost = 1.0, min_q = std::min(1.0, result.target), max_q = 1.0;
  for (const CurvePoint& p : result.curve) {
    max_cost = std::max(max_cost, p.relative_cost);
    min_q = std::min(min_q, p.relative_quality);
    max_q = std::max(max_q, p.relative_quality);
  }
  const Axis xa = make_axis(0.0, max_cost * 1.02, 8);
  const double pad = 0.03 * (max_q - min_q);
  const Axis ya = make_axis(min_q - pad, max_q + pad, 8);
  auto px = [&](double x) { return left + (x - xa.lo) / (xa.hi - xa.lo) * plot_w; };
  auto py = [&](double y) { return top + (ya.hi - y) / (ya.hi - ya.lo) * plot_h; };
  auto f2 = [](double v) { return num("%.2f", v); };

  std::ostringstream os;
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << options.width << "\" height=\""
     << options.height << "\" viewBox=\"0 0 " << options.width << ' ' << options.height
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  os << "<rect x=\"0\" y=\"0\" width=\"" << options.width << "\" height=\"" << options.height
     << "\" fill=\"white\"/>\n";
  os << "<text class=\"title\" x=\"" << f2(width / 2) << "\" y=\"24\" text-anchor=\"middle\" "
        "font-size=\"16\">" << xml_escape(options.title) << "</text>\n";

  // Grid, ticks and tick labels.
  os << "<g class=\"x-ticks\" stroke=\"#dddddd\">\n";
  for (double v = xa.lo; v <= xa.hi + xa.step * 1e-6; v += xa.step) {
    os << "<line x1=\"" << f2(px(v)) << "\" y1=\"" << f2(top) << "\" x2=\"" << f2(px(v))
       << "\" y2=\"" << f2(top + plot_h + 5) << "\"/>\n";
    os << "<text class=\"tick\" x=\"" << f2(px(v)) << "\" y=\"" << f2(top + plot_h + 20)
       << "\" text-anchor=\"middle\" stroke=\"none\" fill=\"black\">" << tick_label(v, xa.step)
       << "</text>\n";
  }
  os << "</g>\n<g class=\"y-ticks\" stroke=\"#dddddd\">\n";
  for (double v = ya.lo; v <= ya.hi + ya.step * 1e-6; v += ya.step) {
    os << "<line x1=\"" << f2(left - 5) << "\" y1=\"" << f2(py(v)) << "\" x2=\""
       << f2(left + plot_w) << "\" y2=\"" << f2(py(v)) << "\"/>\n";
    os << "<text class=\"tick\" x=\"" << f2(left - 8) << "\" y=\"" << f2(py(v) + 4)
       << "\" text-anchor=\"end\" stroke=\"none\" fill=\"black\">" << tick_label(v, ya.step)
       << "</text>\n";
  }
  os << "</g>\n";
  // Axes and their labels.
  os << "<line class=\"axis\" x1=\"" << f2(left) << "\" y1=\"" << f2(top + plot_h) << "\" x2=\""
     << f2(left + plot_w) << "\" y2=\"" << f2(top + plot_h) << "\" stroke=\"black\"/>\n";
  os << "<line class=\"axis\" x1=\"" << f2(left) << "\" y1=\"" << f2(top) << "\" x2=\"" << f2(left)
     << "\" y2=\"" << f2(top + plot_h) << "\" stroke=\"black\"/>\n";
  os << "<text class=\"axis-label\" x=\"" << f2(left + plot_w / 2) << "\" y=\""
     << f2(height - 20) << "\" text-anchor=\"middle\">cost per item relative to top tier only"
     << "</text>\n";
  os << "<text class=\"axis-label\" x=\"20\" y=\"" << f2(top + plot_h / 2)
     << "\" text-anchor=\"middle\" transform=\"rotate(-90 20 " << f2(top + plot_h / 2)
     << ")\">accuracy relative to top tier</text>\n";

  // Target line.
  os << "<line class=\"target\" x1=\"" << f2(left) << "\" y1=\"" << f2(py(result.target))
     << "\" x2=\"" << f2(left + plot_w) << "\" y2=\"" << f2(py(result.target))
     << "\" stroke=\"#cc7700\" stroke-dasharray=\"6 4\"/>\n";
  os << "<text class=\"target-label\" x=\"" << f2(left + plot_w - 4) << "\" y=\""
     << f2(py(result.target) - 5) << "\" text-anchor=\"end\" fill=\"#cc7700\">target "
     << num("%.1f", 100 * result.target) << "%</text>\n";

  // The curve, then its points.
  os << "<polyline class=\"curve\" fill=\"none\" stroke=\"#3366cc\" stroke-width=\"1.5\" points=\"";
  for (size_t k = 0; k < result.curve.size(); ++k) {
    const CurvePoint& p = result.curve[k];
    os << (k ? " " : "") << f2(px(p.relative_cost)) << ',' << f2(py(p.relative_quality));
  }
  os << "\"/>\n<g class=\"points\" fill=\"#3366cc\">\n";
  for (const CurvePoint& p : result.curve) {
    os << "<circle class=\"point\" cx=\"" << f2(px(p.relative_cost)) << "\" cy=\""
       << f2(py(p.relative_quality)) << "\" r=\"2.5\" data-threshold=\""
       << num("%.10g", p.threshold) << "\" data-cost=\"" << num("%.10g", p.relative_cost)
       << "\" data-quality=\"" << num("%.10g", p.relative_quality) << "\"><title>threshold "
       << num("%.4f", p.threshold) << ": cost " << num("%.3f", p.relative_cost) << ", quality "
       << num("%.4f", p.relative_quality) << ", escalates "
       << num("%.1f", 100 * p.escalation_rate) << "%</title></circle>\n";
  }
  os << "</g>\n";

  // Top tier alone, for reference.
  os << "<rect class=\"top-only\" x=\"" << f2(px(1.0) - 4) << "\" y=\"" << f2(py(1.0) - 4)
     << "\" width=\"8\" height=\"8\" fill=\"#555555\"><title>top tier only</title></rect>\n";
  os << "<text x=\"" << f2(px(1.0) + 8) << "\" y=\"" << f2(py(1.0) + 14)
     << "\" fill=\"#555555\">top tier only</text>\n";

  if (!result.curve.empty()) {
    const CurvePoint& c = result.chosen_point();
    const char* colour = result.found ? "#cc0000" : "#888888";
    os << "<circle class=\"chosen\" cx=\"" << f2(px(c.relative_cost)) << "\" cy=\""
       << f2(py(c.relative_quality)) << "\" r=\"7\" fill=\"none\" stroke=\"" << colour
       << "\" stroke-width=\"2\" data-threshold=\"" << num("%.10g", c.threshold) << "\"/>\n";
    os << "<text class=\"chosen-label\" x=\"" << f2(px(c.relative_cost) + 10) << "\" y=\""
       << f2(py(c.relative_quality) - 10) << "\" fill=\"" << colour << "\">"
       << (result.found ? "chosen" : "best (target not met)") << ": threshold "
       << num("%.3f", c.threshold) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

std::string curve_table(const CalibrationResult& result, size_t max_rows) {
  std::set<size_t> rows;
  const size_t n = result.curve.size();
  if (n <= max_rows || max_rows < 2) {
    for (size_t k = 0; k < n && (k < max_rows || max_rows < 2); ++k) rows.insert(k);
  } else {
    for (size_t r = 0; r < max_rows; ++r) rows.insert(r * (n - 1) / (max_rows - 1));
  }
  if (n > 0) rows.insert(result.chosen);

  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof(line), "  %10s %10s %9s %9s %11s %12s %9s %4s  %s\n", "threshold",
                "escalated", "accuracy", "rel.qual", "lower bnd", "cost/item", "rel.cost", "ok",
                "worst slice (points below top)");
  os << line;
  for (size_t k : rows) {
    const CurvePoint& p = result.curve[k];
    std::snprintf(line, sizeof(line),
                  "%c %10.4f %9.1f%% %9.4f %8.2f%% %11.4f %12.4g %9.3f %4s  %s %.1f\n",
                  k == result.chosen ? '*' : ' ', p.threshold, 100 * p.escalation_rate,
                  p.accuracy, 100 * p.relative_quality, p.lower_bound, p.cost_per_item,
                  p.relative_cost, p.meets_target ? "yes" : "no",
                  p.worst_slice.empty() ? "-" : p.worst_slice.c_str(), p.worst_slice_loss_points);
    os << line;
  }
  os << result.summary << "\n";
  return os.str();
}

std::string eval_report_table(const EvalReport& report) {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof(line), "%-28s %6s  %-21s  %-21s  %-21s %6s %11s %7s %7s\n", "group",
                "n", "tier1 acc [95% CI]", "top acc [95% CI]", "cascade acc [95% CI]", "esc",
                "cost/item", "saved", "t1 sav");
  os << line;
  auto acc = [](const PolicyEval& p) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f [%.3f, %.3f]", p.accuracy, p.accuracy_ci.lo,
                  p.accuracy_ci.hi);
    return std::string(buf);
  };
  auto row = [&](const std::string& name, const GroupEval& g) {
    std::snprintf(line, sizeof(line),
                  "%-28s %6zu  %-21s  %-21s  %-21s %5.1f%% %11.4g %6.1f%% %6.1f%%\n", name.c_str(),
                  g.items, acc(g.tier1).c_str(), acc(g.top).c_str(), acc(g.cascade).c_str(),
                  100 * g.cascade.escalation_rate, g.cascade.cost_per_item,
                  100 * g.cascade.cost_saved, 100 * g.tier1.cost_saved);
    os << line;
  };
  row("all", report.overall);
  for (const GroupEval& g : report.by_slice) row("slice " + g.slice, g);
  for (const GroupEval& g : report.by_difficulty) row("difficulty " + g.difficulty, g);
  for (const GroupEval& g : report.by_slice_difficulty) row(g.slice + " / " + g.difficulty, g);
  if (report.overall.baseline_cascade) {
    // The same items through the baseline (what serves today): accuracy, and the change.
    std::snprintf(line, sizeof(line), "\nagainst the baseline\n%-28s %6s  %-21s  %7s  %-21s  %7s\n",
                  "group", "n", "baseline tier1 acc", "change", "baseline cascade acc", "change");
    os << line;
    auto base_row = [&](const std::string& name, const GroupEval& g) {
      std::snprintf(line, sizeof(line), "%-28s %6zu  %-21s  %+6.1f   %-21s  %+6.1f\n",
                    name.c_str(), g.items, acc(*g.baseline_tier1).c_str(),
                    100 * (g.tier1.accuracy - g.baseline_tier1->accuracy),
                    acc(*g.baseline_cascade).c_str(),
                    100 * (g.cascade.accuracy - g.baseline_cascade->accuracy));
      os << line;
    };
    base_row("all", report.overall);
    for (const GroupEval& g : report.by_slice) base_row("slice " + g.slice, g);
    os << "\n";
  }
  std::snprintf(line, sizeof(line), "threshold %.4f, margin %.1f points: ", report.threshold,
                report.margin_points);
  os << line << (report.pass ? "PASS" : "FAIL") << "\n";
  for (const SliceFlag& f : report.flags) {
    const bool tier1 = f.policy == "tier1";
    std::snprintf(line, sizeof(line), "  %s loses %.1f points against %s on slice '%s'\n",
                  tier1 ? "tier 1 alone" : f.policy.c_str(), f.loss_points,
                  f.against == "baseline" ? (tier1 ? "the baseline's tier 1" : "the baseline's cascade")
                                          : "the top tier",
                  f.slice.c_str());
    os << line;
  }
  return os.str();
}

Status write_text_file(const std::string& path, const std::string& text) {
  return write_file(path, text);
}

}  // namespace frugal::cascade
