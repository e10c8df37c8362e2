"""Training pipeline: tokenizer behaviour, and a few steps of every stage end to end
(tools/train/train_all.sh --smoke) with GGUF files that read back into the same model."""

import json
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bpe  # noqa: E402
import tasks  # noqa: E402

GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                r"""|\s+(?!\S)|\s+""")


def test_pretokenizer_splits_like_the_gpt2_pattern():
    regex = pytest.importorskip("regex")
    pattern = regex.compile(GPT2_PATTERN)
    alphabet = list("ab Z09'  \n\t?.,-") + ["é", "中", "٣", "\u00a0", "\x85", "😀", "s", "ll", "re"]
    rng = random.Random(0)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert bpe.pretokenize(text) == pattern.findall(text), repr(text)


def test_pretokenizer_known_splits():
    assert bpe.pretokenize("I'll add  12+3 ok?\n") == ["I", "'ll", " add", " ", " 12", "+", "3",
                                                       " ok", "?", "\n"]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [it["messages"][0]["content"] + " " + it["reference"]
             for it in tasks.generate(77, 1500)]
    return bpe.train(texts, 600)


def test_tokenizer_round_trips_and_keeps_digits_single(tokenizer):
    assert tokenizer.vocab_size <= 600
    for text in ["What is 369 + 286?", "Ünïcode ✓ 😀\n\t x", "<|im_start|>user\nhi<|im_end|>"]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = tokenizer.encode("12345 678")
    assert len(ids) == 9  # five digits, a space, three digits: no digit is ever merged
    assert tokenizer.encode("<|im_start|><|im_end|><|endoftext|>") == [1, 2, 0]
    # Specials are plain text when not allowed (user content cannot forge them).
    assert bpe.IM_START not in tokenizer.encode("<|im_start|>", allow_special=False)
    # Merges are used: a frequent word is shorter than its bytes.
    assert len(tokenizer.encode(" Reverse")) < len(" Reverse")


