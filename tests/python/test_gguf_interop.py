"""GGUF interop: files Frugal writes load in PyPI's gguf reader, files gguf-py writes load in Frugal.

Runs the binary named by FRUGAL_BIN (`frugal convert`, `frugal quantize`, `frugal inspect --json`).
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

FRUGAL_BIN = os.environ.get("FRUGAL_BIN", "")
# The shared fixture lives beside the repository (../shared), as for the C++ tests.
SHARED = pathlib.Path(os.environ.get(
    "FRUGAL_SHARED_DIR", pathlib.Path(__file__).resolve().parents[2].parent / "shared"))
FIXTURE = SHARED / "models" / "stories260K"

pytestmark = pytest.mark.skipif(not FRUGAL_BIN or not os.path.exists(FRUGAL_BIN),
                                reason="FRUGAL_BIN is not set to a built frugal binary")


def frugal(*args, check=True):
    r = subprocess.run([FRUGAL_BIN, *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, f"frugal {args} failed: {r.stderr}"
    return r


def inspect_json(path):
    return json.loads(frugal("inspect", path, "--json").stdout)


def reader_value(field):
    """A GGUFReader field as a plain Python value (no nested arrays here)."""
    vt = gguf.GGUFValueType
    if field.types[0] == vt.ARRAY:
        if field.types[1] == vt.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if field.types[0] == vt.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def read_llama2c(ckpt_path, tok_path):
    raw = ckpt_path.read_bytes()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = np.frombuffer(raw[:28], "<i4").tolist()
    shared = vocab > 0
    vocab = abs(vocab)
    w = np.frombuffer(raw[28:], "<f4")
    kv_dim = dim // n_heads * n_kv
    head_half = dim // n_heads // 2
    sizes = [("embd", vocab * dim), ("rms_att", n_layers * dim), ("wq", n_layers * dim * dim),
             ("wk", n_layers * kv_dim * dim), ("wv", n_layers * kv_dim * dim),
             ("wo", n_layers * dim * dim), ("rms_ffn", n_layers * dim),
             ("w1", n_layers * hidden * dim), ("w2", n_layers * dim * hidden),
             ("w3", n_layers * hidden * dim), ("rms_final", dim),
             ("freq_real", seq_len * head_half), ("freq_imag", seq_len * head_half)]
    blocks, at = {}, 0
    for name, n in sizes:
        blocks[name] = w[at:at + n]
        at += n
    tok = tok_path.read_bytes()
    tokens, scores, p = [], [], 4
    for _ in range(vocab):
        score, n = np.frombuffer(tok[p:p + 4], "<f4")[0], np.frombuffer(tok[p + 4:p + 8], "<i4")[0]
        tokens.append(tok[p + 8:p + 8 + n].decode("utf-8"))
        scores.append(float(score))
        p += 8 + n
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len, shared=shared, kv_dim=kv_dim)
    return cfg, blocks, tokens, scores


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    ckpt, tok = FIXTURE / "stories260K.bin", FIXTURE / "tok512.bin"
    if not ckpt.exists():
        pytest.skip(f"fixture missing: {ckpt}")
    out = tmp_path_factory.mktemp("interop") / "stories260K.gguf"
    frugal("convert", "--llama2c", ckpt, "--tokenizer", tok, "-o", out)
    return out, read_llama2c(ckpt, tok)


def test_converted_model_reads_in_gguf_py(converted):
    path, (cfg, blocks, tokens, scores) = converted
    reader = gguf.GGUFReader(path)
    meta = {k: reader_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}

    assert meta["general.architecture"] == "llama"
    assert meta["llama.embedding_length"] == cfg["dim"]
    assert meta["llama.feed_forward_length"] == cfg["hidden"]
    assert meta["llama.block_count"] == cfg["n_layers"]
    assert meta["llama.attention.head_count"] == cfg["n_heads"]
    assert meta["llama.attention.head_count_kv"] == cfg["n_kv"]
    assert meta["llama.context_length"] == cfg["seq_len"]
    assert meta["llama.rope.dimension_count"] == cfg["dim"] // cfg["n_heads"]
    assert meta["llama.rope.freq_base"] == 10000.0
    assert meta["tokenizer.ggml.model"] == "llama"
    expected_tokens = [t.strip("\n") if i in (1, 2) else t.replace(" ", "\u2581")
                       for i, t in enumerate(tokens)]
    assert meta["tokenizer.ggml.tokens"] == expected_tokens
    assert meta["tokenizer.ggml.scores"] == pytest.approx(scores)
    types = meta["tokenizer.ggml.token_type"]
    assert types[:4] == [2, 3, 3, 6] and types[258] == 6 and types[259] == 1
    assert meta["tokenizer.ggml.bos_token_id"] == 1 and meta["tokenizer.ggml.eos_token_id"] == 2
    assert meta["tokenizer.ggml.add_bos_token"] is True

    # Both readers agree on every key, type and value.
    ours = inspect_json(path)
    assert set(ours["metadata"]) == set(meta)
    for key, value in meta.items():
        assert ours["metadata"][key]["value"] == value, key
        assert ours["metadata"][key]["type"] == reader.fields[key].types[0].name.lower(), key

    # Tensors: same names, types, shapes and offsets; data equal to the checkpoint's floats.
    d, h, kv, L = cfg["dim"], cfg["hidden"], cfg["kv_dim"], cfg["n_layers"]
    expected = {"token_embd.weight": blocks["embd"].reshape(cfg["vocab"], d),
                "output_norm.weight": blocks["rms_final"]}
    for il in range(L):
        p = f"blk.{il}."
        expected[p + "attn_norm.weight"] = blocks["rms_att"].reshape(L, d)[il]
        expected[p + "attn_q.weight"] = blocks["wq"].reshape(L, d, d)[il]
        expected[p + "attn_k.weight"] = blocks["wk"].reshape(L, kv, d)[il]
        expected[p + "attn_v.weight"] = blocks["wv"].reshape(L, kv, d)[il]
        expected[p + "attn_output.weight"] = blocks["wo"].reshape(L, d, d)[il]
        expected[p + "ffn_norm.weight"] = blocks["rms_ffn"].reshape(L, d)[il]
        expected[p + "ffn_gate.weight"] = blocks["w1"].reshape(L, h, d)[il]
        expected[p + "ffn_down.weight"] = blocks["w2"].reshape(L, d, h)[il]
        expected[p + "ffn_up.weight"] = blocks["w3"].reshape(L, h, d)[il]
    assert sorted(t.name for t in reader.tensors) == sorted(expected)
    ours_tensors = {t["name"]: t for t in ours["tensors"]}
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert np.array_equal(t.data, expected[t.name]), t.name
        mine = ours_tensors[t.name]
        assert mine["shape"] == t.shape.tolist()
        assert ours["data_offset"] + mine["offset"] == t.data_offset


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "f16", "bf16"])
def test_quantized_model_dequantizes_in_gguf_py(converted, tmp_path, qtype):
    src, _ = converted
    out = tmp_path / f"model-{qtype}.gguf"
    frugal("quantize", src, out, qtype)
    original = {t.name: np.array(t.data) for t in gguf.GGUFReader(src).tensors}
    reader = gguf.GGUFReader(out)
    assert reader_value(reader.fields["general.file_type"]) == {"q8_0": 7, "q4_0": 2, "f16": 1,
                                                                "bf16": 32}[qtype]
    assert reader_value(reader.fields["tokenizer.ggml.tokens"])[259] == "\u2581t"
    want = gguf.GGMLQuantizationType[qtype.upper()]
    n_converted = 0
    for t in reader.tensors:
        ref = original[t.name]
        if ref.ndim == 2 and (ref.shape[1] % 32 == 0 or qtype in ("f16", "bf16")):
            assert t.tensor_type == want, t.name
            n_converted += 1
            got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
            # Per-row error bound of the format (scale = max|x| / 127 or / 8, bf16 8-bit mantissa).
            bound = {"q8_0": 1 / 127, "q4_0": 1 / 7, "f16": 1e-3, "bf16": 1e-2}[qtype]
            scale = np.abs(ref).max(axis=1, keepdims=True)
            assert np.all(np.abs(got - ref) <= bound * scale + 1e-6), t.name
        elif ref.ndim == 2:  # rows no 32-block divides fall back to F16, as in llama.cpp
            assert t.tensor_type == gguf.GGMLQuantizationType.F16, t.name
            assert np.array_equal(np.asarray(t.data, np.float32), ref.astype(np.float16)), t.name
        else:
            assert t.tensor_type == gguf.GGMLQuantizationType.F32, t.name
            assert np.array_equal(t.data, ref), t.name
    assert n_converted > 0


def test_gguf_py_file_reads_in_frugal(tmp_path):
    path = tmp_path / "from_gguf_py.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float32("t.f32", 0.25)
    w.add_float64("t.f64", 1e-300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "h\u2581llo \u00e9")
    w.add_array("t.strs", ["a", "", "\u2581the"])
    w.add_array("t.ints", [1, -2, 3])
    w.add_array("t.floats", [0.5, 1.5])
    w.add_array("t.nested", [[1, 2], [3]])
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2, 3, 4], dtype=np.float16)
    c_f32 = np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 64)
    c = gguf.quants.quantize(c_f32, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("a", a)
    w.add_tensor("b", b)
    w.add_tensor("c", c, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ours = inspect_json(path)
    reader = gguf.GGUFReader(path)
    assert ours["version"] == 3
    expected = {
        "general.architecture": ("string", "llama"), "t.u8": ("uint8", 200),
        "t.i8": ("int8", -5), "t.u16": ("uint16", 60000), "t.i16": ("int16", -30000),
        "t.u32": ("uint32", 4000000000), "t.i32": ("int32", -2000000000),
        "t.u64": ("uint64", 2**63 + 5), "t.i64": ("int64", -(2**62)),
        "t.f32": ("float32", 0.25), "t.f64": ("float64", 1e-300), "t.bool": ("bool", True),
        "t.str": ("string", "h\u2581llo \u00e9"), "t.strs": ("array", ["a", "", "\u2581the"]),
        "t.ints": ("array", [1, -2, 3]), "t.floats": ("array", [0.5, 1.5]),
        "t.nested": ("array", [[1, 2], [3]]),
    }
    for key, (vtype, value) in expected.items():
        assert ours["metadata"][key]["type"] == vtype, key
        assert ours["metadata"][key]["value"] == value, key
    assert ours["metadata"]["t.strs"]["element_type"] == "string"
    assert ours["metadata"]["t.nested"]["element_type"] == "array"
    # Every key gguf-py wrote is there, with the type it declared.
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        assert ours["metadata"][key]["type"] == field.types[0].name.lower(), key

    tensors = {t["name"]: t for t in ours["tensors"]}
    assert [t["name"] for t in ours["tensors"]] == ["a", "b", "c"]
    assert tensors["a"]["type"] == "f32" and tensors["a"]["shape"] == [3, 2]
    assert tensors["b"]["type"] == "f16" and tensors["b"]["shape"] == [4]
    assert tensors["c"]["type"] == "q8_0" and tensors["c"]["shape"] == [64, 2]
    assert tensors["c"]["n_bytes"] == 4 * 34  # 128 values in 4 blocks of 34 bytes
    for t in reader.tensors:
        assert ours["data_offset"] + tensors[t.name]["offset"] == t.data_offset, t.name


def test_inspect_refuses_a_broken_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    r = frugal("inspect", bad, check=False)
    assert r.returncode == 1
    assert "corrupt" in r.stderr and "offset" in r.stderr
    bad.write_bytes(b"NOPE" + b"\x00" * 20)
    r = frugal("inspect", bad, "--json", check=False)
    assert r.returncode == 1 and "bad magic" in r.stderr
