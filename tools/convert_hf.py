#!/usr/bin/env python3
"""convert_hf: Hugging Face checkpoint directory -> GGUF (llama | qwen2 | qwen3 | gemma2 | gemma3 | phi3).

Usage:
    python tools/convert_hf.py MODEL_DIR --outfile OUT.gguf [--outtype f32|f16|bf16]

MODEL_DIR holds config.json and the weights (safetensors or pytorch_model.bin), loaded with
transformers on the CPU. The output follows the GGUF conventions llama.cpp uses, so Frugal
and other GGUF readers can load it:

  * LlamaForCausalLM and MistralForCausalLM -> architecture `llama`. HF stores q_proj/k_proj
    rows permuted for rotate-half RoPE; GGUF `llama` expects RoPE on adjacent pairs, so the
    rows of each head are un-permuted here (see `unpermute_rows`).
  * Qwen2ForCausalLM -> architecture `qwen2`, HF row order kept (readers apply NEOX RoPE),
    with the q/k/v biases.
  * Llama-3 RoPE scaling (`rope_scaling` {rope_type|type: "llama3", factor, low_freq_factor,
    high_freq_factor, original_max_position_embeddings}) becomes an F32 `rope_freqs.weight`
    [head_dim / 2] of per-frequency divisors; a reader divides each pair's frequency by it.
    transformers 4.40 cannot load such a config, so the converter strips it before loading.
  * Linear RoPE scaling is written as {arch}.rope.scaling.type / .factor.
  * Qwen3ForCausalLM -> `qwen3`: as qwen2 without biases, with per-head `attn_q_norm` /
    `attn_k_norm` [head_dim] and {arch}.attention.key_length for the explicit head_dim.
  * Gemma2ForCausalLM / Gemma3ForCausalLM -> `gemma2` / `gemma3` as llama.cpp's
    convert_hf_to_gguf.py writes them: every RMSNorm weight stored as (1 + w), since Gemma
    normalises with x * (1 + w); the extra norms `post_attention_norm`, `post_ffw_norm` (and
    gemma3's q/k norms); tied embeddings; attn_logit_softcapping / final_logit_softcapping
    (gemma2) and attention.sliding_window. A query_pre_attn_scalar other than head_dim is
    written as {arch}.attention.scale (llama.cpp derives it from the model size instead).
    Gemma 3's local RoPE base (10000) and 5:1 local/global pattern are fixed by the format.
  * Phi3ForCausalLM -> `phi3` with its fused `attn_qkv` and `ffn_up` (gate rows, then up rows)
    kept as they are; LongRoPE checkpoints (rope_scaling longrope/su) are refused.
    These four are read straight from the safetensors / pytorch_model.bin files (no
    transformers model is built), so the installed transformers need not know them.
  * Norm weights, biases and rope_freqs stay F32; the 2-D matrices use --outtype.
  * Tokenizer: tokenizer.json when present (byte-level BPE -> `gpt2` with merges and a `pre`
    name; SentencePiece-style BPE or Unigram -> `llama` with scores); without one, a
    placeholder `llama` vocabulary of n_vocab pieces so the file still loads.

Python API: convert(model_dir, out_path, outtype='f32') -> dict of the written metadata.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import GgufWriter  # noqa: E402

ARCH_OF = {
    'LlamaForCausalLM': 'llama',
    'MistralForCausalLM': 'llama',
    'Qwen2ForCausalLM': 'qwen2',
    'Qwen3ForCausalLM': 'qwen3',
    'Gemma2ForCausalLM': 'gemma2',
    'Gemma3ForCausalLM': 'gemma3',
    'Phi3ForCausalLM': 'phi3',
}
DIRECT_ARCHS = ('qwen3', 'gemma2', 'gemma3', 'phi3')  # converted from the raw state dict

# Hugging Face's config defaults (transformers 4.51) for keys a config.json may leave out.
HF_DEFAULTS = {
    'qwen3': dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                  max_position_embeddings=32768),
    'gemma2': dict(rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=8192,
                   head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                   hidden_activation='gelu_pytorch_tanh'),
    'gemma3': dict(rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=131072,
                   head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
                   attn_logit_softcapping=None, final_logit_softcapping=None,
                   rope_local_base_freq=10000.0, sliding_window_pattern=6,
                   hidden_activation='gelu_pytorch_tanh'),
    'phi3': dict(rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
                 tie_word_embeddings=False, partial_rotary_factor=1.0, sliding_window=None),
}
FILE_TYPE = {'f32': 0, 'f16': 1, 'bf16': 32}  # general.file_type, llama.cpp's ftype numbering

# tokenizer.ggml.token_type values.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = (
    1, 2, 3, 4, 5, 6)


class ConvertError(Exception):
    """A checkpoint this converter cannot handle; the message says why."""


# ---- weights ----------------------------------------------------------------------------
def unpermute_rows(w, n_head):
    """Undoes HF's rotate-half row permutation of a q_proj/k_proj weight [n_head*head_dim, n_in].

    Within each head HF orders rows as [first halves of all pairs, second halves]; GGUF
    `llama` interleaves them (pair i = rows 2i, 2i+1).
    """
    rows, n_in = w.shape
    head_dim = rows // n_head
    return (w.reshape(n_head, 2, head_dim // 2, n_in)
            .swapaxes(1, 2)
            .reshape(rows, n_in))


def llama3_rope_divisors(head_dim, base, scaling):
    """Per-frequency divisors [head_dim/2] of Llama-3 RoPE scaling (freq_used = freq / d)."""
    factor = float(scaling['factor'])
    low = float(scaling.get('low_freq_factor', 1.0))
    high = float(scaling.get('high_freq_factor', 4.0))
    old_ctx = float(scaling.get('original_max_position_embeddings', 8192))
    low_freq_wavelen = old_ctx / low
    high_freq_wavelen = old_ctx / high
    divisors = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            divisors.append(1.0)
        elif wavelen > low_freq_wavelen:
            divisors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


def _rope_scaling_kind(scaling):
    if not scaling:
        return None
    return scaling.get('rope_type', scaling.get('type'))


def _load_model(model_dir, raw_config):
    """Loads the HF model on the CPU in its checkpoint dtype; returns (model, config)."""
    import transformers

    cfg = dict(raw_config)
    if _rope_scaling_kind(cfg.get('rope_scaling')) == 'llama3':
        cfg['rope_scaling'] = None  # transformers 4.40 rejects it; rope_freqs carries it
    model_type = cfg.pop('model_type', None)
    if model_type is None:
        raise ConvertError(f'{model_dir}/config.json has no model_type')
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, config=config, torch_dtype='auto')
    model.eval()
    return model, config


# ---- tokenizer --------------------------------------------------------------------------
def _read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _special_ids(model_dir, raw_config, vocab):
    """bos/eos/unk/pad ids from config.json and tokenizer_config.json when they are known."""
    ids = {}
    for name in ('bos', 'eos', 'pad'):
        v = raw_config.get(f'{name}_token_id')
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, int):
            ids[name] = v
    tc_path = os.path.join(model_dir, 'tokenizer_config.json')
    if os.path.exists(tc_path):
        tc = _read_json(tc_path)
        for name in ('bos', 'eos', 'unk', 'pad'):
            tok = tc.get(f'{name}_token')
            if isinstance(tok, dict):
                tok = tok.get('content')
            if isinstance(tok, str) and tok in vocab:
                ids.setdefault(name, vocab[tok])
        for name in ('add_bos_token', 'add_eos_token'):
            if isinstance(tc.get(name), bool):
                ids[name] = tc[name]
        if isinstance(tc.get('chat_template'), str):
            ids['chat_template'] = tc['chat_template']
    return ids


def _split_patterns(node):
    """Every regex string of the pre-tokenizer's Split steps."""
    if isinstance(node, dict):
        pat = node.get('pattern')
        found = [pat['Regex']] if isinstance(pat, dict) and 'Regex' in pat else []
        return found + [r for v in node.values() for r in _split_patterns(v)]
    if isinstance(node, list):
        return [r for v in node for r in _split_patterns(v)]
    return []


