#!/usr/bin/env python3
"""Runs the C++ engine (`frugal run`, greedy) on task items for a bundled GGUF model: checks
that its tokens equal PyTorch's greedy tokens from the same file, and/or reports accuracy per
slice and difficulty as the engine measures it (the numbers in models/MODEL_CARD.md).

  check_engine.py --bin build/frugal --model models/frugal-teacher.gguf \
      --items data/heldout.jsonl [--n 1000] [--compare 50] [--json acc.json]
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bpe  # noqa: E402
import tasks  # noqa: E402

MAX_NEW = 24


def engine_tokens(binary, model_path, item):
    """Token ids `frugal run --chat --temp 0` generates for item's last user message, without
    the end-of-turn token."""
    messages = item["messages"]
    cmd = [binary, "run", "-m", model_path, "--chat", "--temp", "0", "-n", str(MAX_NEW),
           "--json", "-t", "1", "-p", messages[-1]["content"]]
    system = [m["content"] for m in messages if m["role"] == "system"]
    if system:
        cmd += ["--system", system[0]]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8")
    ids = [json.loads(line)["id"] for line in out.splitlines() if line.startswith("{")]
    while ids and ids[-1] in (bpe.IM_END, bpe.ENDOFTEXT):
        ids.pop()
    return ids


def torch_tokens(model, tok, item):
    """PyTorch greedy token ids for the same prompt, stopping at an end token."""
    import torch

    import train

    ids = tok.encode(train.render_prompt(item["messages"]))
    out = []
    with torch.no_grad():
        for _ in range(MAX_NEW):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            if nxt in (bpe.IM_END, bpe.ENDOFTEXT):
                break
            out.append(nxt)
            ids.append(nxt)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the frugal binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--n", type=int, default=None, help="evaluate the first N items")
    ap.add_argument("--compare", type=int, default=0,
                    help="compare engine and PyTorch tokens on the first K items")
    ap.add_argument("--json", help="write the accuracy table here")
    args = ap.parse_args(argv)
    with open(args.items, encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    import model as llama

    m, tokens, merges = llama.from_gguf(args.model)
    tok = bpe.Tokenizer(tokens, merges)
    mismatches = 0
    for it in items[:args.compare]:
        e, t = engine_tokens(args.bin, args.model, it), torch_tokens(m, tok, it)
        if e != t:
            mismatches += 1
            print(f"MISMATCH {it['id']}: engine {tok.decode(e)!r} {e} torch {tok.decode(t)!r} {t}")
    if args.compare:
        print(f"compare: {args.compare - mismatches}/{args.compare} items token-identical")
    if args.n is not None:
        import train

        sel = items[:args.n]
        answers = [tok.decode(engine_tokens(args.bin, args.model, it), skip_special=True)
                   for it in sel]
        acc = train.accuracy_table(sel, answers)
        print(f"engine accuracy on {len(sel)} items: {train.format_acc(acc)}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(acc, f, indent=1)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
