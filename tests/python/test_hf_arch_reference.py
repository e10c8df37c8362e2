"""Qwen3, Gemma 2, Gemma 3 and Phi-3 against Hugging Face transformers.

The reference logits come from `transformers` 4.51 on small random-initialised models, stored
with their checkpoints in tests/fixtures/hf_arch/ (tests/fixtures/hf_arch/make_fixtures.py
made them; the suite's transformers 4.40 has none of these classes). Each case is converted
with tools/convert_hf.py and checked as tests/python/test_hf_reference.py checks llama/qwen2:

  * a float64 torch forward pass that reads the GGUF file with GGUF semantics (norm weights
    stored as 1 + w for Gemma, fused Phi-3 matrices, NEOX RoPE, sliding windows, soft-caps)
    must match HF: this checks the converter without the engine;
  * `frugal run --dump-logits` on the F32 file must match HF within F32_TOL;
  * after `frugal quantize` to F16 / BF16 / Q8_0 the error must stay within the bound derived
    in docs/ACCURACY.md (sensitivities from the same torch pass, which equals HF's model to
    1e-5), and the engine must agree with the torch pass on the same quantized file.

Bad input: files missing one of these families' own tensors, or with one mis-shaped, are
refused naming the tensor; LongRoPE Phi-3 files are refused saying so.
"""
import json
import math
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip('torch')
gguf = pytest.importorskip('gguf')
pytest.importorskip('safetensors')

import convert_hf  # noqa: E402  (conftest puts tools/ on sys.path)
import test_hf_reference as hfref  # noqa: E402  (the shared error measures and bound)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'fixtures', 'hf_arch')
CASES = ('gemma2', 'gemma3', 'phi3', 'qwen3')
QUANT_TYPES = ('f16', 'bf16', 'q8_0')


# ---- fixtures ------------------------------------------------------------------------------
def _load_case(name, root):
    """(model_dir, f32 gguf path, tokens, HF logits [T, n_vocab] float64)."""
    model_dir = os.path.join(FIXTURES, name)
    with open(os.path.join(model_dir, 'reference.json')) as f:
        tokens = json.load(f)['tokens']
    want = np.load(os.path.join(model_dir, 'logits.npy')).astype(np.float64)
    path = os.path.join(root, name + '.f32.gguf')
    convert_hf.convert(model_dir, path, 'f32')
    return model_dir, path, tokens, want


_built = {}


@pytest.fixture(params=CASES, scope='module')
def case(request, tmp_path_factory):
    name = request.param
    if name not in _built:
        _built[name] = _load_case(name, str(tmp_path_factory.mktemp('arch_' + name)))
    return (name,) + _built[name]


def read_gguf(path):
    """(every scalar metadata value by key, {name: (float32 array, ggml type name)})."""
    r = gguf.GGUFReader(path)
    meta = {}
    for key, f in r.fields.items():
        if len(f.data) == 1 and not key.startswith('tokenizer.'):
            meta[key] = hfref._field(r, key)
    _, tensors = hfref.read_gguf(path)
    return meta, tensors


