"""Frugal's forward pass vs Hugging Face transformers on random Llama / Mistral / Qwen2 models.

Each case builds a small random model in transformers (seeded, weights drawn with a larger
std than the default so logits are O(1) and errors visible), saves it, converts it with
tools/convert_hf.py and compares logits at every prompt position:

  * a numpy forward pass that reads the GGUF file with GGUF semantics (adjacent-pair RoPE for
    `llama`, NEOX for `qwen2`, rope_freqs divisors) must match HF: this checks the converter
    without the engine;
  * `frugal run --dump-logits` on the F32 file must match HF tightly;
  * after `frugal quantize` to F16 / BF16 / Q8_0 / Q4_0 / Q6_K and the Q5_K_M / Q4_K_M /
    Q3_K_M mixes the error must stay within the bound derived in docs/ACCURACY.md, and the
    greedy next token must not change where the bound is well below the prompt's margin.

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
MIN_MARGIN = 0.5

# Small models covering the families and the layout differences that matter:
# GQA, tied embeddings, Llama-3 RoPE scaling, Mistral, Qwen2 QKV bias + NEOX RoPE.
CASES = {
    'llama': dict(cls='LlamaForCausalLM', hidden=96, layers=3, inter=288, vocab=300),
    'llama_tied': dict(cls='LlamaForCausalLM', hidden=64, layers=2, inter=192, vocab=300,
                       tied=True),
    # head_dim 32, theta 500000: pair 0 has wavelength 2*pi < 16/2 (kept), pair 1 has 14.3,
    # between 16/2 and 16/1 (smoothed), the rest exceed 16 (divided by 8), so every branch of
    # the Llama-3 rule is used; the 32-token prompt runs to twice the original context.
    'llama3_rope': dict(cls='LlamaForCausalLM', hidden=128, layers=2, inter=384, vocab=300,
                        rope_theta=500000.0,
                        rope_scaling={'rope_type': 'llama3', 'factor': 8.0,
                                      'low_freq_factor': 1.0, 'high_freq_factor': 2.0,
                                      'original_max_position_embeddings': 16}),
    'mistral': dict(cls='MistralForCausalLM', hidden=96, layers=2, inter=256, vocab=280),
    'qwen2': dict(cls='Qwen2ForCausalLM', hidden=96, layers=2, inter=288, vocab=320),
    # Rows of whole 256-element super-blocks, so the K-quant schemes really use K-quants (in the
    # cases above they fall back to Q5_0 / Q5_1 / Q8_0 as llama.cpp does).
    'llama256': dict(cls='LlamaForCausalLM', hidden=256, layers=2, inter=512, vocab=300),
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
    """Returns (model_dir, f32 gguf path, tokens, HF logits [T, n_vocab] float64, HF model)."""
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

    # The greedy-token check needs a well-defined winner: take the first seeded prompt whose
    # last-position top-2 margin is at least MIN_MARGIN x RMS(logits) (~7x the Q8_0 noise).
    for seed in range(99, 199):
        tokens = np.random.default_rng(seed).integers(0, case['vocab'], PROMPT_LEN).tolist()
        with torch.no_grad():
            logits = model(torch.tensor([tokens])).logits[0].double().numpy()
        top2 = np.sort(logits[-1])[-2:]
        if top2[1] - top2[0] >= MIN_MARGIN * np.sqrt(np.mean(logits ** 2)):
            break
    gguf_path = os.path.join(root, name + '.f32.gguf')
    convert_hf.convert(model_dir, gguf_path, 'f32')
    return model_dir, gguf_path, tokens, logits, model


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
    """x quantized to 8-bit blocks of 32 along the last axis and back (activation path), as
    the engine's matmul does (kernels/ops_ref.cpp quantize_activations_ref): q = round(x / d)
    with d = amax / 127, multiplied back by d rounded to fp16 (as llama.cpp's Q8_0 blocks
    store it)."""
    shape = x.shape
    b = x.reshape(-1, 32).astype(np.float32)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
    q = np.round(b / np.where(d > 0, d, 1))
    return (q * d.astype(np.float16).astype(np.float32)).reshape(shape)


def _q8_k_roundtrip(x):
    """x in super-blocks of 256 as llama.cpp's Q8_K (the activations of K-quant matmuls):
    iscale = -127 / (the element of largest magnitude), q = min(127, round(iscale x)), q / iscale."""
    shape = x.shape
    b = x.reshape(-1, 256).astype(np.float32)
    m = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)
    iscale = np.where(m != 0, np.float32(-127) / np.where(m != 0, m, 1), 0).astype(np.float32)
    q = np.minimum(127, np.rint(b * iscale))
    return (q / np.where(iscale != 0, iscale, 1)).reshape(shape)


def gguf_forward(path, tokens, quantize_activations=True, model=None):
    """Logits [T, n_vocab] (float64) of the GGUF model at `path`, computed in numpy.

    Matrices stored in a 32-block type see their input rounded to Q8_0 blocks first, K-quant
    matrices to Q8_K super-blocks, as the engine's matmul does (quantize_activations=False turns that off). `model` may pass an
    already read (meta, tensors) pair instead of a path.
    """
    meta, ts = model if model is not None else read_gguf(path)
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
        if quantize_activations and ty in K_TYPES:
            x = _q8_k_roundtrip(x)
        elif quantize_activations and ty in BLOCK_TYPES:
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
    name, _, gguf_path, tokens, want, _ = case
    got = gguf_forward(gguf_path, tokens)
    print(f'\n[{name}] numpy-on-GGUF vs HF: rel_max {rel_max(got, want):.2e}')
    assert rel_max(got, want) < 1e-5
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


# ---- the quantisation error bound (derivation in docs/ACCURACY.md) -----------------------------
QUANT_TYPES = ('f16', 'bf16', 'q8_0', 'q4_0', 'q6_k', 'q5_k_m', 'q4_k_m', 'q3_k_m')
BLOCK_TYPES = ('q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl')  # 32 elements, Q8_0 activations
K_TYPES = ('q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k')                # 256, Q8_K activations
N_PROBE = 32
BOUND_MARGIN = 1.5  # over the first-order prediction; see docs/ACCURACY.md


def _gguf_name(hf_linear, tied):
    """GGUF weight name of an HF nn.Linear / embedding module name."""
    if hf_linear == 'lm_head':
        return 'token_embd.weight' if tied else 'output.weight'
    if hf_linear == 'model.embed_tokens':
        return 'token_embd.weight'
    il = hf_linear.split('.')[2]
    short = {'q_proj': 'attn_q', 'k_proj': 'attn_k', 'v_proj': 'attn_v', 'o_proj': 'attn_output',
             'gate_proj': 'ffn_gate', 'up_proj': 'ffn_up', 'down_proj': 'ffn_down'}
    return f'blk.{il}.{short[hf_linear.split(".")[-1]]}.weight'


def logit_sensitivities(model, tokens, n_probe=N_PROBE, seed=0):
    """Hutchinson estimates of the logits' squared sensitivities.

    Returns (gw2, gx2, xs): gw2[module] [n_out, n_in] ~ sum_k (dL_k/dW_ij)^2 over all logits
    L_k; gx2[module] [T, n_in] ~ sum_k (dL_k/dx_tj)^2 for that matmul's input x; xs[module]
    the input x itself. Modules are HF Linear names plus 'model.embed_tokens'.
    """
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    inputs, xs = {}, {}

    def hook(name):
        def pre(_, args):
            eps = torch.zeros_like(args[0], requires_grad=True)
            inputs[name] = eps
            xs[name] = args[0].detach()[0].double().numpy()
            return (args[0] + eps,)
        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in linears.items()]
    weights = {n: m.weight for n, m in linears.items()}
    weights['model.embed_tokens'] = model.model.embed_tokens.weight
    gw2 = {n: np.zeros(w.shape) for n, w in weights.items()}
    gx2 = {}
    gen = torch.Generator().manual_seed(seed)
    try:
        for _ in range(n_probe):
            model.zero_grad()
            logits = model(torch.tensor([tokens])).logits[0]
            z = torch.randn(logits.shape, generator=gen)
            (logits * z).sum().backward()
            for n, w in weights.items():  # a tied weight's grad sums both uses, as it should
                gw2[n] += w.grad.double().numpy() ** 2 / n_probe
            for n, eps in inputs.items():
                g = eps.grad[0].double().numpy() ** 2 / n_probe
                gx2[n] = gx2.get(n, 0) + g
    finally:
        for h in handles:
            h.remove()
        model.zero_grad()
    return gw2, gx2, xs


def _f16_at(blocks, offset):
    return blocks[..., offset:offset + 2].copy().view(np.float16)[..., 0].astype(np.float64)


IQ4NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113])
# Half the distance to the two neighbouring table entries: the width of the interval that
# rounds to each entry (the end entries: their one neighbour's distance).
IQ4NL_GAPS = np.diff(np.concatenate([[2 * IQ4NL_VALUES[0] - IQ4NL_VALUES[1]], IQ4NL_VALUES,
                                     [2 * IQ4NL_VALUES[-1] - IQ4NL_VALUES[-2]]]))
IQ4NL_WIDTH = (IQ4NL_GAPS[:-1] + IQ4NL_GAPS[1:]) / 2


def _element_steps(t):
    """Rounding step of every element [n_rows, n_cols] of a block-quantized reader tensor, as
    stored: the block's d (32-block types), the sub-block's d * scale (K-quants, ggml_type.h),
    the width of the table interval the element fell in times d (IQ4_NL)."""
    ty = t.tensor_type.name
    bb = {'Q8_0': 34, 'Q4_0': 18, 'Q4_1': 20, 'Q5_0': 22, 'Q5_1': 24, 'IQ4_NL': 18, 'Q2_K': 84,
          'Q3_K': 110, 'Q4_K': 144, 'Q5_K': 176, 'Q6_K': 210}[ty]
    raw = np.asarray(t.data, dtype=np.uint8)
    rows = raw.reshape(-1, raw.shape[-1])
    blocks = rows.reshape(rows.shape[0], -1, bb)
    if ty == 'IQ4_NL':
        idx = np.concatenate([blocks[..., 2:] & 15, blocks[..., 2:] >> 4], axis=-1)
        return (np.abs(_f16_at(blocks, 0))[..., None] * IQ4NL_WIDTH[idx]).reshape(rows.shape[0], -1)
    if bb < 84:  # 32-block types: d at byte 0
        return np.repeat(np.abs(_f16_at(blocks, 0)), 32, axis=1)
    if ty == 'Q2_K':
        sub = _f16_at(blocks, 80)[..., None] * (blocks[..., :16] & 15)
    elif ty == 'Q3_K':
        s = blocks[..., 96:108].astype(np.int64)
        low = np.concatenate([s[..., :8] & 15, s[..., :8] >> 4], axis=-1)
        high = (s[..., 8 + np.arange(16) % 4] >> (2 * (np.arange(16) // 4))) & 3
        sub = _f16_at(blocks, 108)[..., None] * ((low | high << 4) - 32)
    elif ty == 'Q6_K':
        sub = _f16_at(blocks, 208)[..., None] * blocks[..., 192:208].view(np.int8)
    else:  # Q4_K, Q5_K: 6-bit scales of 8 sub-blocks of 32
        s = blocks[..., 4:16].astype(np.int64)
        sc = np.concatenate([s[..., :4] & 63, (s[..., 8:] & 15) | (s[..., :4] >> 6) << 4], -1)
        return np.repeat(np.abs(_f16_at(blocks, 0)[..., None] * sc), 32, axis=-1).reshape(
            rows.shape[0], -1)
    return np.repeat(np.abs(sub), 16, axis=-1).reshape(rows.shape[0], -1)


def _rounding_var(w, ty):
    """Per-element variance of round-to-nearest error when float32 `w` is stored as `ty`."""
    mant_bits = {'f16': 10, 'bf16': 7}[ty]
    exp = np.floor(np.log2(np.maximum(np.abs(w), 1e-30)))
    if ty == 'f16':
        exp = np.maximum(exp, -14)  # subnormal spacing
    ulp = 2.0 ** (exp - mant_bits)
    return np.where(w == 0, 0.0, ulp ** 2 / 12)


def _to_hf_rows(a, n_head):
    """Inverse of convert_hf.unpermute_rows: GGUF llama row order -> HF row order."""
    rows, n_in = a.shape
    return a.reshape(n_head, rows // n_head // 2, 2, n_in).swapaxes(1, 2).reshape(rows, n_in)


def predicted_error_rms(sens, f32_meta, f32_ts, quant_path):
    """First-order RMS error of the logits caused by storing the model as in `quant_path`.

    Each weight element's error is modelled as independent, zero-mean, uniform over one
    quantisation step (variance step^2/12; step = the block's stored d for Q8_0/Q4_0, the ulp
    for F16/BF16), and so is each activation element fed to a Q8_0/Q4_0 matmul (step =
    block amax/127). Variances are weighted by the squared sensitivities and summed.
    """
    gw2, gx2, xs = sens
    arch = f32_meta['arch']
    r = gguf.GGUFReader(quant_path)
    qtensors = {t.name: t for t in r.tensors}
    tied = 'output.weight' not in f32_ts
    heads = {'attn_q': f32_meta['attention.head_count'],
             'attn_k': f32_meta['attention.head_count_kv']}
    total = 0.0
    for module, g2 in gw2.items():
        gname = _gguf_name(module, tied)
        if module == 'lm_head' and tied:
            continue  # counted once, through model.embed_tokens (its grad covers both uses)
        t = qtensors[gname]
        ty = t.tensor_type.name.lower()
        w = f32_ts[gname][0].astype(np.float64)
        if ty in BLOCK_TYPES or ty in K_TYPES:
            var_w = _element_steps(t) ** 2 / 12
        elif ty in ('f16', 'bf16'):
            var_w = _rounding_var(w, ty)
        else:
            var_w = np.zeros_like(w)
        short = gname.split('.')[-2]
        if arch == 'llama' and short in heads:
            var_w = _to_hf_rows(var_w, heads[short])
        total += float((var_w * g2).sum())
    for module, g2 in gx2.items():
        gname = _gguf_name(module, tied)
        ty = qtensors[gname].tensor_type.name.lower()
        if ty not in BLOCK_TYPES and ty not in K_TYPES:
            continue
        x = xs[module]
        block = 256 if ty in K_TYPES else 32
        amax = np.abs(x.reshape(x.shape[0], -1, block)).max(-1)
        var_x = np.repeat((amax / 127) ** 2 / 12, block, axis=1)
        total += float((var_x * g2).sum())
    n_logits = len(xs['lm_head']) * f32_ts['token_embd.weight'][0].shape[0]
    return math.sqrt(total / n_logits)


# ---- the engine -------------------------------------------------------------------------------
F32_TOL = 1e-4        # max |Δ| / max |logit|, engine F32 vs HF; see docs/ACCURACY.md
SAME_FILE_TOL = 0.25  # engine vs numpy on the same quantized file, as a fraction of the bound


def run_engine(frugal_bin, model_path, tokens, out_path):
    """Logits [T, n_vocab] float64 from `frugal run --dump-logits` on the prompt `tokens`."""
    # An f32 KV cache: the default f16 one rounds K and V (2^-11), which the float32 reference
    # and the numpy twin do not.
    cmd = [frugal_bin, 'run', '-m', str(model_path), '--tokens', ' '.join(map(str, tokens)),
           '--dump-logits', str(out_path), '-n', '0', '--kv-type', 'f32']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f'{" ".join(cmd)} failed ({res.returncode}):\n{res.stderr}'
    logits = np.fromfile(out_path, dtype='<f4').astype(np.float64)
    assert logits.size % len(tokens) == 0, f'{logits.size} floats for {len(tokens)} tokens'
    return logits.reshape(len(tokens), -1)


def engine_quantize(frugal_bin, src, dst, qtype):
    cmd = [frugal_bin, 'quantize', str(src), str(dst), qtype]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f'{" ".join(cmd)} failed ({res.returncode}):\n{res.stderr}'


_sens = {}


def _sensitivities(name, model, tokens):
    if name not in _sens:
        _sens[name] = logit_sensitivities(model, tokens)
    return _sens[name]


def test_engine_f32_matches_hf(case, frugal_bin, tmp_path):
    name, _, gguf_path, tokens, want, _ = case
    got = run_engine(frugal_bin, gguf_path, tokens, tmp_path / 'logits.bin')
    assert got.shape == want.shape
    err = rel_max(got, want)
    print(f'\n[{name}] engine f32 vs HF: rel_max {err:.2e} rel_rms {rel_rms(got, want):.2e}')
    assert err < F32_TOL
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize('qtype', QUANT_TYPES)
def test_engine_quantized_within_derived_bound(case, qtype, frugal_bin, tmp_path):
    name, _, gguf_path, tokens, want, model = case
    qpath = tmp_path / f'{name}.{qtype}.gguf'
    engine_quantize(frugal_bin, gguf_path, qpath, qtype)
    got = run_engine(frugal_bin, qpath, tokens, tmp_path / 'logits.bin')
    assert got.shape == want.shape

    meta, f32_ts = read_gguf(gguf_path)
    scale = math.sqrt(np.mean(want ** 2))
    predicted = predicted_error_rms(_sensitivities(name, model, tokens), meta, f32_ts,
                                    str(qpath)) / scale
    bound = BOUND_MARGIN * predicted + F32_TOL
    measured = rel_rms(got, want)
    # The same quantized weights in numpy (float64, Q8_0 activations like the engine).
    same_file = gguf_forward(None, tokens, model=(meta, read_gguf(str(qpath))[1]))
    kernel_err = rel_rms(got, same_file)
    print(f'\n[{name}] {qtype:5s} vs HF: rel_rms {measured:.2e} (predicted {predicted:.2e}, '
          f'bound {bound:.2e}), rel_max {rel_max(got, want):.2e}; vs numpy on the same file '
          f'{kernel_err:.2e}')
    assert measured <= bound
    assert kernel_err <= SAME_FILE_TOL * predicted + F32_TOL
    # The prompt's top-2 margin is >= MIN_MARGIN RMS(L); the difference of two logits has
    # sigma ~ sqrt(2) predicted RMS(L): the winner must stay where the margin is >= 5 sigma
    # (F16, BF16, Q8_0, Q6_K here), not for the coarser types.
    if math.sqrt(2) * predicted * 5 <= MIN_MARGIN:
        assert got[-1].argmax() == want[-1].argmax()


# ---- converter command line and tokenizer export ----------------------------------------------
def _strings(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode('utf-8') for i in f.data]


def _ints(r, key):
    f = r.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def test_converter_cli_exports_bpe_tokenizer_and_types(tmp_path):
    tokenizers = pytest.importorskip('tokenizers')
    _, _, _, _, model = _built.get('llama_tied') or _build_case('llama_tied', str(tmp_path))
    model_dir = tmp_path / 'with_tok'
    model.save_pretrained(model_dir, safe_serialization=False)  # pytorch_model.bin path
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=290, special_tokens=['<|end|>'],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(['the cat sat on the mat', 'a cheap model answers first'] * 20,
                            trainer)
    tok.save(str(model_dir / 'tokenizer.json'))
    out = tmp_path / 'tok.gguf'
    script = os.path.join(os.path.dirname(convert_hf.__file__), 'convert_hf.py')
    res = subprocess.run([os.sys.executable, script, str(model_dir), '--outfile', str(out),
                          '--outtype', 'f16'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr

    r = gguf.GGUFReader(str(out))
    assert _field(r, 'tokenizer.ggml.model') == 'gpt2'
    assert _field(r, 'tokenizer.ggml.pre') == 'gpt-2'
    tokens = _strings(r, 'tokenizer.ggml.tokens')
    assert len(tokens) == 300  # padded to the model's n_vocab
    vocab = tok.get_vocab()
    assert all(tokens[i] == piece for piece, i in vocab.items())
    types = _ints(r, 'tokenizer.ggml.token_type')
    assert types[vocab['<|end|>']] == convert_hf.TOKEN_CONTROL
    assert types[-1] == convert_hf.TOKEN_UNUSED
    assert len(_strings(r, 'tokenizer.ggml.merges')) == len(
        json.load(open(model_dir / 'tokenizer.json'))['model']['merges'])
    by_name = {t.name: t.tensor_type.name for t in r.tensors}
    assert by_name['blk.0.attn_q.weight'] == 'F16' and by_name['blk.0.attn_norm.weight'] == 'F32'
    assert 'output.weight' not in by_name  # tied embeddings


def test_converter_placeholder_vocab_and_errors(tmp_path):
    name = 'qwen2'
    model_dir = (_built.get(name) or _build_case(name, str(tmp_path)))[0]
    out = tmp_path / 'p.gguf'
    convert_hf.convert(model_dir, str(out), 'bf16')
    r = gguf.GGUFReader(str(out))
    tokens = _strings(r, 'tokenizer.ggml.tokens')
    types = _ints(r, 'tokenizer.ggml.token_type')
    assert len(tokens) == CASES[name]['vocab']
    assert tokens[:3] == ['<unk>', '<s>', '</s>'] and tokens[3 + 0x41] == '<0x41>'
    assert types[3 + 0x41] == convert_hf.TOKEN_BYTE and types[1] == convert_hf.TOKEN_CONTROL
    assert len(set(tokens)) == len(tokens)
    assert {t.name for t in r.tensors} >= {'blk.1.attn_q.bias', 'blk.1.attn_k.bias',
                                           'blk.1.attn_v.bias', 'output.weight'}
    with pytest.raises(convert_hf.ConvertError):
        convert_hf.convert(str(tmp_path), str(tmp_path / 'x.gguf'))  # no config.json
    rc = convert_hf.main([str(tmp_path), '--outfile', str(tmp_path / 'x.gguf')])
    assert rc == 1
