#!/usr/bin/env python3
"""Runs `frugal bench` and llama.cpp (through PyPI's llama-cpp-python) on the same GGUF file in
the same run, with the same prompt length, decode length and thread count, and prints both
with their ratio. The llama.cpp side needs `bash scripts/install.sh --peer`.

    .venv/bin/python bench/vs_llamacpp.py -m MODEL.gguf [-p 512] [-n 128] [-t 2] [--json]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time


def bench_llamacpp(model, n_prompt, n_gen, threads, reps):
    import llama_cpp  # noqa: imported here so --help works without it

    llm = llama_cpp.Llama(model_path=model, n_ctx=n_prompt + n_gen + 16, n_batch=n_prompt,
                          n_ubatch=n_prompt, n_threads=threads, n_threads_batch=threads,
                          logits_all=False, verbose=False)
    rng = random.Random(1234)
    n_vocab = llm.n_vocab()
    prompt = [rng.randrange(n_vocab) for _ in range(n_prompt)]
    llm.eval(prompt[:1])  # warm-up: touches every weight once
    best_prefill = best_decode = float("inf")
    for _ in range(reps):
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        llm.eval(prompt)
        best_prefill = min(best_prefill, time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([rng.randrange(n_vocab)])
        best_decode = min(best_decode, time.perf_counter() - t)
    return {
        "version": llama_cpp.__version__,
        "prefill_tokens_per_s": n_prompt / best_prefill,
        "decode_tokens_per_s": n_gen / best_decode,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--frugal", default=os.path.join(os.path.dirname(__file__), "..", "build", "frugal"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    cmd = [a.frugal, "bench", "-m", a.model, "-p", str(a.n_prompt), "-n", str(a.n_gen),
           "-t", str(a.threads), "--reps", str(a.reps), "--json"]
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    peer = bench_llamacpp(a.model, a.n_prompt, a.n_gen, a.threads, a.reps)
    bytes_per_token = ours["decode_bytes_per_token"]
    bw = ours["bandwidth_gb_per_s"]
    peer["decode_roofline_fraction"] = peer["decode_tokens_per_s"] * bytes_per_token / 1e9 / bw
    peer["prefill_peak_fraction"] = (ours["prefill_peak_fraction"] * peer["prefill_tokens_per_s"]
                                     / ours["prefill_tokens_per_s"])
    out = {
        "frugal": ours,
        "llama_cpp": peer,
        "prefill_ratio": ours["prefill_tokens_per_s"] / peer["prefill_tokens_per_s"],
        "decode_ratio": ours["decode_tokens_per_s"] / peer["decode_tokens_per_s"],
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"model {a.model}  weights {ours['weight_type']}  threads {a.threads}  "
          f"bandwidth {bw:.1f} GB/s  FMA peak {ours['fma_peak_gflops']:.1f} GFLOP/s")
    print(f"{'':12}{'prefill tok/s':>15}{'% FMA peak':>12}{'decode tok/s':>15}{'% roofline':>12}")
    for name, r in (("frugal", ours), ("llama.cpp", peer)):
        print(f"{name:12}{r['prefill_tokens_per_s']:15.1f}{100 * r['prefill_peak_fraction']:12.1f}"
              f"{r['decode_tokens_per_s']:15.2f}{100 * r['decode_roofline_fraction']:12.1f}")
    print(f"{'ratio':12}{out['prefill_ratio']:15.2f}{'':12}{out['decode_ratio']:15.2f}")


if __name__ == "__main__":
    sys.exit(main())
