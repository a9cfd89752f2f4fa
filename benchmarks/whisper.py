"""Whisper speed on CPU: soundformers vs faster-whisper (CTranslate2) vs transformers, one run.

    .venv/bin/python benchmarks/whisper.py [--models tiny.en base] [--rounds 3] [--threads 2]

Same weights everywhere: the bundled CTranslate2 checkpoint, loaded by us, by faster-whisper
(float32 and, as a reference line, int8), and by transformers (`WhisperForConditionalGeneration`
filled with our weights renamed to its layout by `convert.hf_state_dict`, tied output
projection). Same input everywhere:
the 30 short fixture utterances (`speech_split/*/*.wav`), log-mel padded as features to 30 s
(faster-whisper's padding), so all systems see identical features; feature extraction is not
timed. Greedy, no timestamps, suppress-blank and the default suppress list.

Reported per system:
- `enc ms`: encoder, one 30 s window (batch 1), best of `--rounds`;
- `tok ms b1` / `tok ms b8`: decoding time given the encoder output, divided by the decoding
  steps (batch 8: a step advances 8 rows), over the 30 files;
- `wall b1` / `wall b8`: encoder + decoding of all 30 files, batch 1 / batch 8 (best round);
- `WER`: word error rate of the batch-1 transcripts (lower-cased, punctuation dropped);
- ratios `rival / ours` for float32 (> 1: we are faster).

The machine may be shared: each measurement keeps the best of `--rounds`.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech_split"
ALIASES = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}


def load_speech() -> tuple[list[Path], list[str], torch.Tensor]:
    import soundfile

    from soundformers.audio.features import whisper_log_mel

    paths, refs = [], []
    for meta in sorted(SPEECH.glob("*/metadata.csv")):
        with open(meta, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                paths.append(meta.parent / row["file_name"])
                refs.append(row["transcription"])
    if not paths:
        raise SystemExit(f"no fixture speech under {SPEECH}")
    audio = [torch.from_numpy(soundfile.read(p, dtype="float32")[0]) for p in paths]
    return paths, refs, whisper_log_mel(audio, pad_mode="features")


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    """Best wall time of `rounds` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    def norm(t: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]", " ", t.lower()).split())

    return jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


class System:
    """One contender: encode a batch of mels, decode a batch of encoder outputs."""

    name: str

    def encode(self, mel: torch.Tensor) -> object:
        raise NotImplementedError

    def decode(self, enc: object, n: int) -> list[list[int]]:
        raise NotImplementedError


class Ours(System):
    def __init__(self, alias: str, dtype: torch.dtype, quantization: str | None = None) -> None:
        from soundformers.models.whisper import DecodingOptions, from_pretrained
        from soundformers.models.whisper.generate import decode

        self.whisper = from_pretrained(alias, dtype=dtype, quantization=quantization)
        multilingual = self.whisper.tokenizer.multilingual
        self.options = DecodingOptions(
            without_timestamps=True, language="en" if multilingual else None
        )
        self._decode = decode
        self.name = f"soundformers {str(dtype).removeprefix('torch.')}"
        if quantization:
            self.name += f" + {quantization}"

    def encode(self, mel):
        with torch.inference_mode():
            return self.whisper.model.encode(mel)

    def decode(self, enc, n):
        w = self.whisper
        results = self._decode(
            w.model, w.tokenizer, None, self.options, config=w.generation_config, encoder_out=enc
        )
        return [list(r.tokens) for r in results]


class FasterWhisper(System):
    def __init__(self, folder: Path, compute_type: str, threads: int, prompt: list[int]) -> None:
        import ctranslate2
        import faster_whisper

        self.ct2 = ctranslate2
        self.model = faster_whisper.WhisperModel(
            str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads
        ).model
        self.prompt = prompt
        self.name = f"faster-whisper {compute_type}"

    def encode(self, mel):
        return self.model.encode(self.ct2.StorageView.from_array(mel.numpy()), to_cpu=True)

    def decode(self, enc, n):
        out = self.model.generate(
            enc, [self.prompt] * n, beam_size=1, max_length=448, suppress_blank=True,
            suppress_tokens=[-1],
        )  # fmt: skip
        return [r.sequences_ids[0] for r in out]


