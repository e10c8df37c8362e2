// The cost–quality curve of a calibration as text: CSV, a standalone SVG plot, and a
// fixed-width table for the terminal. Formats: docs/CALIBRATION.md, "Outputs".
#pragma once

#include <cstddef>
#include <string>

#include "cascade/calibration.h"
#include "util/status.h"

namespace frugal::cascade {

// Header "threshold,escalation_rate,accuracy,relative_quality,margin,lower_bound,
// cost_per_item,relative_cost,meets_target,chosen" and one row per curve point, in curve
// order; numbers with up to 10 significant digits, booleans as 0/1.
std::string curve_csv(const CalibrationResult& result);

struct CurvePlotOptions {
  int width = 720;   // pixels
  int height = 480;  // pixels
  std::string title = "Cascade cost vs quality";
};

// A standalone SVG document: x = cost relative to top-only, y = quality relative to the top
// tier; one <circle class="point"> per curve point (in curve order, with a <title> tooltip), the
// curve as a polyline, the chosen point as <circle class="chosen">, the target as a dashed
// <line class="target">, the top-only reference (1, 1) as <rect class="top-only">, and axes
// with ticks and labels.
std::string curve_svg(const CalibrationResult& result, const CurvePlotOptions& options = {});

// A table for people: a header line, then at most max_rows curve rows spread evenly along the
// curve, always including the chosen row (marked with '*'); then the summary sentence.
std::string curve_table(const CalibrationResult& result, size_t max_rows = 20);

// The eval report for people: one row per group (all items, then each slice, each difficulty,
// each slice x difficulty) with accuracy and 95 % interval for tier 1 alone, the top tier alone
// and the cascade, the cascade's escalation rate, cost per item and cost saved, and tier 1's
// cost saved; then the verdict ("PASS" or "FAIL" with every flag).
std::string eval_report_table(const EvalReport& report);

// Writes `text` to `path` atomically (util's write_file): a new file or a regular one replaced
// whole; a directory, FIFO, device or socket is refused (kInvalidArgument), kIo naming the path
// on failure.
Status write_text_file(const std::string& path, const std::string& text);

}  // namespace frugal::cascade
