"""Llama in plain PyTorch, laid out as GGUF `llama` stores it, so export needs no permutation:
RMSNorm, RoPE on adjacent pairs (x[2i], x[2i+1]), grouped-query attention, SwiGLU, tied
input/output embeddings."""

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass
class LlamaConfig:
    vocab_size: int = 1024
    n_embd: int = 192
    n_layer: int = 6
    n_head: int = 6
    n_head_kv: int = 2
    n_ff: int = 512
    n_ctx: int = 128
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


class RmsNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n_pos):
    """cos, sin: [n_pos, head_dim / 2]; pair i of a head rotates by pos * theta^(-2i / head_dim)."""
    inv = cfg.rope_theta ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    angles = torch.arange(n_pos, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x, cos, sin):
    """x: [batch, n_head, seq, head_dim]; rotates adjacent pairs (GGUF llama / rope mode 0)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.n_embd, cfg.head_dim
        self.attn_norm = RmsNorm(d, cfg.norm_eps)
        self.wq = nn.Linear(d, cfg.n_head * hd, bias=False)
        self.wk = nn.Linear(d, cfg.n_head_kv * hd, bias=False)
        self.wv = nn.Linear(d, cfg.n_head_kv * hd, bias=False)
        self.wo = nn.Linear(cfg.n_head * hd, d, bias=False)
        self.ffn_norm = RmsNorm(d, cfg.norm_eps)
        self.w_gate = nn.Linear(d, cfg.n_ff, bias=False)
        self.w_up = nn.Linear(d, cfg.n_ff, bias=False)
        self.w_down = nn.Linear(cfg.n_ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(b, t, cfg.n_head, cfg.head_dim).transpose(1, 2)  # [b, nh, t, hd]
        k = self.wk(h).view(b, t, cfg.n_head_kv, cfg.head_dim).transpose(1, 2)  # [b, nkv, t, hd]
        v = self.wv(h).view(b, t, cfg.n_head_kv, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = cfg.n_head // cfg.n_head_kv
        k = k.repeat_interleave(group, dim=1)  # head j uses kv head j // group, as GGUF llama
        v = v.repeat_interleave(group, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(cfg.head_dim) + mask  # [b, nh, t, t]
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, cfg.n_head * cfg.head_dim)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_embd = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.out_norm = RmsNorm(cfg.n_embd, cfg.norm_eps)
        cos, sin = rope_tables(cfg, cfg.n_ctx)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for blk in self.blocks:  # scale residual projections down with depth
            nn.init.normal_(blk.wo.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))
            nn.init.normal_(blk.w_down.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids):
        """ids: [batch, seq] -> logits [batch, seq, vocab]; the output matrix is tok_embd."""
        t = ids.shape[1]
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.tok_embd(ids)
        cos, sin = self.cos[:t], self.sin[:t]
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self.out_norm(x) @ self.tok_embd.weight.t()


def save(model, path, extra=None):
    torch.save({"config": dataclasses.asdict(model.cfg), "state": model.state_dict(),
                **(extra or {})}, path)


def load(path):
    ck = torch.load(path, map_location="cpu")
    model = Llama(LlamaConfig(**ck["config"]))
    model.load_state_dict(ck["state"])
    return model, ck


def from_gguf(path):
    """(model, tokens, merges) rebuilt from a GGUF file written by train.py export, with the
    weights exactly as stored (f16 rounded), so PyTorch can be compared with the C++ engine."""
    import gguf  # the reference reader from the venv; only the tests and checks use this
    import numpy as np

    r = gguf.GGUFReader(path)

    def field(key):
        f = r.fields[key]
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i][0].item() for i in f.data]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]][0].item()

    tokens = field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in field("tokenizer.ggml.merges")]
    cfg = LlamaConfig(vocab_size=len(tokens), n_embd=field("llama.embedding_length"),
                      n_layer=field("llama.block_count"),
                      n_head=field("llama.attention.head_count"),
                      n_head_kv=field("llama.attention.head_count_kv"),
                      n_ff=field("llama.feed_forward_length"),
                      n_ctx=field("llama.context_length"),
                      rope_theta=field("llama.rope.freq_base"),
                      norm_eps=field("llama.attention.layer_norm_rms_epsilon"))
    names = {"token_embd.weight": "tok_embd.weight", "output_norm.weight": "out_norm.weight"}
    per_layer = {"attn_norm": "attn_norm", "attn_q": "wq", "attn_k": "wk", "attn_v": "wv",
                 "attn_output": "wo", "ffn_norm": "ffn_norm", "ffn_gate": "w_gate",
                 "ffn_up": "w_up", "ffn_down": "w_down"}
    state = {}
    for t in r.tensors:
        if t.name in names:
            key = names[t.name]
        else:
            _, il, kind, _ = t.name.split(".")
            key = f"blocks.{il}.{per_layer[kind]}.weight"
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        state[key] = torch.from_numpy(np.array(t.data, dtype=np.float32).reshape(shape))
    m = Llama(cfg)
    m.load_state_dict(state)
    return m, tokens, merges