def _pre_tokenizer_name(tok_json):
    """Names the pre-tokenizer split the way llama.cpp's `tokenizer.ggml.pre` does."""
    patterns = ' '.join(_split_patterns(tok_json.get('pre_tokenizer')))
    if r'\p{N}{1,3}' in patterns:
        return 'llama-bpe'   # Llama-3: case-insensitive contractions, digits in threes
    if "(?i:'s" in patterns and r'\p{N}|' in patterns:
        return 'qwen2'       # Qwen2: case-insensitive contractions, single digits
    return 'gpt-2'           # plain GPT-2 byte-level split


def _adds_space_prefix(tok_json):
    """Whether a SentencePiece-style tokenizer.json prepends U+2581 to the text (Llama 2 does,
    Gemma does not): a Prepend normalizer, or a Metaspace step that prepends."""
    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'Prepend' and node.get('prepend') == '\u2581':
                return True
            if node.get('type') == 'Metaspace' and (
                    node.get('add_prefix_space') or node.get('prepend_scheme') in ('always', 'first')):
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False
    return walk(tok_json.get('normalizer')) or walk(tok_json.get('pre_tokenizer'))


def _write_tokenizer(w, model_dir, raw_config, n_vocab):
    path = os.path.join(model_dir, 'tokenizer.json')
    if not os.path.exists(path):
        if os.path.exists(os.path.join(model_dir, 'tokenizer.model')):
            print('convert_hf: tokenizer.model without tokenizer.json is not supported; '
                  'writing a placeholder vocabulary', file=sys.stderr)
        _write_placeholder_vocab(w, n_vocab)
        return 'placeholder'
    tj = _read_json(path)
    model = tj.get('model', {})
    kind = model.get('type')
    added = {t['id']: t for t in tj.get('added_tokens', [])}

    if kind == 'Unigram':
        pieces = [(p[0], float(p[1])) for p in model['vocab']]
        vocab = {p: i for i, (p, _) in enumerate(pieces)}
        tokens, scores = [p for p, _ in pieces], [s for _, s in pieces]
        unk_id = model.get('unk_id')
        types = [TOKEN_UNKNOWN if i == unk_id else
                 TOKEN_BYTE if _is_byte_piece(p) else TOKEN_NORMAL
                 for i, p in enumerate(tokens)]
        tok_model, merges = 'llama', None
    elif kind == 'BPE':
        vocab = dict(model['vocab'])
        for i, t in added.items():
            vocab.setdefault(t['content'], i)
        size = max(max(vocab.values()) + 1, n_vocab)
        tokens = [f'[PAD{i}]' for i in range(size)]
        for piece, i in vocab.items():
            tokens[i] = piece
        merges = [m if isinstance(m, str) else ' '.join(m) for m in model.get('merges', [])]
        sentencepiece_like = bool(model.get('byte_fallback')) or 'Metaspace' in json.dumps(
            [tj.get('pre_tokenizer'), tj.get('decoder'), tj.get('normalizer')])
        if sentencepiece_like:
            # SentencePiece BPE applies the highest-scoring merge first: score = -merge rank.
            rank = {}
            for r, m in enumerate(merges):
                a, b = m.split(' ', 1)
                rank.setdefault(a + b, r)
            scores = [-float(rank[t]) if t in rank else 0.0 for t in tokens]
            tok_model = 'llama'
        else:
            scores = None
            tok_model = 'gpt2'
        real_ids = set(vocab.values())
        types = []
        for i, t in enumerate(tokens):
            if i in added:
                types.append(TOKEN_CONTROL if added[i].get('special') else TOKEN_USER_DEFINED)
            elif i not in real_ids:
                types.append(TOKEN_UNUSED)
            elif tok_model == 'llama' and _is_byte_piece(t):
                types.append(TOKEN_BYTE)
            elif t == model.get('unk_token'):
                types.append(TOKEN_UNKNOWN)
            else:
                types.append(TOKEN_NORMAL)
    else:
        raise ConvertError(f'tokenizer.json model type {kind!r} is not supported')

    for i, t in added.items():
        if i < len(types) and t.get('special'):
            types[i] = TOKEN_CONTROL
    w.add_string('tokenizer.ggml.model', tok_model)
    if tok_model == 'gpt2':
        w.add_string('tokenizer.ggml.pre', _pre_tokenizer_name(tj))
    else:
        w.add_string('tokenizer.ggml.pre', 'default')
        w.add_bool('tokenizer.ggml.add_space_prefix', _adds_space_prefix(tj))
    w.add_array('tokenizer.ggml.tokens', tokens, 'string')
    w.add_array('tokenizer.ggml.token_type', types, 'int32')
    if scores is not None:
        w.add_array('tokenizer.ggml.scores', scores, 'float32')
    if merges:
        w.add_array('tokenizer.ggml.merges', merges, 'string')
    ids = _special_ids(model_dir, raw_config, {t: i for i, t in enumerate(tokens)})
    for name in ('bos', 'eos', 'unk', 'pad'):
        if name in ids:
            w.add_uint32(f'tokenizer.ggml.{name}_token_id', ids[name])
    for name in ('add_bos_token', 'add_eos_token'):
        if name in ids:
            w.add_bool(f'tokenizer.ggml.{name}', ids[name])
    if 'chat_template' in ids:
        w.add_string('tokenizer.chat_template', ids['chat_template'])
    return tok_model


