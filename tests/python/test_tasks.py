"""Task suite generator and checker: determinism, mix, and that checks accept right answers only."""

import collections
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import tasks  # noqa: E402


def test_same_seed_same_items_and_prefix_property():
    a = tasks.generate(5, 300)
    assert a == tasks.generate(5, 300)
    assert tasks.generate(5, 100) == a[:100]
    assert a != tasks.generate(6, 300)


def test_cli_writes_jsonl_matching_generate():
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "tasks.py"),
                          "--seed", "9", "--n", "50"], check=True, capture_output=True,
                         text=True).stdout
    items = [json.loads(line) for line in out.splitlines()]
    assert items == tasks.generate(9, 50)
    assert len({it["id"] for it in items}) == 50


def test_mix_is_about_80_easy_20_hard_and_covers_every_slice_and_difficulty():
    items = tasks.generate(11, 5000)
    hard = sum(it["difficulty"] == 4 for it in items) / len(items)
    assert 0.17 <= hard <= 0.23
    cells = collections.Counter((it["slice"], it["difficulty"]) for it in items)
    for s in tasks.SLICE_WEIGHTS:
        for d in (1, 2, 3, 4):
            assert cells[(s, d)] > 0, (s, d)
    rare = sum(it["slice"] in ("format", "clarify") for it in items) / len(items)
    assert 0.05 <= rare <= 0.15


def test_every_reference_passes_and_wrong_answers_fail():
    for it in tasks.generate(3, 3000):
        assert tasks.check(it, it["reference"]), it
        assert tasks.check(it, "  " + it["reference"] + "\n"), it
        assert not tasks.check(it, ""), it
        assert not tasks.check(it, it["reference"] + " 7"), it
        if it["check"]["method"] == "numeric":
            wrong = str(int(it["reference"]) + 1)
            assert not tasks.check(it, wrong), it


def test_numeric_check_rejects_separators_and_words():
    item = {"reference": "4650", "check": {"method": "numeric", "tolerance": 0}}
    assert tasks.check(item, "4650")
    assert not tasks.check(item, "4,650")
    assert not tasks.check(item, "4650 apples")
    tol = {"reference": "2.5", "check": {"method": "numeric", "tolerance": 0.1}}
    assert tasks.check(tol, "2.45") and not tasks.check(tol, "2.7")


def test_clarify_needs_a_question_with_a_keyword():
    items = [it for it in tasks.generate(4, 3000) if it["slice"] == "clarify"]
    assert items
    for it in items:
        assert it["check"]["method"] == "clarify"
        assert tasks.check(it, it["reference"].upper())
        assert not tasks.check(it, it["reference"].rstrip("?"))  # a statement, not a question
        assert not tasks.check(it, "Could you say more?")  # a question, but not about the gap
        assert not tasks.check(it, "42")


def test_clarify_duplicate_name_items_really_are_ambiguous_and_lookups_are_not():
    for it in tasks.generate(8, 4000):
        words = [w.strip(".?") for w in it["messages"][-1]["content"].split()]
        if it["slice"] == "lookup":
            names = [w for w in words if w in tasks.NAMES]
            assert len(set(names)) == len(names) - 1  # each name once, plus the question
        if it["slice"] == "clarify" and it["difficulty"] >= 3:
            name = it["check"]["keywords"][0]
            count = sum(w.lower() == name for w in words)
            assert count == 3  # twice in the facts, once in the question


def test_heldout_file_is_seed_1234():
    with open(os.path.join(ROOT, "data", "heldout.jsonl"), encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    assert items == tasks.generate(1234, len(items))
    assert len(items) >= 1000
