"""A word n-gram language model read from an ARPA file (the text format KenLM and SRILM write).

Scores follow the ARPA back-off rule: P(w | h) = p(h, w) if that n-gram is listed, else
backoff(h) * P(w | h minus its oldest word). Everything is log10, as in the file.

    >>> lm = ArpaLM.from_file("3gram.arpa")
    >>> state = lm.begin_state()                      # ("<s>",)
    >>> log10_p, state = lm.score(state, "hello")
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from ..errors import SoundformersError

__all__ = ["ArpaLM", "ArpaError"]

_SECTION = re.compile(r"^\\(\d+)-grams:\s*$")


class ArpaError(SoundformersError, ValueError):
    """An ARPA file could not be parsed; the message names the file and line."""


class ArpaLM:
    """Back-off n-gram model.

    Args:
        ngrams: per order n (1-based index n - 1), {words tuple: (log10 prob, log10 backoff)}.
    """

    def __init__(self, ngrams: list[dict[tuple[str, ...], tuple[float, float]]]) -> None:
        if not ngrams or not ngrams[0]:
            raise ArpaError("an ARPA model needs at least one unigram")
        self.order = len(ngrams)
        self.ngrams = ngrams
        self.vocabulary = frozenset(w for (w,) in ngrams[0])
        unk = ngrams[0].get(("<unk>",))
        self.unk_log10 = unk[0] if unk else -100.0
        self._cache: dict[tuple[tuple[str, ...], str], tuple[float, tuple[str, ...]]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> ArpaLM:
        """Parse an `.arpa` (or `.arpa.gz`) file."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
                return cls.from_lines(f, str(path))
        except OSError as e:
            raise ArpaError(f"cannot read the ARPA file {path}: {e}") from e

    @classmethod
    def from_lines(cls, lines, source: str = "<arpa>") -> ArpaLM:
        """Parse ARPA text given as an iterable of lines."""
        counts: dict[int, int] = {}
        ngrams: list[dict[tuple[str, ...], tuple[float, float]]] = []
        order = 0  # section being read; 0 = header
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            section = _SECTION.match(line)
            if section:
                order = int(section.group(1))
                while len(ngrams) < order:
                    ngrams.append({})
                continue
            if order == 0:
                if line.startswith("ngram "):
                    n, _, count = line[6:].partition("=")
                    counts[int(n)] = int(count)
                continue
            fields = line.split()
            if len(fields) not in (order + 1, order + 2):
                raise ArpaError(
                    f"{source}:{number}: expected log10 prob, {order} words and an optional "
                    f"backoff in a {order}-gram line, got {line!r}"
                )
            try:
                prob = float(fields[0])
                backoff = float(fields[order + 1]) if len(fields) == order + 2 else 0.0
            except ValueError as e:
                raise ArpaError(f"{source}:{number}: not a number in {line!r}") from e
            ngrams[order - 1][tuple(fields[1 : order + 1])] = (prob, backoff)
        for n, count in counts.items():
            found = len(ngrams[n - 1]) if n <= len(ngrams) else 0
            if found != count:
                raise ArpaError(f"{source}: the header announces {count} {n}-grams, found {found}")
        return cls(ngrams)

    def begin_state(self) -> tuple[str, ...]:
        """The context at the start of a sentence."""
        return ("<s>",)

    def log10_prob(self, context: tuple[str, ...], word: str) -> float:
        """log10 P(word | context) with back-off; unknown words get the <unk> probability."""
        if (word,) not in self.ngrams[0]:
            word = "<unk>"
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        backoff = 0.0
        for start in range(len(context) + 1):
            history = context[start:]
            entry = self.ngrams[len(history)].get((*history, word))
            if entry is not None:
                return backoff + entry[0]
            if history:
                backoff += self.ngrams[len(history) - 1].get(history, (0.0, 0.0))[1]
        return self.unk_log10  # only for "<unk>" absent from the model

    def score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """(log10 P(word | state), the state after it). Cached."""
        key = (state, word)
        hit = self._cache.get(key)
        if hit is None:
            new_state = (*state, word)[-(self.order - 1) :] if self.order > 1 else ()
            hit = (self.log10_prob(state, word), new_state)
            self._cache[key] = hit
        return hit

    def sentence_log10_prob(self, words: list[str], *, bos: bool = True, eos: bool = True) -> float:
        """Total log10 probability of a word sequence (with <s> ... </s> by default)."""
        state: tuple[str, ...] = self.begin_state() if bos else ()
        total = 0.0
        for word in [*words, "</s>"] if eos else words:
            p, state = self.score(state, word)
            total += p
        return total
