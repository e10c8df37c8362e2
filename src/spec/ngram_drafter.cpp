// ngram_draft: a backwards scan for the suffix pattern, longest pattern first.
#include "spec/ngram_drafter.h"

#include <algorithm>

namespace frugal {

std::vector<int32_t> ngram_draft(std::span<const int32_t> tokens, int k, int n_min, int n_max) {
  const int64_t len = static_cast<int64_t>(tokens.size());
  if (k <= 0) return {};
  for (int n = std::min<int64_t>(n_max, len - 1); n >= n_min; --n) {
    const int32_t* pattern = tokens.data() + len - n;
    // The latest start j < len - n whose n tokens equal the pattern and that has a follower.
    for (int64_t j = len - n - 1; j >= 0; --j) {
      if (!std::equal(pattern, pattern + n, tokens.data() + j)) continue;
      const int64_t from = j + n;
      const int64_t to = std::min<int64_t>(len, from + k);
      return std::vector<int32_t>(tokens.begin() + from, tokens.begin() + to);
    }
  }
  return {};
}

}  // namespace frugal
