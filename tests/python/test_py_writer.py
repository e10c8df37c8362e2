"""Cross-checks tools/gguf_writer.py against PyPI's independent gguf.GGUFReader."""
import numpy as np
import pytest

gguf = pytest.importorskip('gguf')

from gguf_writer import GgufWriter, float32_to_bf16_bits  # noqa: E402  (conftest puts tools/ on path)

VT = gguf.GGUFValueType


def _scalar(field):
    return field.parts[field.data[0]][0]


def _string(field):
    return bytes(field.parts[field.data[0]]).decode('utf-8')


def _array(field):
    if field.types[1] == VT.STRING:
        return [bytes(field.parts[i]).decode('utf-8') for i in field.data]
    return np.concatenate([field.parts[i] for i in field.data]) if field.data else np.array([])


def _tensor_values(t):
    """Float32 values of a reader tensor in row-major numpy shape."""
    shape = tuple(reversed([int(d) for d in t.shape]))
    if t.tensor_type == gguf.GGMLQuantizationType.F32:
        return np.asarray(t.data, dtype=np.float32).reshape(shape)
    if t.tensor_type == gguf.GGMLQuantizationType.F16:
        return np.asarray(t.data, dtype=np.float16).astype(np.float32).reshape(shape)
    assert t.tensor_type == gguf.GGMLQuantizationType.BF16
    bits = np.asarray(t.data).view(np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


@pytest.mark.parametrize('alignment', [32, 64])
def test_every_value_type_round_trips(tmp_path, alignment):
    path = str(tmp_path / 'meta.gguf')
    w = GgufWriter(path, alignment=alignment)
    w.add_uint32('t.u32', 4_000_000_000)
    w.add_int32('t.i32', -123456789)
    w.add_uint64('t.u64', 2**40 + 7)
    w.add_float32('t.f32', 1e-5)
    w.add_bool('t.true', True)
    w.add_bool('t.false', False)
    w.add_string('t.str', 'héllo ▁wörld 🙂')
    w.add_string('t.empty', '')
    w.add_array('t.strs', ['a', '', 'Ġthe', '<0x0A>', '日本'], 'string')
    w.add_array('t.i32s', [-1, 0, 2**31 - 1, -2**31], 'int32')
    w.add_array('t.u32s', [0, 1, 2**32 - 1], 'uint32')
    w.add_array('t.f32s', [0.5, -1.25, 3e38], 'float32')
    w.add_array('t.empty_i32s', [], 'int32')
    w.add_tensor('one', np.array([1.5], dtype=np.float32))
    w.write()

    r = gguf.GGUFReader(path)
    f = r.fields
    assert f['t.u32'].types == [VT.UINT32] and _scalar(f['t.u32']) == 4_000_000_000
    assert f['t.i32'].types == [VT.INT32] and _scalar(f['t.i32']) == -123456789
    assert f['t.u64'].types == [VT.UINT64] and _scalar(f['t.u64']) == 2**40 + 7
    assert f['t.f32'].types == [VT.FLOAT32] and _scalar(f['t.f32']) == np.float32(1e-5)
    assert f['t.true'].types == [VT.BOOL] and bool(_scalar(f['t.true'])) is True
    assert bool(_scalar(f['t.false'])) is False
    assert f['t.str'].types == [VT.STRING] and _string(f['t.str']) == 'héllo ▁wörld 🙂'
    assert _string(f['t.empty']) == ''
    assert f['t.strs'].types == [VT.ARRAY, VT.STRING]
    assert _array(f['t.strs']) == ['a', '', 'Ġthe', '<0x0A>', '日本']
    assert f['t.i32s'].types == [VT.ARRAY, VT.INT32]
    assert _array(f['t.i32s']).tolist() == [-1, 0, 2**31 - 1, -2**31]
    assert f['t.u32s'].types == [VT.ARRAY, VT.UINT32]
    assert _array(f['t.u32s']).tolist() == [0, 1, 2**32 - 1]
    assert f['t.f32s'].types == [VT.ARRAY, VT.FLOAT32]
    assert _array(f['t.f32s']).tolist() == np.array([0.5, -1.25, 3e38], np.float32).tolist()
    assert len(f['t.empty_i32s'].data) == 0
    assert r.alignment == alignment
    if alignment != 32:
        assert _scalar(f['general.alignment']) == alignment
    keys = [k for k in f if not k.startswith('GGUF.') and k != 'general.alignment']
    assert keys[0] == 't.u32' and keys[-1] == 't.empty_i32s'  # insertion order kept
    assert len(r.tensors) == 1 and r.tensors[0].data_offset % alignment == 0


@pytest.mark.parametrize('alignment', [32, 64])
def test_every_tensor_type_round_trips(tmp_path, alignment):
    rng = np.random.default_rng(7)
    tensors = {
        'vec': (rng.standard_normal(7).astype(np.float32), 'f32'),
        'mat': (rng.standard_normal((5, 3)).astype(np.float32), 'f32'),
        'cube': (rng.standard_normal((2, 3, 5)).astype(np.float32), 'f32'),
        'half': (rng.standard_normal((3, 11)).astype(np.float32), 'f16'),
        'brain': (rng.standard_normal((4, 9)).astype(np.float32) * 1e3, 'bf16'),
    }
    path = str(tmp_path / 'tensors.gguf')
    w = GgufWriter(path, alignment=alignment)
    w.add_string('general.architecture', 'llama')
    for name, (a, ty) in tensors.items():
        w.add_tensor(name, a, ty)
    w.write()

    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    assert list(by_name) == list(tensors)
    expected_type = {'f32': gguf.GGMLQuantizationType.F32, 'f16': gguf.GGMLQuantizationType.F16,
                     'bf16': gguf.GGMLQuantizationType.BF16}
    for name, (a, ty) in tensors.items():
        t = by_name[name]
        assert t.tensor_type == expected_type[ty]
        assert [int(d) for d in t.shape] == list(reversed(a.shape))  # GGUF dims are reversed
        assert (t.data_offset - r.data_offset) % alignment == 0
        got = _tensor_values(t)
        if ty == 'f32':
            np.testing.assert_array_equal(got, a)
        elif ty == 'f16':
            np.testing.assert_array_equal(got, a.astype(np.float16).astype(np.float32))
        else:
            torch = pytest.importorskip('torch')
            want = torch.from_numpy(a).to(torch.bfloat16).to(torch.float32).numpy()
            np.testing.assert_array_equal(got, want)  # same rounding as torch


def test_bf16_rounds_to_nearest_even_and_keeps_specials():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, np.inf, -np.inf, np.nan, -0.0], np.float32)
    bits = float32_to_bf16_bits(x)
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    assert back[0] == 1.0
    assert back[1] == 1.0                 # tie -> even mantissa
    assert back[2] == 1.0 + 2**-6         # tie -> even (rounds up)
    assert np.isposinf(back[3]) and np.isneginf(back[4]) and np.isnan(back[5])
    assert np.signbit(back[6])


def test_bad_arguments_raise(tmp_path):
    w = GgufWriter(str(tmp_path / 'x.gguf'))
    w.add_uint32('k', 1)
    with pytest.raises(ValueError):
        w.add_uint32('k', 2)
    with pytest.raises(ValueError):
        w.add_array('a', [1], 'int64')
    with pytest.raises(ValueError):
        w.add_tensor('t', np.zeros(4, np.float32), 'q4_0')
    w.add_tensor('t', np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        w.add_tensor('t', np.zeros(4, np.float32))
