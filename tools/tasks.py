#!/usr/bin/env python3
"""Frugal task suite: a seeded generator of short instruction -> answer items whose answers can
be checked exactly, each tagged with a slice and a difficulty (1 trivial .. 4 hard).

Format and check contract: docs/TASKS.md.  Pure standard library, so it runs under
/usr/bin/python3 with nothing installed.

  tools/tasks.py --seed S --n N          JSONL on stdout
  tools/tasks.py --seed S --n N --stats  slice x difficulty mix instead
  tools/tasks.py --check FILE            reads {"id", "answer"} JSONL (answers) against
                                         the items of --items FILE, prints accuracy

Other tools import it:  from tasks import generate, check
"""

import argparse
import collections
import json
import random
import re
import sys

SCHEMA_VERSION = 1

# Difficulty mix: 1-3 are the easy majority (80 %), 4 is the hard tail (20 %).
DIFFICULTY_WEIGHTS = {1: 0.40, 2: 0.25, 3: 0.15, 4: 0.20}
EASY_MAX_DIFFICULTY = 3

# Slice mix (percent). 'format' and 'clarify' are the rare production behaviours.
SLICE_WEIGHTS = {
    "add": 15,
    "sub": 11,
    "mul": 8,
    "reverse": 11,
    "sort": 11,
    "count": 9,
    "lookup": 15,
    "convert": 10,
    "format": 5,
    "clarify": 5,
}

NAMES = ["Ana", "Bo", "Cy", "Dan", "Eva", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lee",
         "Max", "Ned", "Oz", "Pam", "Quin", "Rex", "Sam", "Tom", "Uma", "Val", "Wes", "Zoe"]
COLORS = ["red", "blue", "green", "black", "white", "pink", "gray", "gold"]
CITIES = ["Rome", "Oslo", "Lima", "Kyiv", "Bern", "Cairo", "Paris", "Tokyo", "Quito", "Dublin"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# (from, to, factor): value_in_to = value_in_from * factor.
CONVERSIONS_EASY = [("km", "m", 1000), ("kg", "g", 1000), ("m", "cm", 100), ("cm", "mm", 10),
                    ("L", "mL", 1000)]
CONVERSIONS_HARD = [("hours", "minutes", 60), ("minutes", "seconds", 60), ("weeks", "days", 7),
                    ("feet", "inches", 12), ("days", "hours", 24)]

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_in_words(n):
    """0..99 in English words ("forty-two")."""
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("-" + ONES[ones] if ones else "")


def _digits(rng, n_digits):
    """A uniformly drawn integer with exactly n_digits digits (1 digit includes 0)."""
    if n_digits == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (n_digits - 1), 10 ** n_digits - 1)


def _item(slice_name, difficulty, prompt, reference, check_spec):
    return {"slice": slice_name, "difficulty": difficulty,
            "messages": [{"role": "user", "content": prompt}],
            "reference": reference, "check": check_spec}


EXACT = {"method": "exact"}
NUMERIC = {"method": "numeric", "tolerance": 0}

# Digits per operand for add / sub at each difficulty.
ADD_DIGITS = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (3, 3)}


def gen_add(rng, d):
    da, db = ADD_DIGITS[d]
    a, b = _digits(rng, da), _digits(rng, db)
    if rng.random() < 0.5:
        a, b = b, a
    template = rng.choice(["What is {a} + {b}?", "{a} + {b} =", "Add {a} and {b}."])
    return _item("add", d, template.format(a=a, b=b), str(a + b), NUMERIC)


def gen_sub(rng, d):
    da, db = ADD_DIGITS[d]
    a, b = _digits(rng, da), _digits(rng, db)
    if a < b:
        a, b = b, a
    template = rng.choice(["What is {a} - {b}?", "{a} - {b} =", "Subtract {b} from {a}."])
    return _item("sub", d, template.format(a=a, b=b), str(a - b), NUMERIC)


MUL_DIGITS = {1: (1, 1), 2: (1, 1), 3: (2, 1), 4: (3, 1)}


def gen_mul(rng, d):
    da, db = MUL_DIGITS[d]
    a, b = _digits(rng, da), _digits(rng, db)
    if d == 1:  # times tables up to 5
        a, b = rng.randint(0, 5), rng.randint(0, 5)
    template = rng.choice(["What is {a} * {b}?", "{a} x {b} =", "Multiply {a} by {b}."])
    return _item("mul", d, template.format(a=a, b=b), str(a * b), NUMERIC)


LIST_LENGTH = {1: (2, 3), 2: (4, 5), 3: (6, 6), 4: (8, 9)}


def gen_reverse(rng, d):
    n = rng.randint(*LIST_LENGTH[d])
    letters = [rng.choice(LETTERS) for _ in range(n)]
    prompt = rng.choice(["Reverse: ", "Reverse the letters: "]) + " ".join(letters)
    return _item("reverse", d, prompt, " ".join(reversed(letters)), EXACT)