def _is_byte_piece(p):
    return len(p) == 6 and p.startswith('<0x') and p.endswith('>')


def _write_placeholder_vocab(w, n_vocab):
    """A `llama` vocabulary with <unk>=0, <s>=1, </s>=2, byte pieces, then filler words."""
    tokens = ['<unk>', '<s>', '</s>'] + [f'<0x{b:02X}>' for b in range(256)]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL] + [TOKEN_BYTE] * 256
    tokens, types = tokens[:n_vocab], types[:n_vocab]
    for i in range(len(tokens), n_vocab):
        tokens.append(f'\u2581w{i}')
        types.append(TOKEN_NORMAL)
    scores = [0.0] * min(n_vocab, 259) + [-float(i) for i in range(n_vocab - min(n_vocab, 259))]
    w.add_string('tokenizer.ggml.model', 'llama')
    w.add_array('tokenizer.ggml.tokens', tokens, 'string')
    w.add_array('tokenizer.ggml.scores', scores, 'float32')
    w.add_array('tokenizer.ggml.token_type', types, 'int32')
    w.add_uint32('tokenizer.ggml.unknown_token_id', 0)
    w.add_uint32('tokenizer.ggml.bos_token_id', 1)
    w.add_uint32('tokenizer.ggml.eos_token_id', 2)


