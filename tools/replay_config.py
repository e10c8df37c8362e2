#!/usr/bin/env python3
"""Replay a cascade config's scorer and threshold over `frugal calibrate --features` files.

Each features file holds one JSON line per item with both tiers' outcomes and costs and tier
1's scorer features (docs/CASCADE.md), so any config can be judged on the same answers without
running the models again. Early escalation is not replayed (costs come out a few tenths of a
point above `frugal eval`'s). Used for docs/CALIBRATION.md, "Re-measured on 20 fresh seeds":

    for s in $(seq 51001 51020); do
      python3 tools/tasks.py --seed $s --n 1000 > fresh_$s.jsonl
      frugal calibrate --data fresh_$s.jsonl --dry-run --features feat_$s.jsonl
    done
    python3 tools/replay_config.py frugal.toml feat_*.jsonl
"""
import argparse
import json
import math
import statistics
import tomllib


def replay(config_path, features_path, margin):
    cascade = tomllib.load(open(config_path, "rb"))["cascade"]
    threshold = cascade["threshold"]
    bias, weights = cascade["scorer"]["bias"], cascade["scorer"]["weights"]
    cost = top_cost = right = top_right = 0.0
    slices = {}  # slice -> [items, top right, cascade right]
    for line in open(features_path):
        r = json.loads(line)
        z = bias + sum(w * r["features"][k] for k, w in weights.items())
        escalate = not (1 / (1 + math.exp(-z)) >= threshold)
        correct = r["top_correct"] if escalate else r["tier1_correct"]
        cost += r["tier1_cost"] + (r["top_cost"] if escalate else 0)
        top_cost += r["top_cost"]
        right += correct
        top_right += r["top_correct"]
        g = slices.setdefault(r["slice"], [0, 0, 0])
        g[0] += 1
        g[1] += r["top_correct"]
        g[2] += correct
    loss = {k: 100 * (g[1] - g[2]) / g[0] for k, g in slices.items()}
    worst = max(loss, key=loss.get)
    return dict(quality=right / top_right, cost=cost / top_cost, worst=worst,
                worst_loss=loss[worst], over=sum(v > margin + 1e-9 for v in loss.values()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("features", nargs="+")
    ap.add_argument("--margin", type=float, default=2.0, help="slice margin, points (2)")
    a = ap.parse_args()
    rows = [(f, replay(a.config, f, a.margin)) for f in a.features]
    print("| features | cascade / top | cost vs top-only | worst slice (points) | slices > margin |")
    print("|---|---|---|---|---|")
    for f, r in rows:
        print(f"| {f} | {100 * r['quality']:.1f} % | {100 * r['cost']:.1f} % | "
              f"`{r['worst']}` {-r['worst_loss'] + 0.0:+.1f} | {r['over']} |")
    failed = sum(r["over"] > 0 for _, r in rows)
    print(f"\n{failed} of {len(rows)} samples have a slice more than {a.margin} points below the "
          f"top tier; median {100 * statistics.median(r['quality'] for _, r in rows):.1f} % of "
          f"its accuracy at {100 * statistics.median(r['cost'] for _, r in rows):.1f} % of its cost")


if __name__ == "__main__":
    main()
