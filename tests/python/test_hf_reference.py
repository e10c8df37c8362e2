"""Frugal's forward pass vs Hugging Face transformers on random Llama / Mistral / Qwen2 models.

Each case builds a small random model in transformers (seeded, weights drawn with a larger
std than the default so logits are O(1) and errors visible), saves it, converts it with
tools/convert_hf.py and compares logits at every prompt position:

  * a numpy forward pass that reads the GGUF file with GGUF semantics (adjacent-pair RoPE for
    `llama`, NEOX for `qwen2`, rope_freqs divisors) must match HF: this checks the converter
    without the engine;
  * `frugal run --dump-logits` on the F32 file must match HF tightly;
  * after `frugal quantize` to F16 / BF16 / Q8_0 / Q4_0 the error must stay within the bound
    derived in docs/ACCURACY.md, and the greedy next token must not change (not for Q4_0).

Run with `pytest -s` to see the measured errors.
"""
import json
import math
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
gguf = pytest.importorskip('gguf')

import convert_hf  # noqa: E402  (conftest puts tools/ on sys.path)

PROMPT_LEN = 32
INIT_STD = 0.15

# Small models covering the families and the layout differences that matter:
# GQA, tied embeddings, Llama-3 RoPE scaling, Mistral, Qwen2 QKV bias + NEOX RoPE.
CASES = {
    'llama': dict(cls='LlamaForCausalLM', hidden=96, layers=3, inter=288, vocab=300),
    'llama_tied': dict(cls='LlamaForCausalLM', hidden=64, layers=2, inter=192, vocab=300,
                       tied=True),
    # Positions 0..31 with original_max_position_embeddings 8: wavelengths above 8/1 = 8
    # tokens are divided by `factor`, those between 2 and 8 are smoothed, so every branch of
    # the Llama-3 rule is used inside the prompt.
    'llama3_rope': dict(cls='LlamaForCausalLM', hidden=128, layers=2, inter=384, vocab=300,
                        rope_theta=500000.0,
                        rope_scaling={'rope_type': 'llama3', 'factor': 8.0,
                                      'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                                      'original_max_position_embeddings': 8}),
    'mistral': dict(cls='MistralForCausalLM', hidden=96, layers=2, inter=256, vocab=280),
    'qwen2': dict(cls='Qwen2ForCausalLM', hidden=96, layers=2, inter=288, vocab=320),
}


# ---- building the reference models ----------------------------------------------------
def _hf_config(case):
    kw = dict(vocab_size=case['vocab'], hidden_size=case['hidden'],
              intermediate_size=case['inter'], num_hidden_layers=case['layers'],
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, rope_theta=case.get('rope_theta', 10000.0),
              tie_word_embeddings=case.get('tied', False), initializer_range=INIT_STD,
              architectures=[case['cls']])
    if case['cls'] == 'LlamaForCausalLM':
        return transformers.LlamaConfig(**kw)
    if case['cls'] == 'MistralForCausalLM':
        return transformers.MistralConfig(sliding_window=None, **kw)
    return transformers.Qwen2Config(use_sliding_window=False, **kw)


def _build_case(name, root):
    """Returns (model_dir, f32 gguf path, prompt tokens, HF logits [T, n_vocab] float64)."""
    case = CASES[name]
    torch.manual_seed(1234 + sum(map(ord, name)))
    config = _hf_config(case)
    config._attn_implementation = 'eager'
    model = getattr(transformers, case['cls'])(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if 'norm' in pname:      # default init is all ones: make the norm weights matter
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith('.bias'):  # default init is zeros: make the biases matter
                p.copy_(0.3 * torch.randn_like(p))
    scaling = case.get('rope_scaling')
    if scaling:  # transformers 4.40 has no Llama-3 rope: apply it to every layer's inv_freq
        head_dim = case['hidden'] // 4
        div = torch.from_numpy(
            convert_hf.llama3_rope_divisors(head_dim, case['rope_theta'], scaling))
        for layer in model.model.layers:
            layer.self_attn.rotary_emb.inv_freq = layer.self_attn.rotary_emb.inv_freq / div

    model_dir = os.path.join(root, name)
    model.save_pretrained(model_dir, safe_serialization=True)
    if scaling:
        cfg_path = os.path.join(model_dir, 'config.json')
        with open(cfg_path) as f:
            raw = json.load(f)
        raw['rope_scaling'] = scaling
        with open(cfg_path, 'w') as f:
            json.dump(raw, f)

    rng = np.random.default_rng(99)
    tokens = rng.integers(0, case['vocab'], PROMPT_LEN).tolist()
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].double().numpy()
    gguf_path = os.path.join(root, name + '.f32.gguf')
    convert_hf.convert(model_dir, gguf_path, 'f32')
    return model_dir, gguf_path, tokens, logits


_built = {}


@pytest.fixture(params=sorted(CASES), scope='module')
def case(request, tmp_path_factory):
    name = request.param
    if name not in _built:
        _built[name] = _build_case(name, str(tmp_path_factory.mktemp('hf_' + name)))
    return (name,) + _built[name]


# ---- GGUF reading and a numpy forward pass with GGUF semantics ---------------------------
def _field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode()
    return v[0].item()


def read_gguf(path):
    """Returns (metadata dict, {name: (float32 array in numpy shape, ggml type name)})."""
    r = gguf.GGUFReader(path)
    arch = _field(r, 'general.architecture')
    meta = {'arch': arch}
    for k in ('embedding_length', 'block_count', 'attention.head_count',
              'attention.head_count_kv', 'rope.freq_base', 'attention.layer_norm_rms_epsilon',
              'rope.dimension_count', 'context_length', 'feed_forward_length'):
        meta[k] = _field(r, f'{arch}.{k}')
    tensors = {}
    for t in r.tensors:
        shape = tuple(reversed([int(d) for d in t.shape]))
        vals = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        tensors[t.name] = (np.asarray(vals, np.float32).reshape(shape),
                           t.tensor_type.name.lower())
    return meta, tensors


def _q8_0_roundtrip(x):
    """x quantized to Q8_0 blocks of 32 along the last axis and back (activation path)."""
    shape = x.shape
    b = x.reshape(-1, 32).astype(np.float32)
    d = (np.abs(b).max(axis=1, keepdims=True) / 127).astype(np.float16).astype(np.float32)
    q = np.where(d > 0, np.round(b / np.where(d > 0, d, 1)), 0)
    return (q * d).reshape(shape)


def gguf_forward(path, tokens, quantize_activations=True):
    """Logits [T, n_vocab] (float64) of the GGUF model at `path`, computed in numpy.

    Matrices stored as Q8_0/Q4_0 see their input rounded to Q8_0 blocks first, as the
    engine's matmul does (quantize_activations=False turns that off).
    """
    meta, ts = read_gguf(path)
    n_head, n_head_kv = meta['attention.head_count'], meta['attention.head_count_kv']
    hd = meta['rope.dimension_count']
    eps = meta['attention.layer_norm_rms_epsilon']
    neox = meta['arch'] == 'qwen2'
    inv_freq = meta['rope.freq_base'] ** (-np.arange(0, hd, 2) / hd)
    if 'rope_freqs.weight' in ts:
        inv_freq = inv_freq / ts['rope_freqs.weight'][0]
    T = len(tokens)
    angle = np.arange(T)[:, None] * inv_freq[None, :]           # [T, hd/2]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]

    def mm(x, name):
        w, ty = ts[name]
        if quantize_activations and ty in ('q8_0', 'q4_0'):
            x = _q8_0_roundtrip(x)
        y = x @ w.astype(np.float64).T
        bias = name.replace('.weight', '.bias')
        return y + ts[bias][0] if bias in ts else y

    def norm(x, name):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * ts[name][0]

    def rope(x):                                                  # x [T, heads, hd]
        if neox:
            a, b = x[..., :hd // 2], x[..., hd // 2:]
            return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    x = ts['token_embd.weight'][0][tokens].astype(np.float64)    # [T, n_embd]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for il in range(meta['block_count']):
        p = f'blk.{il}.'
        h = norm(x, p + 'attn_norm.weight')
        q = rope(mm(h, p + 'attn_q.weight').reshape(T, n_head, hd))
        k = rope(mm(h, p + 'attn_k.weight').reshape(T, n_head_kv, hd))
        v = mm(h, p + 'attn_v.weight').reshape(T, n_head_kv, hd)
        rep = n_head // n_head_kv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum('qhd,khd->hqk', q, k) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum('hqk,khd->qhd', s, v).reshape(T, n_head * hd)
        x = x + mm(att, p + 'attn_output.weight')
        h = norm(x, p + 'ffn_norm.weight')
        g = mm(h, p + 'ffn_gate.weight')
        x = x + mm(g / (1 + np.exp(-g)) * mm(h, p + 'ffn_up.weight'), p + 'ffn_down.weight')
    x = norm(x, 'output_norm.weight')
    return mm(x, 'output.weight' if 'output.weight' in ts else 'token_embd.weight')


# ---- error measures -------------------------------------------------------------------------
def rel_max(got, want):
    """max |got - want| over all logits, relative to max |want|."""
    return float(np.abs(got - want).max() / np.abs(want).max())


def rel_rms(got, want):
    """RMS(got - want) / RMS(want) over all logits."""
    return float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))


# ---- converter checks (no engine needed) ------------------------------------------------------
def test_gguf_file_matches_hf(case):
    name, _, gguf_path, tokens, want = case
    got = gguf_forward(gguf_path, tokens)
    print(f'\n[{name}] numpy-on-GGUF vs HF: rel_max {rel_max(got, want):.2e}')
    assert rel_max(got, want) < 1e-5
    assert np.array_equal(got.argmax(-1), want.argmax(-1))