class Transformers(System):
    """transformers' model with our weights; greedy loop of `GenerationMixin.generate`."""

    def __init__(self, ours: Ours, prompt: list[int], suppress: list[int]) -> None:
        import transformers

        from soundformers.models.whisper.convert import hf_config, hf_state_dict

        model, tokenizer = ours.whisper.model, ours.whisper.tokenizer
        config = transformers.WhisperConfig(**hf_config(model.config, tokenizer))
        state = hf_state_dict(model)  # our weights under transformers' names (convert.py)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.hf = transformers.WhisperForConditionalGeneration(config).eval()
        missing, unexpected = self.hf.load_state_dict(state, strict=False)
        if unexpected or missing != ["proj_out.weight"]:
            raise RuntimeError(f"renamed weights do not fit: {missing=} {unexpected=}")
        self.hf.tie_weights()  # proj_out.weight is the token embedding
        self.generate = transformers.GenerationMixin.generate
        self.prompt, self.suppress = prompt, suppress
        self.name = "transformers float32"

    def encode(self, mel):
        with torch.inference_mode():
            return self.hf.model.encoder(mel).last_hidden_state

    def decode(self, enc, n):
        from transformers.modeling_outputs import BaseModelOutput

        eot = self.hf.config.eos_token_id
        prompt = torch.tensor([self.prompt] * n)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.generate(
                self.hf, encoder_outputs=BaseModelOutput(last_hidden_state=enc),
                decoder_input_ids=prompt, max_new_tokens=224, do_sample=False, num_beams=1,
                suppress_tokens=self.suppress, begin_suppress_tokens=[220, eot],
            )  # fmt: skip
        rows = out[:, len(self.prompt) :].tolist()
        return [row[: row.index(eot)] if eot in row else row for row in rows]


def measure(system: System, mel: torch.Tensor, rounds: int) -> dict[str, float]:
    n_files = mel.shape[0]
    enc1 = best_of(rounds, lambda: system.encode(mel[:1]))
    row: dict[str, float] = {"enc ms": enc1 * 1e3}
    for batch in (1, 8):
        batches = [mel[s : s + batch] for s in range(0, n_files, batch)]
        encoded = [system.encode(m) for m in batches]
        tokens: list[list[int]] = []

        def decode_all(encoded=encoded, batches=batches, tokens=tokens):
            tokens.clear()
            for enc, m in zip(encoded, batches):
                tokens.extend(system.decode(enc, m.shape[0]))

        dec = best_of(rounds, decode_all)
        steps = sum(
            max(len(t) for t in tokens[s : s + batch]) + 1 for s in range(0, n_files, batch)
        )
        row[f"tok ms b{batch}"] = dec / steps * 1e3

        def wall(batches=batches):
            out = []
            for m in batches:
                out.extend(system.decode(system.encode(m), m.shape[0]))
            return out

        row[f"wall b{batch}"] = best_of(max(1, rounds - 1), wall)
        if batch == 1:
            row["tokens"] = tokens  # type: ignore[assignment]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en"], choices=sorted(ALIASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="names to skip, e.g. transformers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from soundformers.hub import resolve_model

    paths, refs, mel = load_speech()
    print(f"{len(paths)} files, {args.threads} threads, best of {args.rounds} rounds")
    for model_name in args.models:
        alias = ALIASES[model_name]
        files = resolve_model(alias)
        ours32 = Ours(alias, torch.float32)
        tok = ours32.whisper.tokenizer
        prompt = list(tok.sot_sequence("en" if tok.multilingual else None, timestamps=False))
        systems: list[System] = [
            ours32,
            Ours(alias, torch.bfloat16),
            Ours(alias, torch.bfloat16, "int8"),
        ]
        if len(files.weights) == 1 and "faster-whisper" not in args.skip:
            for compute_type in ("float32", "int8"):
                systems.append(FasterWhisper(files.folder, compute_type, args.threads, prompt))
        if "transformers" not in args.skip:
            suppress = sorted(
                set(ours32.whisper.generation_config.suppress_tokens or tok.non_speech_tokens)
            )
            systems.append(Transformers(ours32, prompt, suppress))

        print(f"\nwhisper {model_name}")
        header = ["enc ms", "tok ms b1", "tok ms b8", "wall b1", "wall b8"]
        print(f"{'system':24}" + "".join(f"{h:>11}" for h in header) + f"{'WER':>8}")
        rows = {}
        for system in systems:
            row = measure(system, mel, args.rounds)
            rows[system.name] = row
            texts = [tok.decode(t) for t in row["tokens"]]  # type: ignore[arg-type]
            cells = "".join(
                f"{row[h]:>11.2f}" if "ms" in h else f"{row[h]:>10.2f}s" for h in header
            )
            print(f"{system.name:24}{cells}{wer(refs, texts):>8.3f}")
        base = rows["soundformers float32"]
        for name, row in rows.items():
            if name.startswith("soundformers"):
                continue
            ratios = "".join(f"{row[h] / base[h]:>11.2f}" for h in header)
            print(f"{name + ' / ours fp32':24}{ratios}")
        bf16 = rows["soundformers bfloat16"]
        print(
            f"{'ours fp32 / ours bf16':24}" + "".join(f"{base[h] / bf16[h]:>11.2f}" for h in header)
        )


if __name__ == "__main__":
    main()