SORT_SHAPE = {1: (3, 1), 2: (4, 1), 3: (4, 2), 4: (6, 2)}  # (count, digits)


def gen_sort(rng, d):
    n, nd = SORT_SHAPE[d]
    values = [_digits(rng, nd) for _ in range(n)]
    descending = d >= 3 and rng.random() < 0.3
    order = "descending" if descending else "ascending"
    prompt = f"Sort {order}: " + " ".join(map(str, values))
    ref = " ".join(map(str, sorted(values, reverse=descending)))
    return _item("sort", d, prompt, ref, EXACT)


COUNT_LENGTH = {1: (3, 4), 2: (5, 6), 3: (7, 8), 4: (10, 12)}


def gen_count(rng, d):
    n = rng.randint(*COUNT_LENGTH[d])
    alphabet = rng.sample(LETTERS, 3 if d <= 2 else 4)
    letters = [rng.choice(alphabet) for _ in range(n)]
    target = rng.choice(alphabet)
    prompt = f"Count the letter {target} in: " + " ".join(letters)
    return _item("count", d, prompt, str(letters.count(target)), NUMERIC)


LOOKUP_FACTS = {1: 1, 2: 2, 3: 3, 4: 5}


def _facts(rng, n, attribute):
    names = rng.sample(NAMES, n)
    if attribute == "age":
        values = [str(rng.randint(10, 89)) for _ in names]
        facts = [f"{p} is {v}." for p, v in zip(names, values)]
    elif attribute == "color":
        values = [rng.choice(COLORS) for _ in names]
        facts = [f"{p} likes {v}." for p, v in zip(names, values)]
    else:
        values = [rng.choice(CITIES) for _ in names]
        facts = [f"{p} lives in {v}." for p, v in zip(names, values)]
    return names, values, facts


LOOKUP_QUESTION = {"age": "How old is {p}?", "color": "What color does {p} like?",
                   "city": "Where does {p} live?"}


def gen_lookup(rng, d):
    attribute = rng.choice(["age", "color", "city"])
    names, values, facts = _facts(rng, LOOKUP_FACTS[d], attribute)
    k = rng.randrange(len(names))
    prompt = " ".join(facts) + " " + LOOKUP_QUESTION[attribute].format(p=names[k])
    check_spec = NUMERIC if attribute == "age" else {"method": "exact_ci"}
    return _item("lookup", d, prompt, values[k], check_spec)


def gen_convert(rng, d):
    if d <= 2:
        src, dst, factor = rng.choice(CONVERSIONS_EASY)
        value = rng.randint(1, 9) if d == 1 else rng.randint(10, 99)
    elif d == 3:
        src, dst, factor = rng.choice(CONVERSIONS_HARD)
        value = rng.randint(1, 9)
    else:
        src, dst, factor = rng.choice(CONVERSIONS_HARD)
        value = rng.randint(10, 99)
    prompt = rng.choice(["Convert {v} {s} to {t}.", "How many {t} is {v} {s}?"]).format(
        v=value, s=src, t=dst)
    return _item("convert", d, prompt, str(value * factor), NUMERIC)


def _odd_case(rng, text):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def gen_format(rng, d):
    """Unusual input formats for the add slice: casing/spacing, words, thousands separators."""
    if d == 1:
        a, b = _digits(rng, 1), _digits(rng, 1)
        prompt = _odd_case(rng, "what is") + "  " + f"{a} +{b}" + rng.choice(["  ?", " ?", "?"])
    elif d == 2:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        prompt = f"What is {number_in_words(a)} plus {number_in_words(b)}?"
    elif d == 3:
        a, b = rng.randint(1, 9) * 1000, rng.randint(1, 9) * 100
        if rng.random() < 0.5:
            a, b = b, a
        prompt = f"What is {a:,} + {b:,}?"
    else:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = f"What is {number_in_words(a)} plus {number_in_words(b)}?"
    return _item("format", d, prompt, str(a + b), NUMERIC)


def _clarify(keywords):
    return {"method": "clarify", "keywords": keywords}


