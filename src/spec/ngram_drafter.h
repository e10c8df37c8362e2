// Prompt-lookup drafting: the continuation of the most recent earlier occurrence of a
// sequence's last n tokens is its draft — free, and right wherever an answer repeats its
// prompt or itself (code edits, extraction, lists).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace frugal {

// Up to `k` tokens following the latest earlier occurrence of the last n tokens of `tokens`,
// for the longest n in [n_min, n_max] that occurs; empty when none does.
std::vector<int32_t> ngram_draft(std::span<const int32_t> tokens, int k, int n_min = 1,
                                 int n_max = 4);

}  // namespace frugal