# ---- the architectures converted from the raw state dict -----------------------------------
def _read_state_dict(model_dir):
    """{name: torch tensor} from the checkpoint's *.safetensors (else pytorch_model*.bin)."""
    import glob
    import torch

    files = sorted(glob.glob(os.path.join(model_dir, '*.safetensors')))
    sd = {}
    if files:
        from safetensors.torch import load_file
        for f in files:
            sd.update(load_file(f))
        return sd
    for f in sorted(glob.glob(os.path.join(model_dir, 'pytorch_model*.bin'))):
        sd.update(torch.load(f, map_location='cpu'))
    if not sd:
        raise ConvertError(f'{model_dir} has no *.safetensors or pytorch_model*.bin weights')
    return sd


def _hparams(raw, arch):
    hp = dict(HF_DEFAULTS[arch])
    hp.update(raw)  # an explicit null (no soft-capping, say) overrides the default
    for key in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
                'vocab_size'):
        if key not in hp:
            raise ConvertError(f'config.json has no {key}')
    hp.setdefault('num_key_value_heads', hp['num_attention_heads'])
    if hp['num_key_value_heads'] is None:
        hp['num_key_value_heads'] = hp['num_attention_heads']
    if arch in ('gemma2', 'gemma3'):
        hp.setdefault('tie_word_embeddings', True)
    if arch == 'qwen3' or 'head_dim' not in hp or hp['head_dim'] is None:
        hp['head_dim'] = hp.get('head_dim') or hp['hidden_size'] // hp['num_attention_heads']
    return hp


