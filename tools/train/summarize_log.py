#!/usr/bin/env python3
"""Turns a train.py log into a markdown summary: step time, tokens/s, and validation accuracy
(overall, per difficulty, per slice) at every evaluation.

  summarize_log.py out/models/run1/teacher.log
"""

import re
import statistics
import sys

STEP = re.compile(r"step (\d+)/(\d+) loss ([\d.]+) lr \S+ (\d+) ms/step (\d+) tok/s")
EVAL = re.compile(r"eval step (\d+) \(([\d.]+) min\): (.*)")


def summarize(lines):
    steps, evals = [], []
    for line in lines:
        m = STEP.search(line)
        if m:
            steps.append((int(m[1]), int(m[2]), float(m[3]), int(m[4]), int(m[5])))
        m = EVAL.search(line)
        if m:
            acc = dict(kv.split("=") for kv in m[3].split())
            evals.append((int(m[1]), float(m[2]), acc))
    out = []
    if steps:
        ms = [s[3] for s in steps]
        tps = [s[4] for s in steps]
        out.append(f"- steps logged: {steps[-1][0]} of {steps[-1][1]}, last loss {steps[-1][2]}")
        out.append(f"- step time: median {statistics.median(ms):.0f} ms "
                   f"(min {min(ms)}, max {max(ms)}); tokens/s median "
                   f"{statistics.median(tps):.0f} (non-padding tokens, prompt included)")
    if evals:
        keys = list(evals[-1][2])
        out.append("")
        out.append("| step | minutes | " + " | ".join(keys) + " |")
        out.append("|---|---|" + "---|" * len(keys))
        for step, minutes, acc in evals:
            out.append(f"| {step} | {minutes} | " + " | ".join(acc.get(k, "") for k in keys)
                       + " |")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(summarize(f.readlines()))