def test_tokenizer_training_is_deterministic(tokenizer):
    texts = [it["messages"][0]["content"] for it in tasks.generate(77, 1500)]
    a, b = bpe.train(texts, 500), bpe.train(texts, 500)
    assert a.tokens == b.tokens and a.merges == b.merges


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    """The output folder of one `train_all.sh --smoke` run."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("smoke")
    env = dict(os.environ, OUT=str(out))
    subprocess.run(["bash", os.path.join(ROOT, "tools", "train", "train_all.sh"), "--smoke"],
                   check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)
    return out


def test_smoke_pipeline_writes_loadable_gguf_models(smoke_dir):
    import torch
    pytest.importorskip("gguf")
    tmp_path = smoke_dir
    import model as llama
    import gguf

    for name in ("teacher", "student", "student_hard"):
        path = tmp_path / f"{name}.gguf"
        reader = gguf.GGUFReader(str(path))
        fields = reader.fields

        def text(key):
            f = fields[key]
            return bytes(f.parts[f.data[0]]).decode("utf-8")

        assert text("general.architecture") == "llama"
        assert text("tokenizer.ggml.model") == "gpt2"
        assert text("tokenizer.ggml.pre") == "gpt-2"
        assert "<|im_start|>" in text("tokenizer.chat_template")
        assert len(fields["tokenizer.ggml.tokens"].data) <= 1024
        # The GGUF reads back into exactly the trained model (f32 export in smoke mode).
        from_file, tokens, merges = llama.from_gguf(str(path))
        trained, _ = llama.load(str(tmp_path / f"{name}.pt"))
        tok = bpe.Tokenizer.load(str(tmp_path / "tok.json"))
        assert tokens == tok.tokens and merges == tok.merges
        ids = torch.tensor([tok.encode("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n")])
        assert torch.equal(from_file(ids), trained(ids))
    with open(tmp_path / "tdata.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 32 and all(r["answer"] for r in rows)
    teacher_size = llama.load(str(tmp_path / "teacher.pt"))[0].n_params()
    student_size = llama.load(str(tmp_path / "student.pt"))[0].n_params()
    assert student_size < teacher_size


def test_model_matches_transformers_llama_after_the_gguf_qk_permutation():
    """Our weights are in GGUF llama layout (RoPE on adjacent pairs). Undoing the q/k row
    permutation that GGUF converters apply must give Hugging Face's LlamaForCausalLM exactly,
    which shows the exported files mean to other runtimes what they mean to us."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import model as llama

    torch.manual_seed(0)
    cfg = llama.LlamaConfig(vocab_size=300, n_embd=48, n_layer=2, n_head=4, n_head_kv=2,
                            n_ff=80, n_ctx=64)
    ours = llama.Llama(cfg).eval()
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.n_ff,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_head_kv, rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_theta, max_position_embeddings=cfg.n_ctx, tie_word_embeddings=True)
    hf = transformers.LlamaForCausalLM(hf_cfg).eval()

    def unpermute(w, n_head):  # GGUF row order -> Hugging Face (rotate-half) row order
        return (w.reshape(n_head, cfg.head_dim // 2, 2, w.shape[1]).transpose(1, 2)
                .reshape(w.shape))

    sd = {"model.embed_tokens.weight": ours.tok_embd.weight,
          "model.norm.weight": ours.out_norm.weight, "lm_head.weight": ours.tok_embd.weight}
    for il, b in enumerate(ours.blocks):
        p = f"model.layers.{il}."
        sd.update({p + "input_layernorm.weight": b.attn_norm.weight,
                   p + "post_attention_layernorm.weight": b.ffn_norm.weight,
                   p + "self_attn.q_proj.weight": unpermute(b.wq.weight, cfg.n_head),
                   p + "self_attn.k_proj.weight": unpermute(b.wk.weight, cfg.n_head_kv),
                   p + "self_attn.v_proj.weight": b.wv.weight,
                   p + "self_attn.o_proj.weight": b.wo.weight,
                   p + "mlp.gate_proj.weight": b.w_gate.weight,
                   p + "mlp.up_proj.weight": b.w_up.weight,
                   p + "mlp.down_proj.weight": b.w_down.weight})
    hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=False)
    ids = torch.randint(0, cfg.vocab_size, (2, 40))
    with torch.no_grad():
        diff = (ours(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4


def test_chat_template_renders_like_the_training_prompts():
    import train

    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2 + 3?"}]
    assert train.render_prompt(messages[1:]) == \
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    try:
        import jinja2
    except ImportError:  # the template string itself is checked by the engine's tests
        return
    template = jinja2.Environment().from_string(train.CHAT_TEMPLATE)
    assert template.render(messages=messages, add_generation_prompt=True) == \
        train.render_prompt(messages)


def test_engine_tokenizer_encodes_like_the_training_tokenizer(smoke_dir):
    """The C++ engine reads our GGUF vocabulary (gpt2 model, gpt-2 pre-tokenizer) and must
    produce the very ids the models were trained on."""
    binary = os.environ.get("FRUGAL_BIN")
    if not binary or not os.path.exists(binary):
        pytest.skip("FRUGAL_BIN not set")
    import train

    probe = subprocess.run([binary, "tokenize", "--help"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this frugal has no tokenize command")
    tok = bpe.Tokenizer.load(str(smoke_dir / "tok.json"))
    texts = [train.render_prompt(it["messages"]) + it["reference"] + "<|im_end|>"
             for it in tasks.generate(1234, 60)]
    texts += ["Ünïcode ✓ 😀\n\t x  y   \n\n z's I'll", "  lead", "trail  ", "1,234.5 x  -7"]
    for text in texts:
        out = subprocess.run([binary, "tokenize", "-m", str(smoke_dir / "teacher.gguf"),
                              "--parse-special"], input=text.encode("utf-8"),
                             capture_output=True, check=True).stdout
        assert [int(x) for x in out.split()] == tok.encode(text), repr(text)


BUNDLED = ["frugal-teacher.gguf", "frugal-student.gguf", "frugal-student-hard.gguf"]


@pytest.mark.parametrize("name", BUNDLED)
def test_engine_greedy_answers_equal_pytorch_on_bundled_models(name):
    """CI does not retrain; it checks that the C++ engine's greedy tokens on held-out items
    are PyTorch's, for every model shipped in models/."""
    path = os.path.join(ROOT, "models", name)
    binary = os.environ.get("FRUGAL_BIN")
    if not os.path.exists(path):
        pytest.skip(f"{name} not bundled yet")
    if not binary or subprocess.run([binary, "run", "--help"], capture_output=True).returncode:
        pytest.skip("FRUGAL_BIN has no run command")
    rc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train", "check_engine.py"),
                         "--bin", binary, "--model", path, "--items",
                         os.path.join(ROOT, "data", "heldout.jsonl"), "--compare", "20"],
                        capture_output=True, text=True)
    assert rc.returncode == 0, rc.stdout + rc.stderr


def test_cached_teacher_soft_labels_equal_a_live_forward(tokenizer):
    """Distillation reads the teacher's log-probs computed once (train.teacher_logprobs); they
    must be the teacher's own at each answer position, in the order the loss selects them."""
    import torch
    import torch.nn.functional as F
    import model as llama
    import train

    torch.manual_seed(0)
    teacher = llama.Llama(llama.LlamaConfig(vocab_size=tokenizer.vocab_size, n_embd=32,
                                            n_layer=2, n_head=2, n_head_kv=1, n_ff=64,
                                            n_ctx=128))
    teacher.eval()
    items = tasks.generate(99, 40)
    examples = [train.encode_example(tokenizer, it["messages"], it["reference"]) for it in items]
    cached = train.teacher_logprobs(teacher, examples, 128, batch=7)
    batch = [0, 5, 17, 39]
    ids, labels = train.make_batch([examples[i] for i in batch], 128)
    with torch.no_grad():
        live = F.log_softmax(teacher(ids), -1)[labels != -100]
    stacked = torch.cat([cached[i] for i in batch]).float()
    assert stacked.shape == live.shape
    assert sum(len(examples[i][1]) for i in batch) == live.shape[0]
    assert torch.allclose(stacked, live, atol=2e-2)  # float16 storage


def test_gen_with_the_engine_writes_the_rows_pytorch_writes(frugal_bin, tmp_path):
    """`train.py gen --engine` (the C++ engine answering for the teacher) must write exactly
    the rows the PyTorch path writes: the same answers, right/wrong flags and references."""
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    import model as llama
    teacher_gguf = os.path.join(ROOT, "models", "frugal-teacher.gguf")
    if not os.path.exists(teacher_gguf):
        pytest.skip("no bundled teacher")
    m, tokens, merges = llama.from_gguf(teacher_gguf)
    llama.save(m, str(tmp_path / "teacher.pt"))
    bpe.Tokenizer(tokens, merges).save(str(tmp_path / "tok.json"))
    train_py = os.path.join(ROOT, "tools", "train", "train.py")
    common = ["--tok", str(tmp_path / "tok.json"), "--n", "120", "--seed", "5",
              "--mix", "curriculum"]
    subprocess.run([sys.executable, train_py, "gen", *common, "--teacher",
                    str(tmp_path / "teacher.pt"), "--out", str(tmp_path / "torch.jsonl")],
                   check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, train_py, "gen", *common, "--engine", frugal_bin,
                    "--teacher", teacher_gguf, "--out", str(tmp_path / "engine.jsonl")],
                   check=True, capture_output=True, timeout=300)
    torch_rows = (tmp_path / "torch.jsonl").read_text().splitlines()
    engine_rows = (tmp_path / "engine.jsonl").read_text().splitlines()
    assert len(torch_rows) == 120
    assert engine_rows == torch_rows
    # The curriculum mix is harder than the suite's: the teacher misses some, and those rows
    # carry the reference instead of its answer.
    rows = [json.loads(r) for r in engine_rows]
    wrong = [r for r in rows if not r["teacher_right"]]
    assert wrong and all(r["answer"] == r["reference"] for r in wrong)