def _direct_metadata(arch, hp):
    """The {arch}.* keys as llama.cpp's converter writes them (floats as float32)."""
    hd = int(hp['head_dim'])
    meta = {
        'context_length': int(hp['max_position_embeddings']),
        'embedding_length': int(hp['hidden_size']),
        'block_count': int(hp['num_hidden_layers']),
        'feed_forward_length': int(hp['intermediate_size']),
        'attention.head_count': int(hp['num_attention_heads']),
        'attention.head_count_kv': int(hp['num_key_value_heads']),
        'attention.layer_norm_rms_epsilon': float(hp['rms_norm_eps']),
        'rope.freq_base': float(hp['rope_theta']),
        'vocab_size': int(hp['vocab_size']),
    }
    if arch != 'phi3':
        meta['attention.key_length'] = hd
        meta['attention.value_length'] = hd
    scaling = hp.get('rope_scaling')
    kind = _rope_scaling_kind(scaling)
    if arch == 'phi3':
        if kind in ('longrope', 'su', 'yarn'):
            raise ConvertError(f'phi3 rope_scaling {kind!r} (LongRoPE, 128k-context models) is '
                               'not supported; Phi-3 checkpoints without it (mini-4k) are')
        if float(hp.get('partial_rotary_factor') or 1.0) != 1.0:
            raise ConvertError('partial_rotary_factor < 1 (partial rotary embedding) is not '
                               'supported')
        meta['rope.dimension_count'] = hd
        if hp.get('sliding_window'):
            meta['attention.sliding_window'] = int(hp['sliding_window'])
    if kind == 'linear':
        meta['rope.scaling.type'] = 'linear'
        meta['rope.scaling.factor'] = float(scaling['factor'])
    elif kind not in (None, 'default') and arch != 'phi3':
        raise ConvertError(f'rope_scaling type {kind!r} is not supported for {arch}')
    if arch in ('gemma2', 'gemma3'):
        if hp.get('hidden_activation') not in ('gelu_pytorch_tanh', 'gelu_tanh'):
            raise ConvertError(f'{arch} hidden_activation {hp.get("hidden_activation")!r}: only '
                               'gelu_pytorch_tanh is supported')
        meta['attention.sliding_window'] = int(hp['sliding_window'])
        for key in ('attn_logit_softcapping', 'final_logit_softcapping'):
            if arch == 'gemma2' or hp.get(key) is not None:
                meta[key] = float(hp.get(key) or 0.0)  # 0: none (llama.cpp's default is 50/30)
        if float(hp['query_pre_attn_scalar']) != hd:
            meta['attention.scale'] = float(hp['query_pre_attn_scalar']) ** -0.5
    if arch in ('gemma2', 'gemma3') and hp.get('layer_types'):  # newer transformers' form
        period = 2 if arch == 'gemma2' else 6
        fixed = ['full_attention' if (il + 1) % period == 0 else 'sliding_attention'
                 for il in range(int(hp['num_hidden_layers']))]
        if list(hp['layer_types']) != fixed:
            raise ConvertError(f'{arch} files fix the layer pattern (every {period}th layer '
                               f'global); this checkpoint has layer_types {hp["layer_types"]}')
    if arch == 'gemma3':
        if float(hp['rope_local_base_freq']) != 10000.0 or int(hp['sliding_window_pattern']) != 6:
            raise ConvertError('gemma3 files fix the local RoPE base at 10000 and the pattern at '
                               f'6 layers; this checkpoint has {hp["rope_local_base_freq"]} and '
                               f'{hp["sliding_window_pattern"]}')
    return meta


def _direct_tensors(arch, hp, sd):
    """(GGUF name, float32 array, is_matrix) in llama.cpp's names and layouts."""
    def get(name):
        if name not in sd:
            raise ConvertError(f'the checkpoint has no tensor {name}')
        return sd[name].detach().float().cpu().numpy()

    gemma = arch in ('gemma2', 'gemma3')
    norm = (lambda t: t + np.float32(1.0)) if gemma else (lambda t: t)  # Gemma: x * (1 + w)
    out = [('token_embd.weight', get('model.embed_tokens.weight'), True)]
    for il in range(int(hp['num_hidden_layers'])):
        p, b = f'model.layers.{il}.', f'blk.{il}.'
        out.append((b + 'attn_norm.weight', norm(get(p + 'input_layernorm.weight')), False))
        if arch == 'phi3':
            out.append((b + 'attn_qkv.weight', get(p + 'self_attn.qkv_proj.weight'), True))
        else:
            for proj, short in (('q_proj', 'attn_q'), ('k_proj', 'attn_k'), ('v_proj', 'attn_v')):
                out.append((b + short + '.weight', get(p + f'self_attn.{proj}.weight'), True))
        if arch in ('qwen3', 'gemma3'):
            out.append((b + 'attn_q_norm.weight', norm(get(p + 'self_attn.q_norm.weight')), False))
            out.append((b + 'attn_k_norm.weight', norm(get(p + 'self_attn.k_norm.weight')), False))
        out.append((b + 'attn_output.weight', get(p + 'self_attn.o_proj.weight'), True))
        if gemma:
            out.append((b + 'post_attention_norm.weight',
                        norm(get(p + 'post_attention_layernorm.weight')), False))
            out.append((b + 'ffn_norm.weight', norm(get(p + 'pre_feedforward_layernorm.weight')),
                        False))
            out.append((b + 'post_ffw_norm.weight',
                        norm(get(p + 'post_feedforward_layernorm.weight')), False))
        else:
            out.append((b + 'ffn_norm.weight', get(p + 'post_attention_layernorm.weight'), False))
        if arch == 'phi3':
            out.append((b + 'ffn_up.weight', get(p + 'mlp.gate_up_proj.weight'), True))
        else:
            out.append((b + 'ffn_gate.weight', get(p + 'mlp.gate_proj.weight'), True))
            out.append((b + 'ffn_up.weight', get(p + 'mlp.up_proj.weight'), True))
        out.append((b + 'ffn_down.weight', get(p + 'mlp.down_proj.weight'), True))
    out.append(('output_norm.weight', norm(get('model.norm.weight')), False))
    if not hp.get('tie_word_embeddings') and 'lm_head.weight' in sd:
        out.append(('output.weight', get('lm_head.weight'), True))
    return out