def gen_clarify(rng, d):
    """Requests that cannot be answered as asked; the right answer is a clarifying question."""
    if d == 1:
        what = rng.choice(["Sort the list.", "Reverse the list.", "Sort them ascending."])
        return _item("clarify", d, what, "Which list do you mean?", _clarify(["list"]))
    if d == 2:
        if rng.random() < 0.5:
            value = rng.randint(1, 99)
            _, dst, _ = rng.choice(CONVERSIONS_EASY + CONVERSIONS_HARD)
            prompt = f"Convert {value} to {dst}."
            return _item("clarify", d, prompt, f"What unit is {value} in?", _clarify(["unit"]))
        a = rng.randint(1, 99)
        prompt = rng.choice([f"What is {a} plus?", f"Add {a} and."])
        return _item("clarify", d, prompt, f"What should I add to {a}?", _clarify(["add"]))
    # d 3-4: the name asked about appears twice among the facts.
    n = 3 if d == 3 else 5
    attribute = rng.choice(["age", "color", "city"])
    names, values, facts = _facts(rng, n, attribute)
    k = rng.randrange(n)
    j = rng.choice([i for i in range(n) if i != k])
    dup_fact = facts[j].replace(names[j], names[k], 1)
    facts[j] = dup_fact
    prompt = " ".join(facts) + " " + LOOKUP_QUESTION[attribute].format(p=names[k])
    return _item("clarify", d, prompt, f"Which {names[k]} do you mean?",
                 _clarify([names[k].lower()]))


GENERATORS = {"add": gen_add, "sub": gen_sub, "mul": gen_mul, "reverse": gen_reverse,
              "sort": gen_sort, "count": gen_count, "lookup": gen_lookup,
              "convert": gen_convert, "format": gen_format, "clarify": gen_clarify}


def generate(seed, n):
    """The first n items for seed; a prefix of generate(seed, m) for every m >= n."""
    rng = random.Random(seed)
    slices = list(SLICE_WEIGHTS)
    slice_w = [SLICE_WEIGHTS[s] for s in slices]
    diffs = list(DIFFICULTY_WEIGHTS)
    diff_w = [DIFFICULTY_WEIGHTS[k] for k in diffs]
    items = []
    for i in range(n):
        slice_name = rng.choices(slices, slice_w)[0]
        difficulty = rng.choices(diffs, diff_w)[0]
        item = GENERATORS[slice_name](rng, difficulty)
        item = {"id": f"s{seed}-{i:06d}", **item}
        items.append(item)
    return items


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def normalize(answer):
    """Strips surrounding whitespace (including newlines) from a model answer."""
    return answer.strip()


def check(item, answer):
    """True when answer (the assistant's text, special tokens removed) is right for item."""
    spec = item["check"]
    method = spec["method"]
    got = normalize(answer)
    ref = item["reference"]
    if method == "exact":
        return got == ref
    if method == "exact_ci":
        return got.lower() == ref.lower()
    if method == "numeric":
        if not _NUMBER.fullmatch(got):
            return False
        return abs(float(got) - float(ref)) <= float(spec.get("tolerance", 0))
    if method == "clarify":
        low = got.lower()
        return got.endswith("?") and any(k.lower() in low for k in spec["keywords"])
    raise ValueError(f"unknown check method {method!r}")


def stats(items):
    """A text table of counts per slice and difficulty, with totals and the easy/hard split."""
    table = collections.Counter((it["slice"], it["difficulty"]) for it in items)
    diffs = sorted(DIFFICULTY_WEIGHTS)
    lines = ["slice      " + "".join(f"{'d' + str(d):>7}" for d in diffs) + "  total     %"]
    for s in SLICE_WEIGHTS:
        row = [table[(s, d)] for d in diffs]
        lines.append(f"{s:<11}" + "".join(f"{c:>7}" for c in row)
                     + f"{sum(row):>7}{100.0 * sum(row) / max(1, len(items)):>6.1f}")
    col = [sum(table[(s, d)] for s in SLICE_WEIGHTS) for d in diffs]
    lines.append("total      " + "".join(f"{c:>7}" for c in col) + f"{len(items):>7}")
    easy = sum(c for d, c in zip(diffs, col) if d <= EASY_MAX_DIFFICULTY)
    lines.append(f"easy (d<={EASY_MAX_DIFFICULTY}): {100.0 * easy / max(1, len(items)):.1f} %"
                 f"   hard (d={diffs[-1]}): {100.0 * col[-1] / max(1, len(items)):.1f} %")
    return "\n".join(lines)


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--stats", action="store_true", help="print the slice/difficulty mix")
    parser.add_argument("--check", metavar="ANSWERS",
                        help="JSONL of {id, answer}; scores it against --items")
    parser.add_argument("--items", metavar="ITEMS", help="JSONL items for --check")
    args = parser.parse_args(argv)
    if args.check:
        items = {it["id"]: it for it in (_read_jsonl(args.items) if args.items
                                         else generate(args.seed, args.n))}
        answers = _read_jsonl(args.check)
        right = sum(check(items[a["id"]], a["answer"]) for a in answers)
        print(f"{right}/{len(answers)} = {100.0 * right / max(1, len(answers)):.1f} %")
        return 0
    items = generate(args.seed, args.n)
    if args.stats:
        print(stats(items))
        return 0
    out = sys.stdout
    for it in items:
        out.write(json.dumps(it, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
