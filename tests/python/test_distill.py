"""tools/train/train.py distill: fine-tunes the bundled student on a distillation log in the
format frugal serve writes (docs/OPERATIONS.md) and exports a GGUF that reads back."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

import bpe  # noqa: E402
import model as llama  # noqa: E402
import train  # noqa: E402

STUDENT = os.path.join(ROOT, "models", "frugal-student.gguf")


def log_lines(tok, items):
    """Escalated-request lines whose top-tier answer is the reference, with token ids and top-2
    alternatives as the server logs them; one shadow line with a teacher-forced disagreement
    (which must be skipped)."""
    out = []
    for it in items:
        ids = tok.encode(it["reference"], allow_special=False) + [bpe.IM_END]
        tokens = [{"id": i, "piece": tok.tokens[i], "logprob": -0.1,
                   "top": [{"id": i, "piece": tok.tokens[i], "logprob": -0.1},
                           {"id": 5, "piece": tok.tokens[5], "logprob": -2.5}]} for i in ids]
        out.append({"kind": "escalated", "time": 1.0, "slice": it["slice"],
                    "messages": it["messages"], "max_tokens": 32,
                    "tier1": {"tier": "small", "text": "?", "finish": "stop", "score": 0.2,
                              "tokens": []},
                    "top": {"tier": "large", "text": it["reference"], "finish": "stop",
                            "tokens": tokens}})
    out.append({"kind": "shadow", "time": 2.0, "slice": None,
                "messages": items[0]["messages"], "max_tokens": 32, "agree": False,
                "method": "logprob",
                "tier1": {"tier": "small", "text": "wrong", "finish": "stop", "score": 0.9,
                          "tokens": []},
                "top": {"tier": "large", "text": "wrong", "finish": "stop", "tokens": [],
                        "teacher_forced": True}})
    return out


def answer_loss(m, tok, items):
    with torch.no_grad():
        ex = [train.encode_example(tok, it["messages"], it["reference"]) for it in items]
        ids, labels = train.make_batch(ex, m.cfg.n_ctx)
        logits = m(ids)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 labels.reshape(-1)).item()


def test_distill_fine_tunes_on_the_log_and_exports(tmp_path):
    with open(os.path.join(ROOT, "data", "heldout.jsonl"), encoding="utf-8") as f:
        items = [json.loads(line) for line in f][:200]
    hard = [it for it in items if it["difficulty"] == 4][:12]
    m0, tokens, merges = llama.from_gguf(STUDENT)
    tok = bpe.Tokenizer(tokens, merges)
    lines = log_lines(tok, hard)
    log = tmp_path / "distill.jsonl"
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))

    rows, skipped = train.distill_rows(str(log), tok)
    assert len(rows) == len(hard) and skipped == 1
    assert all(r[2] is not None for r in rows), "same vocabulary: soft labels are used"

    before = answer_loss(m0, tok, hard)
    out = tmp_path / "s2.pt"
    gguf_out = tmp_path / "s2.gguf"
    train.main(["distill", "--student", STUDENT, "--log", str(log), "--out", str(out),
                "--gguf", str(gguf_out), "--steps", "40", "--batch", "8", "--lr", "2e-3",
                "--log-every", "20"])
    m1, tokens1, _ = llama.from_gguf(str(gguf_out))
    assert tokens1 == tokens
    after = answer_loss(m1, tok, hard)
    assert after < 0.7 * before, (before, after)
