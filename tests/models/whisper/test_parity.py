"""Parity with transformers' WhisperForConditionalGeneration on tiny random checkpoints.

The same weights reach our model through each layout we read (transformers safetensors, OpenAI
.pt, CTranslate2 model.bin written by ctranslate2's own converter); outputs must match.
"""

from __future__ import annotations

import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.hub import resolve_model
from soundformers.models.whisper.convert import HF_TABLE, convert_state_dict, load_weights
from soundformers.models.whisper.generate import DecodingOptions, decode
from soundformers.models.whisper.load import load_model
from soundformers.text.whisper_tokenizer import WhisperTokenizer

ATOL = 1e-4


def _mel(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, 3000, generator=g)


def _tokenizer(multilingual: bool) -> WhisperTokenizer:
    name = "whisper-base" if multilingual else "whisper-tiny.en"
    try:
        folder = resolve_model(name).folder
    except Exception as e:  # the bundled packages are a test extra
        pytest.skip(f"{name} tokenizer not installed: {e}")
    return WhisperTokenizer.from_folder(folder)


@pytest.fixture(params=["multilingual", "english"])
def tiny(request, tiny_multilingual, tiny_english):
    return tiny_multilingual if request.param == "multilingual" else tiny_english


def test_encoder_and_logits_match_transformers(tiny):
    ours = load_model(tiny.folder).model
    mel = _mel(2)
    tokens = torch.randint(
        0, ours.config.n_vocab, (2, 9), generator=torch.Generator().manual_seed(1)
    )
    with torch.inference_mode():
        hf_enc = tiny.hf.model.encoder(mel).last_hidden_state
        hf_logits = tiny.hf(input_features=mel, decoder_input_ids=tokens).logits
        enc = ours.encode(mel)
        torch.testing.assert_close(enc, hf_enc, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours(mel, tokens), hf_logits, atol=ATOL, rtol=0)

        # the cached step path, fed in uneven pieces, gives the same logits
        cross_kv, cache = ours.cross_kv(enc), ours.new_cache(2, max_len=16)
        pieces = [(0, 4), (4, 5), (5, 7), (7, 9)]
        stepped = [
            ours.decode_step(tokens[:, a:b], cross_kv, cache, torch.arange(a, b)) for a, b in pieces
        ]
        torch.testing.assert_close(torch.cat(stepped, dim=1), hf_logits, atol=ATOL, rtol=0)


def _timestamp_ids(tiny) -> list[int]:
    eot = 50257 if tiny.multilingual else 50256
    return list(range(eot + 107, tiny.hf.config.vocab_size))


def _hf_generate(tiny, mel, timestamps: bool, max_new_tokens: int) -> list[list[int]]:
    kwargs = {"language": "en", "task": "transcribe"} if tiny.multilingual else {}
    if not timestamps:  # else a timestamp token sends transformers into its long-form loop
        kwargs["suppress_tokens"] = _timestamp_ids(tiny)
    out = tiny.hf.generate(
        mel,
        return_timestamps=timestamps,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        **kwargs,
    )
    seqs = out.sequences if hasattr(out, "sequences") else out
    return seqs.tolist()


def _ours(tiny, mel, timestamps: bool, max_new_tokens: int) -> list[list[int]]:
    model = load_model(tiny.folder).model
    options = DecodingOptions(
        language="en" if tiny.multilingual else None,
        without_timestamps=not timestamps,
        # the random checkpoint's generation config suppresses nothing
        suppress_tokens=None if timestamps else _timestamp_ids(tiny),
        suppress_blank=False,
        sample_len=max_new_tokens,
    )
    results = decode(model, _tokenizer(tiny.multilingual), mel, options)
    return [list(r.tokens) for r in results]


def test_greedy_tokens_equal_transformers_generate(tiny):
    mel = _mel(3, seed=2)
    eot = 50257 if tiny.multilingual else 50256
    with torch.inference_mode():
        theirs = _hf_generate(tiny, mel, timestamps=False, max_new_tokens=24)
    ours = _ours(tiny, mel, timestamps=False, max_new_tokens=24)
    for mine, ref in zip(ours, theirs):
        ref = [t for t in ref if t != eot]  # transformers pads finished rows with eot
        assert mine == ref