def _convert_direct(model_dir, raw, arch, out_path, outtype):
    hp = _hparams(raw, arch)
    meta = _direct_metadata(arch, hp)
    sd = _read_state_dict(model_dir)
    tensors = _direct_tensors(arch, hp, sd)
    w = GgufWriter(out_path)
    w.add_string('general.architecture', arch)
    w.add_string('general.name', os.path.basename(os.path.normpath(model_dir)))
    w.add_uint32('general.file_type', FILE_TYPE[outtype])
    for key, v in meta.items():
        if isinstance(v, str):
            w.add_string(f'{arch}.{key}', v)
        elif isinstance(v, float):
            w.add_float32(f'{arch}.{key}', v)
        else:
            w.add_uint32(f'{arch}.{key}', v)
    result = {'general.architecture': arch}
    result.update({f'{arch}.{k}': v for k, v in meta.items()})
    result['tokenizer'] = _write_tokenizer(w, model_dir, raw, int(hp['vocab_size']))
    for name, t, is_matrix in tensors:
        w.add_tensor(name, np.ascontiguousarray(t, dtype=np.float32), outtype if is_matrix else 'f32')
    w.write()
    return result


# ---- conversion -------------------------------------------------------------------------
def convert(model_dir, out_path, outtype='f32'):
    """Converts the HF checkpoint in `model_dir` to GGUF at `out_path`.

    Returns the metadata written (a dict). Raises ConvertError for an unsupported model.
    """
    if outtype not in FILE_TYPE:
        raise ConvertError(f'--outtype must be one of {sorted(FILE_TYPE)}, got {outtype!r}')
    cfg_path = os.path.join(model_dir, 'config.json')
    if not os.path.exists(cfg_path):
        raise ConvertError(f'{model_dir} has no config.json')
    raw = _read_json(cfg_path)
    archs = raw.get('architectures') or []
    arch = next((ARCH_OF[a] for a in archs if a in ARCH_OF), None)
    if arch is None:
        raise ConvertError(f'architectures {archs} not supported; expected one of {list(ARCH_OF)}')
    if arch in DIRECT_ARCHS:
        return _convert_direct(model_dir, raw, arch, out_path, outtype)

    model, config = _load_model(model_dir, raw)
    n_embd = config.hidden_size
    n_head = config.num_attention_heads
    n_head_kv = getattr(config, 'num_key_value_heads', None) or n_head
    head_dim = n_embd // n_head
    if head_dim * n_head != n_embd or head_dim % 2:
        raise ConvertError(f'hidden_size {n_embd} is not n_head {n_head} x an even head_dim')
    base = float(getattr(config, 'rope_theta', 10000.0))
    scaling = raw.get('rope_scaling')
    tied = bool(getattr(config, 'tie_word_embeddings', False))

    w = GgufWriter(out_path)
    meta = {
        'general.architecture': arch,
        f'{arch}.context_length': int(config.max_position_embeddings),
        f'{arch}.embedding_length': n_embd,
        f'{arch}.block_count': int(config.num_hidden_layers),
        f'{arch}.feed_forward_length': int(config.intermediate_size),
        f'{arch}.attention.head_count': n_head,
        f'{arch}.attention.head_count_kv': n_head_kv,
        f'{arch}.rope.freq_base': base,
        f'{arch}.attention.layer_norm_rms_epsilon': float(config.rms_norm_eps),
        f'{arch}.rope.dimension_count': head_dim,
        f'{arch}.vocab_size': int(config.vocab_size),
    }
    w.add_string('general.architecture', arch)
    w.add_string('general.name', os.path.basename(os.path.normpath(model_dir)))
    w.add_uint32('general.file_type', FILE_TYPE[outtype])
    for key, v in meta.items():
        if key == 'general.architecture':
            continue
        if isinstance(v, float):
            w.add_float32(key, v)
        else:
            w.add_uint32(key, v)
    kind = _rope_scaling_kind(scaling)
    if kind == 'linear':
        w.add_string(f'{arch}.rope.scaling.type', 'linear')
        w.add_float32(f'{arch}.rope.scaling.factor', float(scaling['factor']))
    elif kind not in (None, 'llama3', 'default'):
        raise ConvertError(f'rope_scaling type {kind!r} is not supported')
    meta['tokenizer'] = _write_tokenizer(w, model_dir, raw, int(config.vocab_size))

    sd = model.state_dict()

    def get(name):
        return sd[name].detach().float().cpu().numpy()

    def matrix(name, t):
        w.add_tensor(name, t, outtype)

    def vector(name, t):
        w.add_tensor(name, t, 'f32')

    matrix('token_embd.weight', get('model.embed_tokens.weight'))
    if kind == 'llama3':
        vector('rope_freqs.weight', llama3_rope_divisors(head_dim, base, scaling))
    for il in range(config.num_hidden_layers):
        p = f'model.layers.{il}.'
        b = f'blk.{il}.'
        vector(b + 'attn_norm.weight', get(p + 'input_layernorm.weight'))
        q, k = get(p + 'self_attn.q_proj.weight'), get(p + 'self_attn.k_proj.weight')
        if arch == 'llama':
            q, k = unpermute_rows(q, n_head), unpermute_rows(k, n_head_kv)
        matrix(b + 'attn_q.weight', q)
        matrix(b + 'attn_k.weight', k)
        matrix(b + 'attn_v.weight', get(p + 'self_attn.v_proj.weight'))
        for proj, short in (('q_proj', 'attn_q'), ('k_proj', 'attn_k'), ('v_proj', 'attn_v')):
            bias = sd.get(p + f'self_attn.{proj}.bias')
            if bias is not None:
                bias = bias.detach().float().numpy()
                if arch == 'llama' and proj != 'v_proj':
                    n = n_head if proj == 'q_proj' else n_head_kv
                    bias = unpermute_rows(bias[:, None], n)[:, 0]
                vector(b + short + '.bias', bias)
        matrix(b + 'attn_output.weight', get(p + 'self_attn.o_proj.weight'))
        vector(b + 'ffn_norm.weight', get(p + 'post_attention_layernorm.weight'))
        matrix(b + 'ffn_gate.weight', get(p + 'mlp.gate_proj.weight'))
        matrix(b + 'ffn_up.weight', get(p + 'mlp.up_proj.weight'))
        matrix(b + 'ffn_down.weight', get(p + 'mlp.down_proj.weight'))
    vector('output_norm.weight', get('model.norm.weight'))
    if not tied:
        matrix('output.weight', get('lm_head.weight'))
    w.write()
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model_dir', help='Hugging Face model directory (config.json + weights)')
    ap.add_argument('--outfile', required=True, help='GGUF file to write')
    ap.add_argument('--outtype', default='f32', choices=sorted(FILE_TYPE),
                    help='type of the 2-D weight matrices (norms stay f32)')
    args = ap.parse_args(argv)
    try:
        meta = convert(args.model_dir, args.outfile, args.outtype)
    except (ConvertError, OSError, ValueError) as e:
        print(f'convert_hf: error: {e}', file=sys.stderr)
        return 1
    print(f'convert_hf: wrote {args.outfile} ({meta["general.architecture"]}, '
          f'{meta[meta["general.architecture"] + ".block_count"]} layers, {args.outtype}, '
          f'tokenizer {meta["tokenizer"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
