"""Text encoders: tiny (seeded), offline MiniLM default, and the LLM + CLIP-L encoder."""

from __future__ import annotations

import importlib

import json
from pathlib import Path

import pytest
import torch

from vidloom.models.text import (
    TextEmbeddings,
    TinyTextConfig,
    TinyTextEncoder,
    build_text_encoder,
    text_encoder_names,
)
from vidloom.models.text.minilm import bundled_model_dir
from vidloom.platform.weights import MissingWeightsError

PROMPTS = ["A corgi runs on the beach.", "", "neon city street at night with rain and a long reflection " * 3]


# ---------------------------------------------------------------- tiny


def test_tiny_shapes_masks_and_padding() -> None:
    enc = build_text_encoder("tiny")
    out = enc.encode(PROMPTS)
    assert isinstance(out, TextEmbeddings)
    assert out.states.shape == (3, enc.max_length, enc.state_dim) == (3, 32, 32)
    assert out.mask.shape == (3, 32) and out.mask.dtype == torch.long
    assert out.pooled.shape == (3, enc.pooled_dim) == (3, 24)
    # BOS + 6 words + "."; empty prompt keeps BOS; long prompt truncated to max_length
    assert out.mask.sum(1).tolist() == [8, 1, 32]
    assert torch.all(out.mask[:, 0] == 1)
    assert torch.all(out.states[0, 8:] == 0)
    assert torch.isfinite(out.states).all() and torch.isfinite(out.pooled).all()


def test_tiny_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = TinyTextEncoder().encode(PROMPTS)
    assert torch.equal(torch.rand(1), before)  # init drew from a private RNG
    b = build_text_encoder({"name": "tiny"}).encode(PROMPTS)
    assert torch.equal(a.states, b.states) and torch.equal(a.pooled, b.pooled)
    other = TinyTextEncoder(TinyTextConfig(seed=1)).encode(PROMPTS)
    assert not torch.allclose(a.pooled, other.pooled)
    assert not torch.allclose(a.pooled[0], a.pooled[1])
    assert TinyTextEncoder().encoder_id == TinyTextEncoder().encoder_id != TinyTextEncoder(TinyTextConfig(seed=1)).encoder_id


def test_tiny_export_roundtrip(tmp_path: Path) -> None:
    enc = TinyTextEncoder(TinyTextConfig(state_dim=8, pooled_dim=4, num_heads=2))
    with torch.no_grad():
        enc.pool_proj.weight.mul_(2.0)  # "trained" weights differ from the seeded init
    enc.save(tmp_path / "tiny")
    loaded = build_text_encoder(str(tmp_path / "tiny"))
    assert torch.equal(loaded.encode(PROMPTS).pooled, enc.encode(PROMPTS).pooled)
    assert loaded.encoder_id.startswith(enc.encoder_id + "+weights-")


def test_registry_names_and_errors() -> None:
    assert text_encoder_names() == ["llm-clip", "minilm", "tiny"]
    assert build_text_encoder({"name": "tiny", "state_dim": 8, "num_heads": 2}).state_dim == 8
    with pytest.raises(ValueError, match="unknown text encoder"):
        build_text_encoder("t5")
    with pytest.raises(ValueError, match="unknown option"):
        build_text_encoder({"name": "tiny", "width": 3})


# ---------------------------------------------------------------- offline default (MiniLM)

@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("default")


def test_minilm_shapes_masks_and_determinism(minilm) -> None:
    out = minilm.encode(PROMPTS)
    assert out.states.shape == (3, 128, 384) and out.mask.shape == (3, 128) and out.pooled.shape == (3, 384)
    n = out.mask.sum(1)
    assert n[1] == 2  # [CLS] [SEP] for the empty prompt
    assert torch.all(out.states[0, n[0]:] == 0)
    assert torch.allclose(out.pooled.norm(dim=1), torch.ones(3), atol=1e-5)
    again = minilm.encode(PROMPTS)
    assert torch.equal(out.states, again.states) and torch.equal(out.pooled, again.pooled)
    assert minilm.encoder_id.startswith("minilm:all-MiniLM-L6-v2:")


def test_minilm_is_a_pretrained_sentence_encoder(minilm) -> None:
    p = minilm.encode(["a dog runs on the grass", "a puppy is running across a lawn", "a stock market chart"]).pooled
    assert (p[0] @ p[1]) > (p[0] @ p[2]) + 0.2  # paraphrase closer than an unrelated sentence


def test_minilm_matches_sentence_transformers(minilm) -> None:
    st = importlib.import_module("sentence_transformers")
    ref = st.SentenceTransformer(str(bundled_model_dir()), device="cpu")
    ref.max_seq_length = minilm.max_length
    expected = torch.as_tensor(ref.encode(PROMPTS[:2], convert_to_numpy=True))
    assert torch.allclose(minilm.encode(PROMPTS[:2]).pooled, expected, atol=1e-5)


# ---------------------------------------------------------------- LLM + CLIP-L (tiny local weights)


def test_llm_clip_missing_weights_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="text_encoder.llm_path"):
        build_text_encoder("llm-clip")
    with pytest.raises(MissingWeightsError, match="text_encoder.llm_path"):
        build_text_encoder({"name": "hunyuan", "llm_path": str(tmp_path / "absent"), "clip_path": str(tmp_path)})
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="text_encoder.clip_path"):
        build_text_encoder({"name": "llm-clip", "llm_path": str(tmp_path / "llm")})


