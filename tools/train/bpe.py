"""Byte-level BPE tokenizer for the bundled models: GPT-2 pre-tokenization (GGUF pre-tokenizer
"gpt-2"), the GPT-2 byte-to-unicode alphabet, ChatML special tokens, and a trainer.

Vocabulary layout: ids 0..2 are the specials, 3..258 the 256 byte tokens in byte order, then
one token per merge in rank order. The trainer never merges a digit with anything, so every
digit is its own token and arithmetic sees one token per digit.
"""

import collections
import json
import unicodedata

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ENDOFTEXT, IM_START, IM_END = 0, 1, 2
N_SPECIAL = len(SPECIALS)


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
            + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}

_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def _is_letter(c):
    return unicodedata.category(c).startswith("L")


def _is_number(c):
    return unicodedata.category(c).startswith("N")


def _is_space(c):
    # The `regex` module's \s for str patterns: Unicode White_Space.
    return c.isspace() and c not in "\x1c\x1d\x1e\x1f"


def _is_other(c):
    return not (_is_space(c) or _is_letter(c) or _is_number(c))


def pretokenize(text):
    """Splits text exactly as the GPT-2 pattern
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+ does."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            hit = next((s for s in _CONTRACTIONS if text.startswith(s, i + 1)), None)
            if hit is not None:
                out.append(text[i:i + 1 + len(hit)])
                i += 1 + len(hit)
                continue
        start = i + 1 if (c == " " and i + 1 < n) else i
        cls = None
        lead = text[start]
        for pred in (_is_letter, _is_number, _is_other):
            if pred(lead):
                cls = pred
                break
        if cls is not None and (start == i or not _is_space(lead)):
            j = start + 1
            while j < n and cls(text[j]):
                j += 1
            out.append(text[i:j])
            i = j
            continue
        # A whitespace run [i, j).
        j = i
        while j < n and _is_space(text[j]):
            j += 1
        if j < n and j - i >= 2:
            j -= 1  # \s+(?!\S): leave the last space to join the next word
        out.append(text[i:j])
        i = j
    return out


def split_specials(text):
    """Yields (is_special, piece) with the special tokens cut out of text."""
    i = 0
    while i < len(text):
        best = None
        for s in SPECIALS:
            k = text.find(s, i)
            if k != -1 and (best is None or k < best[0]):
                best = (k, s)
        if best is None:
            yield False, text[i:]
            return
        if best[0] > i:
            yield False, text[i:best[0]]
        yield True, best[1]
        i = best[0] + len(best[1])


def _has_digit(token):
    return any(CHAR_TO_BYTE[c] in range(0x30, 0x3A) for c in token)


class Tokenizer:
    """tokens: list of token strings (id = index); merges: list of (left, right) in rank order."""

    def __init__(self, tokens, merges):
        self.tokens = list(tokens)
        self.merges = [tuple(m) for m in merges]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self._cache = {}

    @property
    def vocab_size(self):
        return len(self.tokens)

    def _bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        parts = [BYTE_TO_CHAR[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            best, best_rank = None, None
            for k in range(len(parts) - 1):
                r = self.ranks.get((parts[k], parts[k + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = k, r
            if best is None:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        ids = [self.ids[p] for p in parts]
        self._cache[word] = ids
        return ids

    def encode(self, text, allow_special=True):
        ids = []
        pieces = split_specials(text) if allow_special else [(False, text)]
        for special, piece in pieces:
            if special:
                ids.append(self.ids[piece])
            else:
                for word in pretokenize(piece):
                    ids.extend(self._bpe(word))
        return ids

    def decode(self, ids, skip_special=False):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if i < N_SPECIAL:
                if not skip_special:
                    out.extend(t.encode("utf-8"))
            else:
                out.extend(CHAR_TO_BYTE[c] for c in t)
        return out.decode("utf-8", errors="replace")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokens": self.tokens, "merges": [list(m) for m in self.merges]}, f,
                      ensure_ascii=False)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["tokens"], d["merges"])


def train(texts, vocab_size):
    """Learns merges from texts (specials are cut out first) until vocab_size tokens or no pair
    occurs twice. Ties go to the lexically smallest pair, so training is deterministic."""
    assert vocab_size >= N_SPECIAL + 256
    words = collections.Counter()
    for text in texts:
        for special, piece in split_specials(text):
            if not special:
                words.update(pretokenize(piece))
    seqs = {w: [BYTE_TO_CHAR[b] for b in w.encode("utf-8")] for w in words}
    tokens = SPECIALS + [BYTE_TO_CHAR[b] for b in range(256)]
    merges = []
    while len(tokens) < vocab_size:
        pairs = collections.Counter()
        for w, count in words.items():
            s = seqs[w]
            for k in range(len(s) - 1):
                pair = (s[k], s[k + 1])
                if not (_has_digit(pair[0]) or _has_digit(pair[1])):
                    pairs[pair] += count
        if not pairs:
            break
        best_count = max(pairs.values())
        if best_count < 2:
            break
        best = min(p for p, c in pairs.items() if c == best_count)
        merged = best[0] + best[1]
        merges.append(best)
        tokens.append(merged)
        for w in words:
            s = seqs[w]
            k = 0
            while k < len(s) - 1:
                if s[k] == best[0] and s[k + 1] == best[1]:
                    s[k:k + 2] = [merged]
                k += 1
    return Tokenizer(tokens, merges)
