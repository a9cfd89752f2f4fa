"""The command line: `soundformers transcribe ...`, `speak`, `convert`. Thin: it parses
arguments, calls a pipeline (or the checkpoint converter) and writes what it returns."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import SoundformersError

log = logging.getLogger("soundformers")


def _transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .audio.io import load_audio
    from .formats import FORMATS, format_result
    from .pipelines import pipeline

    started = time.perf_counter()
    import torch

    asr = pipeline(
        "automatic-speech-recognition",
        model=args.model,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        model_kwargs={"quantization": "int8"} if args.int8 else None,
    )
    loaded = time.perf_counter()
    generate_kwargs = {
        key: value
        for key, value in {
            "language": args.language,
            "task": args.task,
            "beam_size": args.beam_size,
            "initial_prompt": args.initial_prompt,
        }.items()
        if value is not None
    }
    needs_timestamps = args.format in ("srt", "vtt", "tsv") or args.timestamps
    seconds_of_audio = 0.0

    def decoded():  # each input decoded once here, so the closing line knows the audio's length
        nonlocal seconds_of_audio
        for source in args.inputs:
            try:
                samples, rate = load_audio(source, sampling_rate=asr.sampling_rate)
            except SoundformersError:
                yield source  # the pipeline reports the error for this item; the rest go on
                continue
            seconds_of_audio += len(samples) / rate
            yield {"array": samples, "sampling_rate": rate, "path": str(source)}

    results = asr(
        decoded(),
        batch_size=args.batch_size,
        return_timestamps="word" if args.word_timestamps else needs_timestamps,
        long_form=args.long_form,
        generate_kwargs=generate_kwargs,
        errors="return",
    )
    progress = tqdm(
        results, total=len(args.inputs), unit="file", disable=len(args.inputs) < 2 or None
    )
    failed = 0
    for source, result in zip(args.inputs, progress):
        if "error" in result:
            failed += 1
            progress.write(f"error: {result['error']}", file=sys.stderr)
            continue
        text = format_result(result, args.format) if args.format in FORMATS else result["text"]
        if args.output_dir:
            out = Path(args.output_dir) / f"{Path(source).stem}.{args.format}"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            progress.write(f"{source} -> {out}", file=sys.stderr)
        else:
            if len(args.inputs) > 1:
                progress.write(f"==> {source} <==")
            progress.write(text.rstrip("\n") if args.format != "txt" else text.strip())
    wall = time.perf_counter() - loaded
    rtf = wall / seconds_of_audio if seconds_of_audio else float("nan")
    print(
        f"{len(args.inputs) - failed}/{len(args.inputs)} file(s), {seconds_of_audio:.1f} s of audio "
        f"transcribed in {wall:.2f} s (real-time factor {rtf:.3f}); model loaded in "
        f"{loaded - started:.2f} s",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _speak(args: argparse.Namespace) -> int:
    from .audio.output import save_audio
    from .pipelines import pipeline

    if args.file is not None:
        text = Path(args.file).read_text(encoding="utf-8")
    elif args.text is not None:
        text = args.text
    else:
        text = sys.stdin.read()
    speaker = int(args.speaker) if args.speaker and args.speaker.isdigit() else args.speaker
    tts = pipeline("text-to-speech", model=args.voice, device=args.device)
    result = tts(text, length_scale=args.speed, speaker=speaker, seed=args.seed,
                 progress=len(text) > 500)  # fmt: skip
    out = save_audio(args.output, result["audio"], result["sampling_rate"])
    seconds = len(result["audio"]) / result["sampling_rate"]
    print(f"{out}: {seconds:.2f} s at {result['sampling_rate']} Hz", file=sys.stderr)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .models.whisper.convert import convert

    started = time.perf_counter()
    try:
        out = convert(args.src, args.dst, dtype=args.dtype, tokenizer=args.tokenizer)
    except (OSError, ValueError) as e:  # unwritable folder, bad dtype: one line, not a trace
        print(f"error: cannot convert {args.src}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(
        f"{args.src} -> {out} (Hugging Face layout, {args.dtype}) in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `soundformers` command."""
    from .formats import FORMATS

    parser = argparse.ArgumentParser(
        prog="soundformers", description="The transformer library for sound."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("transcribe", help="speech to text (Whisper)")
    t.add_argument("inputs", nargs="+", help="audio files or URLs")
    t.add_argument(
        "--model",
        default=None,
        help="bundled alias (whisper-tiny.en, whisper-base), folder or hub id",
    )
    t.add_argument("--format", default="txt", choices=FORMATS, help="output format (default txt)")
    t.add_argument(
        "--output-dir", "-o", default=None, help="write <input stem>.<format> files here"
    )
    t.add_argument(
        "--timestamps", action="store_true", help="segment timestamps (implied by srt/vtt/tsv)"
    )
    t.add_argument(
        "--word-timestamps", action="store_true", help="one timed chunk (subtitle cue) per word"
    )
    t.add_argument("--long-form", default="sequential", choices=("sequential", "batched"))
    t.add_argument(
        "--language", default=None, help="language code; default: detect (multilingual models)"
    )
    t.add_argument("--task", default=None, choices=("transcribe", "translate"))
    t.add_argument("--beam-size", type=int, default=None)
    t.add_argument("--initial-prompt", default=None)
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--device", default=None)
    t.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="weights and activations (default float32, exact; bfloat16: ~2x faster on CPUs "
        "with bf16 instructions)",
    )
    t.add_argument(
        "--int8", action="store_true", help="decode with int8 weights (bfloat16 activations)"
    )
    t.add_argument("--verbose", "-v", action="store_true", help="print timings to stderr")
    t.set_defaults(run=_transcribe)
    s = commands.add_parser("speak", help="text to speech (VITS: Piper voices, MMS-TTS)")
    s.add_argument("text", nargs="?", default=None, help="text to say (default: --file or stdin)")
    s.add_argument("--file", "-f", default=None, help="read the text from this file")
    s.add_argument("--output", "-o", required=True, help="audio file: .wav, .flac, .ogg, .mp3")
    s.add_argument(
        "--voice", default=None, help="Piper .onnx, MMS-TTS folder or hub id (default: bundled)"
    )
    s.add_argument("--speed", type=float, default=None, help="length scale: > 1 is slower")
    s.add_argument("--speaker", default=None, help="speaker name or id (multi-speaker voices)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--device", default=None)
    s.set_defaults(run=_speak)
    c = commands.add_parser(
        "convert", help="write a Whisper checkpoint (CTranslate2, OpenAI .pt, ...) as Hugging Face"
    )
    c.add_argument("src", help="bundled alias, CTranslate2/transformers folder, OpenAI .pt, hub id")
    c.add_argument("dst", help="output folder (config.json, model.safetensors, tokenizer, ...)")
    c.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    c.add_argument(
        "--tokenizer", default=None, help="folder or hub id of the tokenizer, for a lone .pt file"
    )
    c.set_defaults(run=_convert, error_status=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `soundformers` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        return args.run(args)
    except SoundformersError as e:  # one line, even when the cause spans several
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return getattr(args, "error_status", 2)


if __name__ == "__main__":
    sys.exit(main())