# ---- a torch forward pass with GGUF semantics ----------------------------------------------
class Spec:
    """What the file says, read the way Hugging Face's model computes it."""

    def __init__(self, meta):
        arch = meta['general.architecture']
        a = arch + '.'
        self.arch = arch
        self.n_layer = meta[a + 'block_count']
        self.n_embd = meta[a + 'embedding_length']
        self.n_head = meta[a + 'attention.head_count']
        self.n_head_kv = meta[a + 'attention.head_count_kv']
        self.hd = meta.get(a + 'attention.key_length', self.n_embd // self.n_head)
        self.eps = meta[a + 'attention.layer_norm_rms_epsilon']
        self.gemma = arch in ('gemma2', 'gemma3')
        self.scale = meta.get(a + 'attention.scale', self.hd ** -0.5)
        self.attn_cap = meta.get(a + 'attn_logit_softcapping', 50.0 if arch == 'gemma2' else 0.0)
        self.final_cap = meta.get(a + 'final_logit_softcapping', 30.0 if arch == 'gemma2' else 0.0)
        self.window = meta.get(a + 'attention.sliding_window', 0)
        self.pattern = {'gemma2': 2, 'gemma3': 6, 'phi3': 1}.get(arch, 0)
        base = meta[a + 'rope.freq_base']
        factor = meta.get(a + 'rope.scaling.factor', 1.0)
        exps = torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd
        self.inv_freq = base ** -exps / factor
        # Gemma 3's local layers: base 10000, no scaling (HF's rotary_emb_local).
        self.inv_freq_local = 10000.0 ** -exps if arch == 'gemma3' else self.inv_freq

    def local(self, il):
        return self.window > 0 and (self.pattern <= 1 or il % self.pattern < self.pattern - 1)


def _q8_0_roundtrip(x):
    """The engine's Q8_0 activation rounding (float32 arithmetic, fp16 scale), no gradient."""
    b = x.detach().reshape(-1, 32).float()
    amax = b.abs().max(dim=1, keepdim=True).values
    d = amax / 127
    q = torch.round(b / torch.where(d > 0, d, torch.ones_like(d)))
    return (q * d.half().float()).reshape(x.shape).double()


def twin_forward(spec, ts, tokens, quantize_activations=True, probe=None):
    """Logits [T, n_vocab] (float64 torch) of the model with tensors `ts` {name: (tensor, type)}.

    Matrices stored in a 32-block type see their input rounded as the engine's matmul does.
    `probe`, a dict, receives for every matmul an all-zero tensor added to its input (its
    gradient is the logits' gradient with respect to that input) and the input itself.
    """
    T = len(tokens)

    def mm(x, name):
        w, ty = ts[name]
        if probe is not None:
            eps = torch.zeros_like(x, requires_grad=True)
            probe[name] = (eps, x.detach().numpy())
            x = x + eps
        if quantize_activations and ty in hfref.BLOCK_TYPES:
            x = _q8_0_roundtrip(x)
        return x @ w.T

    def norm(x, name):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + spec.eps) * ts[name][0]

    def rope(x, inv_freq):  # NEOX halves: every architecture here
        angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
        cos, sin = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
        a, b = x[..., :spec.hd // 2], x[..., spec.hd // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)

    def cap(x, c):
        return c * torch.tanh(x / c) if c > 0 else x

    nq, nkv, hd = spec.n_head * spec.hd, spec.n_head_kv * spec.hd, spec.hd
    x = ts['token_embd.weight'][0][tokens]
    if spec.gemma:
        x = x * math.sqrt(spec.n_embd)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    for il in range(spec.n_layer):
        p = f'blk.{il}.'
        h = norm(x, p + 'attn_norm.weight')
        if spec.arch == 'phi3':
            qkv = mm(h, p + 'attn_qkv.weight')
            q, k, v = qkv[:, :nq], qkv[:, nq:nq + nkv], qkv[:, nq + nkv:]
        else:
            q, k, v = (mm(h, p + n) for n in ('attn_q.weight', 'attn_k.weight', 'attn_v.weight'))
        q, k, v = q.reshape(T, -1, hd), k.reshape(T, -1, hd), v.reshape(T, -1, hd)
        if p + 'attn_q_norm.weight' in ts:
            q, k = norm(q, p + 'attn_q_norm.weight'), norm(k, p + 'attn_k_norm.weight')
        freqs = spec.inv_freq_local if spec.local(il) else spec.inv_freq
        q, k = rope(q, freqs), rope(k, freqs)
        rep = spec.n_head // spec.n_head_kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = cap(torch.einsum('qhd,khd->hqk', q, k) * spec.scale, spec.attn_cap)
        masked = (j > i) | ((i - j >= spec.window) if spec.local(il) else torch.zeros_like(j > i))
        s = torch.softmax(s.masked_fill(masked, -math.inf), -1)
        o = mm(torch.einsum('hqk,khd->qhd', s, v).reshape(T, nq), p + 'attn_output.weight')
        if spec.gemma:
            o = norm(o, p + 'post_attention_norm.weight')
        x = x + o
        h = norm(x, p + 'ffn_norm.weight')
        if spec.arch == 'phi3':
            gu = mm(h, p + 'ffn_up.weight')
            g, u = gu[:, :gu.shape[1] // 2], gu[:, gu.shape[1] // 2:]
        else:
            g, u = mm(h, p + 'ffn_gate.weight'), mm(h, p + 'ffn_up.weight')
        if spec.gemma:  # gelu_pytorch_tanh
            act = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
        else:
            act = g * torch.sigmoid(g)
        d = mm(act * u, p + 'ffn_down.weight')
        if spec.gemma:
            d = norm(d, p + 'post_ffw_norm.weight')
        x = x + d
    x = norm(x, 'output_norm.weight')
    out = 'output.weight' if 'output.weight' in ts else 'token_embd.weight'
    return cap(mm(x, out), spec.final_cap)


def as_torch(tensors, requires_grad=False):
    out = {}
    for name, (a, ty) in tensors.items():
        t = torch.from_numpy(a.astype(np.float64))
        out[name] = (t.requires_grad_(requires_grad and a.ndim == 2), ty)
    return out


def gguf_logits(path_or_model, tokens, quantize_activations=True):
    meta, tensors = path_or_model if isinstance(path_or_model, tuple) else read_gguf(path_or_model)
    with torch.no_grad():
        return twin_forward(Spec(meta), as_torch(tensors), tokens,
                            quantize_activations).numpy()


def test_gguf_file_matches_hf(case):
    name, _, path, tokens, want = case
    got = gguf_logits(path, tokens)
    print(f'\n[{name}] torch-on-GGUF vs HF: rel_max {hfref.rel_max(got, want):.2e}')
    assert hfref.rel_max(got, want) < 1e-5
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


def test_the_features_change_the_logits(case):
    """The fixtures use their families' features where they matter: without the sliding
    window, the soft-caps or Gemma 3's local RoPE base, the torch pass leaves HF's logits."""
    name, _, path, tokens, want = case
    meta, tensors = read_gguf(path)
    spec = Spec(meta)
    variants = {}
    if spec.window:
        variants['no window'] = dict(window=0)
    if spec.attn_cap:
        variants['no attention cap'] = dict(attn_cap=0.0)
    if spec.final_cap:
        variants['no final cap'] = dict(final_cap=0.0)
    if spec.arch == 'gemma3':
        variants['global RoPE on local layers'] = dict(inv_freq_local=spec.inv_freq)
    if spec.scale != spec.hd ** -0.5:
        variants['1/sqrt(head_dim)'] = dict(scale=spec.hd ** -0.5)
    assert variants or name == 'qwen3'
    for what, change in variants.items():
        s = Spec(meta)
        s.__dict__.update(change)
        with torch.no_grad():
            got = twin_forward(s, as_torch(tensors), tokens, False).numpy()
        assert hfref.rel_max(got, want) > 1e-3, f'{name}: {what} changes nothing'


def test_converter_writes_llama_cpp_names_and_keys(case):
    name, model_dir, path, _, _ = case
    meta, tensors = read_gguf(path)
    a = name + '.'
    assert meta['general.architecture'] == name
    blk = {n[len('blk.0.'):] for n in tensors if n.startswith('blk.0.')}
    base = {'attn_norm.weight', 'attn_output.weight', 'ffn_norm.weight', 'ffn_down.weight'}
    separate = {'attn_q.weight', 'attn_k.weight', 'attn_v.weight', 'ffn_gate.weight',
                'ffn_up.weight'}
    expected = {
        'qwen3': base | separate | {'attn_q_norm.weight', 'attn_k_norm.weight'},
        'gemma2': base | separate | {'post_attention_norm.weight', 'post_ffw_norm.weight'},
        'gemma3': base | separate | {'post_attention_norm.weight', 'post_ffw_norm.weight',
                                     'attn_q_norm.weight', 'attn_k_norm.weight'},
        'phi3': base | {'attn_qkv.weight', 'ffn_up.weight'},
    }[name]
    assert blk == expected
    cfg = json.load(open(os.path.join(model_dir, 'config.json')))
    if name == 'phi3':
        n_embd, n_ff, hd = cfg['hidden_size'], cfg['intermediate_size'], 96 // 4
        assert tensors['blk.0.attn_qkv.weight'][0].shape == (n_embd + 2 * 2 * hd, n_embd)
        assert tensors['blk.0.ffn_up.weight'][0].shape == (2 * n_ff, n_embd)
        assert meta[a + 'attention.sliding_window'] == 12
        assert meta[a + 'rope.dimension_count'] == hd
    else:
        assert meta[a + 'attention.key_length'] == cfg['head_dim']
    assert ('output.weight' in tensors) == (name in ('qwen3', 'phi3'))
    if name.startswith('gemma'):
        # Norms stored as 1 + w, as llama.cpp's converter does (Gemma's RMSNorm is x * (1 + w)).
        from safetensors.numpy import load_file
        sd = load_file(os.path.join(model_dir, 'model.safetensors'))
        hf = sd['model.layers.1.post_feedforward_layernorm.weight'].astype(np.float32)
        assert np.array_equal(tensors['blk.1.post_ffw_norm.weight'][0], hf + 1)
        assert meta[a + 'attention.sliding_window'] == 8
    if name == 'gemma2':
        assert meta[a + 'attn_logit_softcapping'] == 5.0
        assert meta[a + 'final_logit_softcapping'] == 3.0
        assert meta[a + 'attention.scale'] == pytest.approx(24 ** -0.5)
    if name == 'gemma3':
        assert meta[a + 'rope.scaling.type'] == 'linear' and meta[a + 'rope.scaling.factor'] == 4
        assert a + 'attention.scale' not in meta  # query_pre_attn_scalar == head_dim


# ---- the engine ------------------------------------------------------------------------------
def test_engine_f32_matches_hf(case, frugal_bin, tmp_path):
    name, _, path, tokens, want = case
    got = hfref.run_engine(frugal_bin, path, tokens, tmp_path / 'logits.bin')
    assert got.shape == want.shape
    err = hfref.rel_max(got, want)
    print(f'\n[{name}] engine f32 vs HF: rel_max {err:.2e} rel_rms {hfref.rel_rms(got, want):.2e}')
    assert err < hfref.F32_TOL
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


def test_engine_f16_kv_cache_stays_close(case, frugal_bin, tmp_path):
    """The default F16 cache rounds K and V to 11 bits: well under the Q8_0 error."""
    name, _, path, tokens, want = case
    out = tmp_path / 'logits.bin'
    cmd = [frugal_bin, 'run', '-m', str(path), '--tokens', ' '.join(map(str, tokens)),
           '--dump-logits', str(out), '-n', '0']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = np.fromfile(out, dtype='<f4').astype(np.float64).reshape(len(tokens), -1)
    err = hfref.rel_rms(got, want)
    print(f'\n[{name}] engine f32 weights, f16 KV vs HF: rel_rms {err:.2e}')
    assert err < 5e-3


_sens = {}


def sensitivities(name, meta, tensors, tokens, n_probe=hfref.N_PROBE, seed=0):
    """Hutchinson estimates as test_hf_reference.logit_sensitivities, through the torch pass:
    gw2[name] [n_out, n_in] ~ sum_k (dL_k/dW)^2 per GGUF matrix, gx2[name] [T, n_in] for its
    input, xs[name] the input."""
    if name in _sens:
        return _sens[name]
    spec, ts = Spec(meta), as_torch(tensors, requires_grad=True)
    mats = {n: t for n, (t, _) in ts.items() if t.requires_grad}
    gw2 = {n: np.zeros(tuple(t.shape)) for n, t in mats.items()}
    gx2, xs = {}, {}
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_probe):
        probe = {}
        for t in mats.values():
            t.grad = None
        logits = twin_forward(spec, ts, tokens, quantize_activations=False, probe=probe)
        (logits * torch.randn(logits.shape, generator=gen, dtype=torch.float64)).sum().backward()
        for n, t in mats.items():
            gw2[n] += t.grad.numpy() ** 2 / n_probe
        for n, (eps, x) in probe.items():
            gx2[n] = gx2.get(n, 0) + eps.grad.numpy() ** 2 / n_probe
            xs[n] = x
    _sens[name] = (gw2, gx2, xs)
    return _sens[name]


def predicted_error_rms(sens, f32_ts, quant_path):
    """test_hf_reference.predicted_error_rms with GGUF-named sensitivities (no row mapping)."""
    gw2, gx2, xs = sens
    qtensors = {t.name: t for t in gguf.GGUFReader(quant_path).tensors}
    total = 0.0
    for name, g2 in gw2.items():
        t = qtensors[name]
        ty = t.tensor_type.name.lower()
        if ty in hfref.BLOCK_TYPES or ty in hfref.K_TYPES:
            var_w = hfref._element_steps(t) ** 2 / 12
        elif ty in ('f16', 'bf16'):
            var_w = hfref._rounding_var(f32_ts[name][0].astype(np.float64), ty)
        else:
            var_w = 0.0
        total += float((var_w * g2).sum())
    for name, g2 in gx2.items():
        if qtensors[name].tensor_type.name.lower() not in hfref.BLOCK_TYPES:
            continue  # F16 / BF16 matmuls take float activations
        x = xs[name]
        amax = np.abs(x.reshape(x.shape[0], -1, 32)).max(-1)
        total += float((np.repeat((amax / 127) ** 2 / 12, 32, axis=1) * g2).sum())
    n_logits = xs['output.weight' if 'output.weight' in xs else 'token_embd.weight'].shape[0] * \
        f32_ts['token_embd.weight'][0].shape[0]
    return math.sqrt(total / n_logits)


@pytest.mark.parametrize('qtype', QUANT_TYPES)
def test_engine_quantized_within_derived_bound(case, qtype, frugal_bin, tmp_path):
    name, _, path, tokens, want = case
    qpath = tmp_path / f'{name}.{qtype}.gguf'
    hfref.engine_quantize(frugal_bin, path, qpath, qtype)
    got = hfref.run_engine(frugal_bin, qpath, tokens, tmp_path / 'logits.bin')
    meta, f32_ts = read_gguf(path)
    scale = math.sqrt(np.mean(want ** 2))
    predicted = predicted_error_rms(sensitivities(name, meta, f32_ts, tokens), f32_ts,
                                    str(qpath)) / scale
    bound = hfref.BOUND_MARGIN * predicted + hfref.F32_TOL
    measured = hfref.rel_rms(got, want)
    same_file = gguf_logits(read_gguf(str(qpath)), tokens)
    kernel_err = hfref.rel_rms(got, same_file)
    print(f'\n[{name}] {qtype:5s} vs HF: rel_rms {measured:.2e} (predicted {predicted:.2e}, '
          f'bound {bound:.2e}), rel_max {hfref.rel_max(got, want):.2e}; vs torch on the same '
          f'file {kernel_err:.2e}')
    assert measured <= bound
    assert kernel_err <= hfref.SAME_FILE_TOL * predicted + hfref.F32_TOL
    if math.sqrt(2) * predicted * 5 <= hfref.MIN_MARGIN:
        assert got[-1].argmax() == want[-1].argmax()


# ---- bad input ------------------------------------------------------------------------------
def _convert_with(monkeypatch, name, out, edit):
    """Converts fixture `name` with `edit` applied to the (GGUF name, array, is_matrix) list."""
    real = convert_hf._direct_tensors
    monkeypatch.setattr(convert_hf, '_direct_tensors', lambda *a: edit(real(*a)))
    convert_hf.convert(os.path.join(FIXTURES, name), str(out), 'f32')
    monkeypatch.setattr(convert_hf, '_direct_tensors', real)


def _run_fails(frugal_bin, path):
    res = subprocess.run([frugal_bin, 'run', '-m', str(path), '--tokens', '1 2 3', '-n', '1'],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout
    assert 'Segmentation' not in res.stderr and 'Abort' not in res.stderr
    return res.stderr


@pytest.mark.parametrize('name,tensor,change,message', [
    ('gemma2', 'blk.1.post_ffw_norm.weight', 'drop', 'tensor blk.1.post_ffw_norm.weight is missing'),
    ('gemma2', 'blk.0.post_attention_norm.weight', 'drop',
     'tensor blk.0.post_attention_norm.weight is missing'),
    ('gemma3', 'blk.6.attn_q_norm.weight', 'drop', 'tensor blk.6.attn_q_norm.weight is missing'),
    ('qwen3', 'blk.1.attn_k_norm.weight', 'halve', 'tensor blk.1.attn_k_norm.weight has shape [16]'),
    ('phi3', 'blk.0.attn_qkv.weight', 'halve', 'tensor blk.0.attn_qkv.weight has shape'),
    ('phi3', 'blk.1.ffn_up.weight', 'halve', 'tensor blk.1.ffn_up.weight has shape'),
])
def test_missing_or_misshaped_family_tensors_are_refused_by_name(
        name, tensor, change, message, frugal_bin, tmp_path, monkeypatch):
    def edit(tensors):
        out = []
        for n, a, is_matrix in tensors:
            if n == tensor and change == 'drop':
                continue
            if n == tensor and change == 'halve':
                a = a[:a.shape[0] // 2]
            out.append((n, a, is_matrix))
        return out
    path = tmp_path / 'bad.gguf'
    _convert_with(monkeypatch, name, path, edit)
    assert message in _run_fails(frugal_bin, path)


def test_longrope_phi3_is_refused_clearly(frugal_bin, tmp_path, monkeypatch):
    factors = np.ones(12, np.float32)
    path = tmp_path / 'longrope.gguf'
    _convert_with(monkeypatch, 'phi3', path, lambda t: t + [
        ('rope_factors_long.weight', factors, False), ('rope_factors_short.weight', factors, False)])
    err = _run_fails(frugal_bin, path)
    assert 'LongRoPE' in err and 'Phi-3-mini-4k' in err
    with pytest.raises(convert_hf.ConvertError, match='LongRoPE'):
        raw = json.load(open(os.path.join(FIXTURES, 'phi3', 'config.json')))
        raw['rope_scaling'] = {'type': 'longrope', 'long_factor': [1.0], 'short_factor': [1.0]}
        convert_hf._direct_metadata('phi3', convert_hf._hparams(raw, 'phi3'))


@pytest.mark.parametrize('name,change,message', [
    ('gemma3', {'sliding_window_pattern': 4}, 'pattern'),
    ('gemma3', {'rope_local_base_freq': 20000.0}, 'local RoPE base'),
    ('gemma2', {'layer_types': ['full_attention'] * 3}, 'layer pattern'),
    ('gemma2', {'hidden_activation': 'gelu'}, 'gelu_pytorch_tanh'),
    ('phi3', {'partial_rotary_factor': 0.75}, 'partial rotary'),
])
def test_converter_refuses_what_the_format_cannot_carry(name, change, message):
    raw = json.load(open(os.path.join(FIXTURES, name, 'config.json')))
    raw.update(change)
    with pytest.raises(convert_hf.ConvertError, match=message):
        convert_hf._direct_metadata(name, convert_hf._hparams(raw, name))


def test_unknown_architectures_keep_the_clear_refusal(frugal_bin, tmp_path, monkeypatch):
    path = tmp_path / 'olmo.gguf'
    _convert_with(monkeypatch, 'qwen3', path, lambda t: t)
    data = bytearray(path.read_bytes())
    i = data.find(b'qwen3')  # general.architecture's value comes first
    data[i:i + 5] = b'olmo2'
    path.write_bytes(bytes(data))
    err = _run_fails(frugal_bin, path)
    assert "unsupported architecture 'olmo2'" in err and 'gemma3' in err


# ---- tokenizers of these families ------------------------------------------------------------
def test_qwen3_byte_level_bpe_is_written_as_qwen2_pre_and_tokenizes_as_hf(frugal_bin, tmp_path):
    """Qwen3 ships Qwen2's tokenizer: byte-level BPE behind Qwen2's split regex, which
    llama.cpp names tokenizer.ggml.pre = "qwen2"; Frugal's tokenizer must then split and merge
    as Hugging Face's does (contractions, single digits, punctuation runs, newlines)."""
    tokenizers = pytest.importorskip('tokenizers')
    import shutil
    model_dir = tmp_path / 'qwen3_tok'
    shutil.copytree(os.path.join(FIXTURES, 'qwen3'), model_dir)
    qwen2_split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                   r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Split(tokenizers.Regex(qwen2_split), behavior='isolated'),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=298, special_tokens=['<|endoftext|>', '<|im_end|>'],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["I'll say it's 2024: the model's answer.\n\nOK!!"] * 30, trainer)
    tok.save(str(model_dir / 'tokenizer.json'))
    out = tmp_path / 'qwen3_tok.gguf'
    convert_hf.convert(str(model_dir), str(out), 'f32')
    r = gguf.GGUFReader(str(out))
    assert hfref._field(r, 'tokenizer.ggml.model') == 'gpt2'
    assert hfref._field(r, 'tokenizer.ggml.pre') == 'qwen2'
    for text in ["I'LL say IT'S 12345: the model's answer.\n\n\nOK!!  ", 'naïve café ≠ 3.14']:
        res = subprocess.run([frugal_bin, 'tokenize', '-m', str(out)], input=text.encode(),
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        got = [int(t) for t in res.stdout.split()]
        assert got == tok.encode(text).ids, text


def test_gemma_sentencepiece_vocab_keeps_no_space_prefix(tmp_path):
    """Gemma's SentencePiece-style tokenizer.json only replaces spaces by U+2581 (no dummy
    prefix): the file must say add_space_prefix = false, as llama.cpp's converter writes it."""
    tokenizers = pytest.importorskip('tokenizers')
    import shutil
    model_dir = tmp_path / 'gemma_tok'
    shutil.copytree(os.path.join(FIXTURES, 'gemma2'), model_dir)
    vocab = {'<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3}
    for b in range(256):
        vocab[f'<0x{b:02X}>'] = len(vocab)
    for piece in ('\u2581', 'h', 'i', '\u2581h', '\u2581hi'):
        vocab[piece] = len(vocab)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(
        vocab=vocab, merges=[('\u2581', 'h'), ('\u2581h', 'i')], byte_fallback=True,
        unk_token='<unk>'))
    tok.normalizer = tokenizers.normalizers.Replace(' ', '\u2581')
    tok.add_special_tokens(['<start_of_turn>', '<end_of_turn>'])
    tok.save(str(model_dir / 'tokenizer.json'))
    out = tmp_path / 'gemma_tok.gguf'
    convert_hf.convert(str(model_dir), str(out), 'f32')
    r = gguf.GGUFReader(str(out))
    assert hfref._field(r, 'tokenizer.ggml.model') == 'llama'
    assert hfref._field(r, 'tokenizer.ggml.add_space_prefix') is False
    types = hfref._ints(r, 'tokenizer.ggml.token_type')
    assert types[tok.token_to_id('<end_of_turn>')] == convert_hf.TOKEN_CONTROL