_WORDS = (
    "a corgi runs on the beach . write detailed description of video covering what shows and its subject "
    "1 2 3 4 5 : each object colour shape size texture count any visible text where objects are relative "
    "to one another actions events their order in time how things move change background lighting style "
    "mood camera angle movement cuts or transitions system user"
).split()


def _tokenizer(folder: Path, specials: list[str], bos: str, eos: str, pad: str, add_eos: bool) -> None:
    tokenizers = importlib.import_module("tokenizers")
    transformers = importlib.import_module("transformers")
    vocab = {tok: i for i, tok in enumerate(["[UNK]", *specials, *dict.fromkeys(_WORDS)])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    single = f"{bos} $A" + (f" {eos}" if add_eos else "")
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single=single, special_tokens=[(t, vocab[t]) for t in {bos, eos}]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token="[UNK]"
    )
    fast.save_pretrained(str(folder))


@pytest.fixture(scope="module")
def tiny_hunyuan_dir(tmp_path_factory) -> Path:
    """A diffusers-style folder with a tiny random Llama and CLIP text model + tokenizers."""
    transformers = importlib.import_module("transformers")
    root = tmp_path_factory.mktemp("hunyuan")
    llm_special = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<pad>"]
    _tokenizer(root / "tokenizer", llm_special, "<|begin_of_text|>", "<|eot_id|>", "<pad>", add_eos=False)
    # EOS id != 2 so CLIP pools at the first EOS (not its legacy argmax-of-ids rule).
    clip_special = ["<|startoftext|>", "<|pad|>", "<|endoftext|>"]
    _tokenizer(root / "tokenizer_2", clip_special, "<|startoftext|>", "<|endoftext|>", "<|endoftext|>", add_eos=True)
    vocab = 1 + len(llm_special) + len(dict.fromkeys(_WORDS))
    torch.manual_seed(0)
    llm = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, pad_token_id=5,
    ))
    llm.save_pretrained(str(root / "text_encoder"))
    clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=vocab - 2, hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=1, eos_token_id=3, pad_token_id=3,
    ))
    clip.save_pretrained(str(root / "text_encoder_2"))
    (root / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoPipeline"}))
    return root


def test_llm_clip_loads_local_weights_and_crops_template(tiny_hunyuan_dir: Path) -> None:
    transformers = importlib.import_module("transformers")
    enc = build_text_encoder({"name": "llm-clip", "llm_path": str(tiny_hunyuan_dir),
                              "clip_path": str(tiny_hunyuan_dir), "max_length": 16})
    prompts = ["A corgi runs on the beach.", "camera"]
    out = enc.encode(prompts)
    assert out.states.shape == (2, 16, 32) and out.mask.shape == (2, 16) and out.pooled.shape == (2, 24)
    # 7 prompt tokens + <|eot_id|> survive the crop; nothing of the instruction does
    assert out.mask.sum(1).tolist() == [8, 2]

    # Independent check of the crop and the layer choice with the raw model and tokenizer.
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_hunyuan_dir / "tokenizer"))
    model = transformers.AutoModel.from_pretrained(str(tiny_hunyuan_dir / "text_encoder"))
    prefix = enc.template.split("{prompt}")[0]
    n_prefix = len(tok(prefix)["input_ids"])
    assert enc.crop_start == n_prefix
    full = tok(enc.template.replace("{prompt}", prompts[0]), return_tensors="pt")
    hs = model(**full, output_hidden_states=True).hidden_states
    assert len(hs) == 5  # embeddings + 4 layers; [-3] is the output of layer 2
    expected = hs[-3][0, n_prefix:]
    assert torch.allclose(out.states[0, :8], expected, atol=1e-5)
    assert not torch.allclose(out.states[0, :8], hs[-1][0, n_prefix:], atol=1e-3)

    clip = transformers.CLIPTextModel.from_pretrained(str(tiny_hunyuan_dir / "text_encoder_2"))
    ctok = transformers.AutoTokenizer.from_pretrained(str(tiny_hunyuan_dir / "tokenizer_2"))
    ref_pooled = clip(**ctok(prompts[:1], return_tensors="pt")).pooler_output
    assert torch.allclose(out.pooled[:1], ref_pooled, atol=1e-5)

    assert "|skip2|L16|" in enc.encoder_id
    again = build_text_encoder({"name": "llm-clip", "llm_path": str(tiny_hunyuan_dir / "text_encoder"),
                                "llm_tokenizer_path": str(tiny_hunyuan_dir / "tokenizer"),
                                "clip_path": str(tiny_hunyuan_dir / "text_encoder_2"),
                                "clip_tokenizer_path": str(tiny_hunyuan_dir / "tokenizer_2"), "max_length": 16})
    assert torch.equal(again.encode(prompts).states, out.states)


def test_local_lm_rewriter_generates_with_tiny_model(tiny_hunyuan_dir: Path, tmp_path: Path) -> None:
    import shutil

    from vidloom.models.rewriter import build_rewriter

    folder = tmp_path / "lm"
    shutil.copytree(tiny_hunyuan_dir / "text_encoder", folder)
    for f in (tiny_hunyuan_dir / "tokenizer").iterdir():
        shutil.copy(f, folder / f.name)
    rw = build_rewriter({"backend": "local", "model_path": str(folder), "max_new_tokens": 5})
    a, b = rw.rewrite("a corgi runs"), rw.rewrite("a corgi runs")
    assert isinstance(a.text, str) and a.text == b.text  # greedy decoding is deterministic
    assert a.backend.startswith("local:") and a.mode == "normal"
