#!/usr/bin/env python3
"""Trains Frugal's bundled models on the task suite (tools/tasks.py): tokenizer, teacher,
teacher-generated data, distilled and hard-label students, evaluation and GGUF export.

  train.py tokenizer --out tok.json
  train.py teacher   --tok tok.json --out teacher.pt [--steps N] [size options]
  train.py gen       --tok tok.json --teacher teacher.pt --out tdata.jsonl --n N
                     [--engine build/frugal --teacher teacher.gguf] [--mix curriculum]
  train.py student   --tok tok.json --teacher teacher.pt --data tdata.jsonl --out s.pt
                     [--hard-only]
  train.py eval      --tok tok.json --model m.pt --items data/heldout.jsonl [--n N]
  train.py export    --tok tok.json --model m.pt --out m.gguf --name NAME
  train.py distill   --student frugal-student.gguf --log distill.jsonl --out s2.pt
                     [--gguf s2.gguf] [--steps N] [--replay tdata.jsonl]

Training items come from seeds >= TRAIN_SEED_BASE; seed 1234 (data/heldout.jsonl) and the
validation seed VAL_SEED are never trained on.
"""

import argparse
import collections
import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bpe  # noqa: E402
import model as llama  # noqa: E402
import tasks  # noqa: E402

TRAIN_SEED_BASE = 100_000
VAL_SEED = 4321
MAX_NEW_TOKENS = 24
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def render_prompt(messages):
    """The ChatML text of messages followed by the assistant header (CHAT_TEMPLATE in Python)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + "<|im_start|>assistant\n"


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def training_items(start_chunk, chunk=4096, mix=None):
    """An endless stream of training items, chunk k from seed TRAIN_SEED_BASE + k.

    mix=None draws the suite's own slice x difficulty mix (tasks.generate); a mix dict
    {"slices": {slice: weight}, "difficulties": {d: weight}} draws that mix instead (a training
    curriculum: the held-out and validation sets keep the suite's mix)."""
    k = start_chunk
    while True:
        if mix is None:
            yield from tasks.generate(TRAIN_SEED_BASE + k, chunk)
        else:
            rng = random.Random(TRAIN_SEED_BASE + k)
            slices, sw = zip(*mix["slices"].items())
            diffs, dw = zip(*mix["difficulties"].items())
            for _ in range(chunk):
                yield tasks.GENERATORS[rng.choices(slices, sw)[0]](rng, rng.choices(diffs, dw)[0])
        k += 1


# The teacher's curriculum: the hard half of the suite and the slices a small model learns last
# (counting, sorting, subtraction, lookups among several facts) drawn more often than the
# suite's own 40/25/15/20 difficulty mix would.
TEACHER_MIX = {
    "slices": {"add": 14, "sub": 14, "mul": 9, "reverse": 5, "sort": 14, "count": 14,
               "lookup": 14, "convert": 6, "format": 5, "clarify": 5},
    "difficulties": {1: 0.15, 2: 0.25, 3: 0.30, 4: 0.30},
}


def length_bucketed(examples_iter, batch, n_ctx, pool_batches=16, seed=0, collate=None):
    """Batches of `batch` examples with little padding: draw pool_batches batches' worth of
    examples (prompt_ids, target_ids, ...), sort them by length, cut into batches, and yield
    collate(batch) (default make_batch) for those in a random order."""
    rng = random.Random(seed)
    collate = collate or (lambda c: make_batch(c, n_ctx))
    while True:
        pool = [next(examples_iter) for _ in range(batch * pool_batches)]
        pool.sort(key=lambda e: len(e[0]) + len(e[1]))
        chunks = [pool[i:i + batch] for i in range(0, len(pool), batch)]
        rng.shuffle(chunks)
        for c in chunks:
            yield collate(c)


@torch.no_grad()
def teacher_logprobs(teacher, examples, n_ctx, batch=128):
    """The teacher's log-probabilities (float16, [n_target_tokens, vocab]) at each example's
    target positions, computed once so that distillation costs no teacher forward per step."""
    out = [None] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        ids, labels = make_batch([examples[i] for i in idx], n_ctx)
        lp = F.log_softmax(teacher(ids).float(), -1)
        for j, i in enumerate(idx):
            out[i] = lp[j][labels[j] != -100].half()
    return out


def encode_example(tok, messages, answer):
    prompt = tok.encode(render_prompt(messages))
    target = tok.encode(answer, allow_special=False) + [bpe.IM_END]
    return prompt, target


def make_batch(examples, n_ctx):
    """examples: [(prompt_ids, target_ids)] -> ids [b, t], labels [b, t] (-100 outside targets;
    labels[i] is the token that should follow ids[i])."""
    seqs = [(p + t)[:n_ctx + 1] for p, t in examples]
    t_max = max(len(s) for s in seqs) - 1
    ids = torch.zeros((len(seqs), t_max), dtype=torch.long)
    labels = torch.full((len(seqs), t_max), -100, dtype=torch.long)
    for i, ((p, _), s) in enumerate(zip(examples, seqs)):
        n = len(s) - 1
        ids[i, :n] = torch.tensor(s[:-1])
        lab = torch.tensor(s[1:])
        lab[:len(p) - 1] = -100
        labels[i, :n] = lab
    return ids, labels


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def greedy_answers(model, tok, items, max_new=MAX_NEW_TOKENS, batch=64):
    """Greedy answers (text, special tokens removed) for items; prompts of equal length are
    decoded together so no padding is needed."""
    model.eval()
    prompts = [tok.encode(render_prompt(it["messages"])) for it in items]
    buckets = collections.defaultdict(list)
    for i, p in enumerate(prompts):
        buckets[len(p)].append(i)
    answers = [None] * len(items)
    for idxs in buckets.values():
        for s in range(0, len(idxs), batch):
            group = idxs[s:s + batch]
            ids = torch.tensor([prompts[i] for i in group])
            out = [[] for _ in group]
            done = [False] * len(group)
            for _ in range(max_new):
                if ids.shape[1] >= model.cfg.n_ctx:
                    break
                nxt = model(ids)[:, -1].argmax(-1)
                for j, t in enumerate(nxt.tolist()):
                    if not done[j]:
                        if t in (bpe.IM_END, bpe.ENDOFTEXT):
                            done[j] = True
                        else:
                            out[j].append(t)
                if all(done):
                    break
                ids = torch.cat([ids, nxt[:, None]], dim=1)
            for j, i in enumerate(group):
                answers[i] = tok.decode(out[j], skip_special=True)
    model.train()
    return answers


def accuracy_table(items, answers):
    """{'all': acc, 'd1'..'d4': acc, slice: acc} in percent."""
    groups = collections.defaultdict(list)
    for it, a in zip(items, answers):
        ok = tasks.check(it, a)
        groups["all"].append(ok)
        groups[f"d{it['difficulty']}"].append(ok)
        groups[it["slice"]].append(ok)
    return {k: round(100.0 * sum(v) / len(v), 1) for k, v in groups.items()}


def format_acc(acc):
    keys = ["all", "d1", "d2", "d3", "d4"] + [s for s in tasks.SLICE_WEIGHTS if s in acc]
    return " ".join(f"{k}={acc[k]:.1f}" for k in keys if k in acc)


# ---------------------------------------------------------------------------------------
def cmd_tokenizer(args):
    items = tasks.generate(TRAIN_SEED_BASE - 1, args.n)
    texts = []
    for it in items:
        texts.append(render_prompt(it["messages"]) + it["reference"] + "<|im_end|>")
    texts.append(render_prompt([{"role": "system", "content": "You are a helpful assistant."}]))
    t0 = time.time()
    tok = bpe.train(texts, args.vocab)
    tok.save(args.out)
    sample = render_prompt(items[0]["messages"]) + items[0]["reference"]
    log(f"tokenizer: {tok.vocab_size} tokens, {len(tok.merges)} merges in "
        f"{time.time() - t0:.1f}s; mean tokens/item "
        f"{np.mean([len(tok.encode(t)) for t in texts[:2000]]):.1f}; sample {tok.encode(sample)}")


def model_config(args, vocab_size):
    return llama.LlamaConfig(vocab_size=vocab_size, n_embd=args.n_embd, n_layer=args.n_layer,
                             n_head=args.n_head, n_head_kv=args.n_head_kv, n_ff=args.n_ff,
                             n_ctx=args.n_ctx)


def evaluate(model, tok, n, seed=VAL_SEED):
    items = tasks.generate(seed, n)
    return accuracy_table(items, greedy_answers(model, tok, items))


def adapt_mix(mix, acc, base=None):
    """Adaptive curriculum: slice weights become base weight x (error rate + 0.1), from the
    latest validation accuracies (percent), so the slices still wrong are drawn more often."""
    base = base or TEACHER_MIX["slices"]
    for s in mix["slices"]:
        if s in acc:
            mix["slices"][s] = base[s] * (1.0 - acc[s] / 100.0 + 0.1)


def train_loop(args, model, tok, batches, loss_fn, tag, on_eval=None):
    """Shared optimizer loop: AdamW, warmup + cosine to 10 %, checkpoint and validation."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95),
                            weight_decay=0.1)
    history, first = [], 0
    if getattr(args, "resume", None):
        ck = torch.load(args.resume, map_location="cpu")
        model.load_state_dict(ck["state"])
        opt.load_state_dict(ck["optimizer"])
        history, first = ck["history"], ck["steps_done"]
        log(f"{tag}: resumed from {args.resume} at step {first}")
    t_start = time.time() - 60 * (history[-1]["minutes"] if history else 0)
    n_tok = 0
    window = time.time()
    for step in range(first, args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        ids, labels, extra = next(batches)
        loss = loss_fn(model, ids, labels, extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n_tok += int((ids != 0).sum())
        last = step + 1 == args.steps
        if (step + 1) % args.log_every == 0 or last:
            dt = time.time() - window
            log(f"{tag} step {step + 1}/{args.steps} loss {loss.item():.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {dt / args.log_every * 1000:.0f} ms/step "
                f"{n_tok / (time.time() - window):.0f} tok/s")
            n_tok = 0
            window = time.time()
        if (args.eval_every and (step + 1) % args.eval_every == 0) or last:
            acc = evaluate(model, tok, args.eval_n)
            if on_eval:
                on_eval(acc)
            history.append({"step": step + 1, "minutes": round((time.time() - t_start) / 60, 2),
                            "acc": acc})
            log(f"{tag} eval step {step + 1} ({(time.time() - t_start) / 60:.1f} min): "
                f"{format_acc(acc)}")
            llama.save(model, args.out, {"history": history, "steps_done": step + 1,
                                         "optimizer": opt.state_dict()})
            window = time.time()  # step times exclude evaluation
    return history


def cmd_teacher(args):
    torch.manual_seed(args.seed)
    tok = bpe.Tokenizer.load(args.tok)
    cfg = model_config(args, tok.vocab_size)
    model = llama.Llama(cfg)
    log(f"teacher: {model.n_params():,} parameters, config {cfg}")

    def batches():
        # A resumed run continues with fresh items rather than repeating the first ones.
        done = torch.load(args.resume)["steps_done"] if args.resume else 0
        stream = training_items(args.seed * 1000 + done * args.batch // 4096 + 1,
                                mix=None if args.mix == "suite" else mix)
        examples = (encode_example(tok, it["messages"], it["reference"]) for it in stream)
        for ids, labels in length_bucketed(examples, args.batch, cfg.n_ctx, seed=args.seed + done):
            yield ids, labels, None

    def ce(m, ids, labels, _):
        logits = m(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    mix = {"slices": dict(TEACHER_MIX["slices"]),
           "difficulties": dict(TEACHER_MIX["difficulties"])}
    on_eval = None
    if args.mix == "adaptive":
        def on_eval(acc):
            adapt_mix(mix, acc)
            log("teacher: slice mix now " + " ".join(f"{k}={v:.1f}"
                                                     for k, v in mix["slices"].items()))
        if args.resume:  # start from the resumed checkpoint's latest validation
            hist = torch.load(args.resume)["history"]
            if hist:
                on_eval(hist[-1]["acc"])
    train_loop(args, model, tok, batches(), ce, "teacher", on_eval)


def engine_answers(frugal, teacher_gguf, items, threads=1):
    """The teacher's greedy answers from the C++ engine (`frugal eval --answers`, the teacher as
    the top tier): the same tokens as greedy_answers on the same weights, about 5x faster.
    Tier 1, whose answers are not used, is the bundled student when there is one (it costs a
    tenth of the teacher), else the teacher again."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        data, config, answers = (os.path.join(d, n) for n in ("items.jsonl", "gen.toml",
                                                               "answers.jsonl"))
        with open(data, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(it) + "\n" for it in items)
        gguf = os.path.abspath(teacher_gguf)
        cheap = os.path.join(os.path.dirname(os.path.dirname(HERE)), "models",
                             "frugal-student.gguf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"[cascade]\nmax_tokens = {MAX_NEW_TOKENS}\n")
            for name, model in (("a", cheap if os.path.exists(cheap) else gguf), ("b", gguf)):
                f.write(f'[[tier]]\nname = "{name}"\nkind = "local"\nmodel = "{model}"\n'
                        "price_in = 1.0\nprice_out = 1.0\n")
        r = subprocess.run([frugal, "eval", "--config", config, "--data", data, "--answers",
                            answers, "-t", str(threads)], capture_output=True, text=True)
        if r.returncode not in (0, 3):  # 3: the gate verdict, meaningless here
            raise SystemExit(f"gen: frugal eval failed ({r.returncode}): {r.stderr.strip()}")
        by_id = {}
        with open(answers, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                by_id[row["id"]] = row["top"]["answer"]
    return [by_id[it["id"]] for it in items]


def cmd_gen(args):
    """Teacher-generated data: the teacher's greedy answer where it is right, else the
    reference (so the student never learns a known-wrong answer as a hard label)."""
    seed = TRAIN_SEED_BASE + 500_000 + args.seed
    if args.mix == "suite":
        items = tasks.generate(seed, args.n)
    else:  # the teacher's curriculum: more of the hard half and the slices learnt last
        stream = training_items(seed * 10, mix=TEACHER_MIX)
        items = [dict(next(stream), id=f"g{args.seed}-{i:07d}") for i in range(args.n)]
    t0 = time.time()
    if args.engine:
        answers = engine_answers(args.engine, args.teacher, items, args.threads)
    else:
        teacher, _ = llama.load(args.teacher)
        tok = bpe.Tokenizer.load(args.tok)
        answers = greedy_answers(teacher, tok, items)
    right = 0
    with open(args.out, "w", encoding="utf-8") as f:
        for it, a in zip(items, answers):
            ok = tasks.check(it, a)
            right += ok
            f.write(json.dumps({"messages": it["messages"], "answer": a.strip() if ok else
                                it["reference"], "reference": it["reference"],
                                "teacher_right": ok}) + "\n")
    log(f"gen: {args.n} items ({args.mix} mix) in {time.time() - t0:.1f}s, teacher right on "
        f"{100.0 * right / max(1, args.n):.1f} %")


def cmd_student(args):
    torch.manual_seed(args.seed)
    tok = bpe.Tokenizer.load(args.tok)
    cfg = model_config(args, tok.vocab_size)
    model = llama.Llama(cfg)
    teacher = None
    if not args.hard_only:
        teacher, _ = llama.load(args.teacher)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    with open(args.data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    tag = "student-hard" if args.hard_only else "student-kd"
    log(f"{tag}: {model.n_params():,} parameters, {len(rows)} training rows, config {cfg}")

    # The hard-label student learns the references; the distilled one learns the
    # teacher-generated answers and the teacher's soft labels on them.
    key = "reference" if args.hard_only else "answer"
    encoded = [encode_example(tok, r["messages"], r[key]) for r in rows]
    soft = None
    if teacher is not None:
        t0 = time.time()
        soft = teacher_logprobs(teacher, encoded, cfg.n_ctx)
        log(f"{tag}: teacher soft labels for {sum(len(x) for x in soft):,} answer tokens in "
            f"{time.time() - t0:.1f}s")

    # Where the teacher answered wrong the row's answer is the reference, and the teacher's
    # soft labels on it point away from it: those tokens learn from the reference alone
    # (--kd-all keeps the KL term there too).
    trusted = [bool(r.get("teacher_right", True)) or args.kd_all for r in rows]

    def collate(chunk):
        ids, labels = make_batch([(p, t) for p, t, _ in chunk], cfg.n_ctx)
        if soft is None:
            return ids, labels, None
        t_logp = torch.cat([soft[i] for _, _, i in chunk]).float()
        weight = torch.cat([torch.full((len(soft[i]),), float(trusted[i])) for _, _, i in chunk])
        return ids, labels, (t_logp, weight)

    def batches():
        g = torch.Generator().manual_seed(args.seed)

        def examples():
            while True:
                for i in torch.randperm(len(rows), generator=g).tolist():
                    yield encoded[i][0], encoded[i][1], i

        yield from length_bucketed(examples(), args.batch, cfg.n_ctx, seed=args.seed,
                                   collate=collate)

    def hard_ce(m, ids, labels, _):
        logits = m(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    def distill(m, ids, labels, extra):
        t_logp, weight = extra  # [n_answer_tokens, vocab], [n_answer_tokens]
        logits = m(ids)
        sel = labels != -100
        s = logits[sel]  # row-major, like the cached soft labels
        temp = args.temperature
        kl_tok = F.kl_div(F.log_softmax(s / temp, -1), F.log_softmax(t_logp / temp, -1),
                          log_target=True, reduction="none").sum(-1) * temp * temp
        ce_tok = F.cross_entropy(s, labels[sel], reduction="none")
        # Trusted tokens: alpha * KL + (1 - alpha) * CE; the others: CE alone.
        loss = weight * (args.alpha * kl_tok + (1 - args.alpha) * ce_tok) + (1 - weight) * ce_tok
        return loss.mean()

    train_loop(args, model, tok, batches(), hard_ce if args.hard_only else distill, tag)


def cmd_eval(args):
    tok = bpe.Tokenizer.load(args.tok)
    m, _ = llama.load(args.model)
    with open(args.items, encoding="utf-8") as f:
        items = [json.loads(line) for line in f][:args.n]
    t0 = time.time()
    answers = greedy_answers(m, tok, items)
    acc = accuracy_table(items, answers)
    log(f"eval {args.model} on {len(items)} items in {time.time() - t0:.1f}s: {format_acc(acc)}")
    if args.answers:
        with open(args.answers, "w", encoding="utf-8") as f:
            for it, a in zip(items, answers):
                f.write(json.dumps({"id": it["id"], "answer": a}) + "\n")
    print(json.dumps(acc))


def distill_rows(path, tok):
    """Training rows from a frugal serve distillation log (docs/OPERATIONS.md): the top tier's
    answer to each escalated request and each shadow pair (for a teacher-forced shadow pair
    tier 1's answer, only when the top tier agreed with it). Each row is (prompt ids, target
    ids, soft) where soft is [(ids, logprobs)] per target token: the top tier's logged top
    alternatives when its token ids are this tokenizer's (the same vocabulary), else None."""
    rows, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            top = r.get("top") or {}
            if "messages" not in r or not top:
                skipped += 1
                continue
            if top.get("teacher_forced"):
                if not r.get("agree"):
                    skipped += 1
                    continue
                answer = r["tier1"]["text"]
            else:
                answer = top["text"]
            prompt, target = encode_example(tok, r["messages"], answer)
            soft = None
            toks = top.get("tokens") or []
            ids = [t["id"] for t in toks]
            # The logged tokens are this vocabulary's when they encode the same text.
            if ids and ids == target[:len(ids)] and all(t.get("top") for t in toks):
                soft = [([a["id"] for a in t["top"]], [a["logprob"] for a in t["top"]])
                        for t in toks]
            rows.append((prompt, target, soft))
    return rows, skipped


def cmd_distill(args):
    """Fine-tunes the student on a distillation log: cross-entropy on the top tier's answers,
    plus (alpha) the KL to the top tier's logged top-k distribution where its tokens are the
    student's; optionally mixed with the original training data (--replay) so that the
    student does not forget what it knew."""
    torch.manual_seed(args.seed)
    m, tokens, merges = llama.from_gguf(args.student)
    tok = bpe.Tokenizer(tokens, merges)
    rows, skipped = distill_rows(args.log, tok)
    if not rows:
        sys.exit(f"distill: {args.log} has no usable rows ({skipped} skipped)")
    replay = []
    if args.replay:
        with open(args.replay, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                replay.append(encode_example(tok, r["messages"], r.get("answer", r.get("reference"))) + (None,))
    log(f"distill: {len(rows)} rows from {args.log} ({skipped} skipped, "
        f"{sum(r[2] is not None for r in rows)} with soft labels), {len(replay)} replay rows")
    n_ctx = m.cfg.n_ctx
    rng = random.Random(args.seed)
    pool = rows + replay

    def batches():
        while True:
            chunk = [pool[rng.randrange(len(pool))] for _ in range(args.batch)]
            ids, labels = make_batch([(p, t) for p, t, _ in chunk], n_ctx)
            yield ids, labels, chunk

    def loss_fn(model, ids, labels, chunk):
        logits = model(ids)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        kl_terms = []
        for b, (p, t, soft) in enumerate(chunk):
            if soft is None:
                continue
            lp = F.log_softmax(logits[b].float(), -1)
            for j, (ids_k, lps_k) in enumerate(soft):
                pos = len(p) - 1 + j  # the row that predicts target token j
                if pos >= lp.shape[0]:
                    break
                target = torch.softmax(torch.tensor(lps_k), -1)  # renormalised over the top k
                kl_terms.append(-(target * lp[pos, torch.tensor(ids_k)]).sum())
        if not kl_terms:
            return ce
        return (1 - args.alpha) * ce + args.alpha * torch.stack(kl_terms).mean()

    args.eval_every = 0
    args.warmup = min(args.warmup, max(1, args.steps // 10))
    model = m
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    it = batches()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        ids, labels, chunk = next(it)
        loss = loss_fn(model, ids, labels, chunk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            log(f"distill step {step + 1}/{args.steps} loss {loss.item():.4f}")
    llama.save(model, args.out, {"history": [], "steps_done": args.steps})
    log(f"distill: wrote {args.out}")
    if args.gguf:
        tok_path = args.out + ".tok.json"
        with open(tok_path, "w", encoding="utf-8") as f:
            json.dump({"tokens": tok.tokens, "merges": [list(x) for x in tok.merges]}, f)
        cmd_export(argparse.Namespace(tok=tok_path, model=args.out, out=args.gguf,
                                      name=args.name, dtype="f32"))
        log(f"distill: wrote {args.gguf}; gate it with frugal eval before serving it")


def cmd_export(args):
    from gguf_writer import GgufWriter
    tok = bpe.Tokenizer.load(args.tok)
    m, ck = llama.load(args.model)
    cfg = m.cfg
    w = GgufWriter(args.out)
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", args.name)
    w.add_uint32("general.file_type", 0 if args.dtype == "f32" else 1)
    w.add_uint32("llama.context_length", cfg.n_ctx)
    w.add_uint32("llama.embedding_length", cfg.n_embd)
    w.add_uint32("llama.block_count", cfg.n_layer)
    w.add_uint32("llama.feed_forward_length", cfg.n_ff)
    w.add_uint32("llama.attention.head_count", cfg.n_head)
    w.add_uint32("llama.attention.head_count_kv", cfg.n_head_kv)
    w.add_uint32("llama.rope.dimension_count", cfg.head_dim)
    w.add_float32("llama.rope.freq_base", cfg.rope_theta)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", cfg.norm_eps)
    w.add_uint32("llama.vocab_size", cfg.vocab_size)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", tok.tokens, "string")
    w.add_array("tokenizer.ggml.token_type",
                [3 if i < bpe.N_SPECIAL else 1 for i in range(tok.vocab_size)], "int32")
    w.add_array("tokenizer.ggml.merges", [f"{a} {b}" for a, b in tok.merges], "string")
    w.add_uint32("tokenizer.ggml.bos_token_id", bpe.ENDOFTEXT)
    w.add_uint32("tokenizer.ggml.eos_token_id", bpe.IM_END)
    w.add_uint32("tokenizer.ggml.padding_token_id", bpe.ENDOFTEXT)
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_string("tokenizer.chat_template", CHAT_TEMPLATE)
    sd = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    big = args.dtype

    def put(name, key, dtype=big):
        w.add_tensor(name, sd[key], dtype)

    put("token_embd.weight", "tok_embd.weight")
    for il in range(cfg.n_layer):
        p = f"blocks.{il}."
        put(f"blk.{il}.attn_norm.weight", p + "attn_norm.weight", "f32")
        put(f"blk.{il}.attn_q.weight", p + "wq.weight")
        put(f"blk.{il}.attn_k.weight", p + "wk.weight")
        put(f"blk.{il}.attn_v.weight", p + "wv.weight")
        put(f"blk.{il}.attn_output.weight", p + "wo.weight")
        put(f"blk.{il}.ffn_norm.weight", p + "ffn_norm.weight", "f32")
        put(f"blk.{il}.ffn_gate.weight", p + "w_gate.weight")
        put(f"blk.{il}.ffn_up.weight", p + "w_up.weight")
        put(f"blk.{il}.ffn_down.weight", p + "w_down.weight")
    put("output_norm.weight", "out_norm.weight", "f32")
    w.write()
    log(f"export: {args.out} ({os.path.getsize(args.out):,} bytes, {m.n_params():,} parameters)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("tokenizer")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--n", type=int, default=20000)

    def train_opts(p, n_embd, n_layer, n_head, n_head_kv, n_ff, steps, lr, batch):
        p.add_argument("--tok", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--n-embd", type=int, default=n_embd)
        p.add_argument("--n-layer", type=int, default=n_layer)
        p.add_argument("--n-head", type=int, default=n_head)
        p.add_argument("--n-head-kv", type=int, default=n_head_kv)
        p.add_argument("--n-ff", type=int, default=n_ff)
        p.add_argument("--n-ctx", type=int, default=128)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--batch", type=int, default=batch)
        p.add_argument("--lr", type=float, default=lr)
        p.add_argument("--warmup", type=int, default=100)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--log-every", type=int, default=50)
        p.add_argument("--eval-every", type=int, default=500)
        p.add_argument("--eval-n", type=int, default=300)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--resume", help="checkpoint to continue from (same --steps schedule)")

    p = sub.add_parser("teacher")
    train_opts(p, 192, 6, 6, 2, 512, 6000, 2e-3, 64)
    p.add_argument("--mix", choices=["suite", "curriculum", "adaptive"], default="adaptive",
                   help="training mix: the suite's own, TEACHER_MIX, or TEACHER_MIX with slice "
                        "weights following the validation error rates (adapt_mix)")
    p = sub.add_parser("student")
    train_opts(p, 64, 4, 4, 2, 176, 6000, 3e-3, 64)
    p.add_argument("--teacher")
    p.add_argument("--data", required=True)
    p.add_argument("--hard-only", action="store_true")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--kd-all", action="store_true",
                   help="keep the KL term on rows the teacher answered wrong as well")

    p = sub.add_parser("gen")
    for a in ("--tok", "--teacher", "--out"):
        p.add_argument(a, required=True)
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mix", choices=["suite", "curriculum"], default="suite",
                   help="items in the suite's own mix or in TEACHER_MIX")
    p.add_argument("--engine", metavar="FRUGAL",
                   help="answer with the C++ engine (this frugal binary; --teacher is then the "
                        "teacher's GGUF file) instead of PyTorch")

    p = sub.add_parser("eval")
    for a in ("--tok", "--model", "--items"):
        p.add_argument(a, required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--answers", help="write {id, answer} JSONL here")
    p.add_argument("--threads", type=int, default=1)

    p = sub.add_parser("export")
    for a in ("--tok", "--model", "--out", "--name"):
        p.add_argument(a, required=True)
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32")

    p = sub.add_parser("distill", help="fine-tune the student on a frugal serve distillation log")
    p.add_argument("--student", required=True, help="the student's GGUF (train.py export's)")
    p.add_argument("--log", required=True, help="the distillation log (JSONL)")
    p.add_argument("--out", required=True, help="the fine-tuned checkpoint (.pt)")
    p.add_argument("--gguf", help="also export the fine-tuned student here")
    p.add_argument("--name", default="frugal-student-distilled")
    p.add_argument("--replay", help="training rows (train.py gen) mixed in against forgetting")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the top-k KL term")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)

    args = ap.parse_args(argv)
    torch.set_num_threads(getattr(args, "threads", 1))
    {"tokenizer": cmd_tokenizer, "teacher": cmd_teacher, "gen": cmd_gen, "student": cmd_student,
     "eval": cmd_eval, "export": cmd_export, "distill": cmd_distill}[args.cmd](args)


if __name__ == "__main__":
    main()