def test_greedy_with_timestamps_equals_transformers_first_window(tiny):
    """transformers re-decodes from the last timestamp pair (its long-form loop), so compare the
    tokens up to and including our last closed pair of timestamps."""
    mel = _mel(3, seed=3)
    ts_begin = (50257 if tiny.multilingual else 50256) + 107
    with torch.inference_mode():
        theirs = _hf_generate(tiny, mel, timestamps=True, max_new_tokens=30)
    ours = _ours(tiny, mel, timestamps=True, max_new_tokens=30)
    compared = 0
    for mine, ref in zip(ours, theirs):
        pairs = [
            i + 1 for i in range(1, len(mine)) if mine[i] >= ts_begin and mine[i - 1] >= ts_begin
        ]
        cut = pairs[-1] if pairs else len(mine)
        assert mine[0] >= ts_begin  # a window starts with a timestamp
        assert ref[:cut] == mine[:cut]
        compared += cut
    assert compared > 10


def test_openai_pt_loads_to_the_same_model(tiny, tmp_path):
    ours = load_model(tiny.folder).model
    c = ours.config
    dims = {name: getattr(c, name) for name in c.__dataclass_fields__}
    # our names are OpenAI's: the state dict in OpenAI layout is ours, plus dims
    path = tmp_path / "tiny.pt"
    torch.save({"dims": dims, "model_state_dict": ours.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.layout == "openai" and loaded.model.config == c
    mel, tokens = _mel(1), torch.tensor([[c.n_vocab - 1, 5, 7]])
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(mel, tokens), ours(mel, tokens), atol=0, rtol=0)


@pytest.mark.parametrize("quantization", ["float32", "float16"])
def test_ctranslate2_model_bin_loads_to_the_same_model(tiny_multilingual, tmp_path, quantization):
    converters = pytest.importorskip("ctranslate2.converters")
    transformers = pytest.importorskip("transformers")
    tokenizer_json = _tokenizer(True)  # skips when the bundled tokenizer is absent
    del tokenizer_json
    src = tmp_path / "hf"
    tiny_multilingual.hf.save_pretrained(src)
    folder = resolve_model("whisper-base").folder
    transformers.WhisperTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json")
    ).save_pretrained(src)
    out = tmp_path / "ct2"
    converters.TransformersConverter(str(src)).convert(str(out), quantization=quantization)

    loaded = load_model(out)
    assert loaded.layout == "ctranslate2"
    mel, tokens = _mel(1), torch.tensor([[50258, 50259, 50359, 400, 401]])
    with torch.inference_mode():
        reference = tiny_multilingual.hf(input_features=mel, decoder_input_ids=tokens).logits
        logits = loaded.model(mel, tokens)
    atol = ATOL if quantization == "float32" else 0.05  # float16-rounded weights
    torch.testing.assert_close(logits, reference, atol=atol, rtol=0)


def test_coverage_is_checked_both_ways(tiny_english):
    hf_state = tiny_english.hf.state_dict()
    config = load_model(tiny_english.folder).model.config

    missing = dict(hf_state)
    del missing["model.decoder.layers.1.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing \[decoder.blocks.1.mlp.2.bias\]"):
        load_weights(config, convert_state_dict(missing, HF_TABLE, source="t"), source="t")

    extra = dict(hf_state)
    extra["model.decoder.layers.0.self_attn.rotary.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="rotary"):
        convert_state_dict(extra, HF_TABLE, source="t")

    with pytest.raises(CheckpointError, match="shape"):
        shapes = convert_state_dict(hf_state, HF_TABLE, source="t")
        shapes["decoder.ln.weight"] = torch.zeros(3)
        load_weights(config, shapes, source="t")


def test_dtype_and_meta_free_loading(tiny_english):
    model = load_model(tiny_english.folder, dtype=torch.bfloat16).model
    tensors = list(model.parameters()) + list(model.buffers())
    assert all(t.dtype == torch.bfloat16 and t.device.type == "cpu" for t in tensors)
    with torch.inference_mode():
        assert model.encode(_mel(1)).dtype == torch.bfloat16


def test_encode_rejects_wrong_frames(tiny_english):
    model = load_model(tiny_english.folder).model
    with pytest.raises(ValueError, match=r"\(batch, 80, 3000\)"):
        model.encode(torch.zeros(1, 80, 2000))
