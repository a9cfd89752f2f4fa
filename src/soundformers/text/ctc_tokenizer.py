"""Character vocabularies of CTC models (transformers' `Wav2Vec2CTCTokenizer` files).

`vocab.json` maps each token (mostly single characters) to its id; the word delimiter ("|")
stands for a space, and the pad token ("<pad>") is the CTC blank.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["CTCTokenizer"]


class CTCTokenizer:
    """Maps CTC token ids to text and back.

    Args:
        vocab: token -> id.
        word_delimiter: the token that separates words ("|").
        blank: the CTC blank token (the pad token, "<pad>").
        unk: the unknown token, used by `encode` for characters outside the vocabulary.
        do_lower_case: `encode` lower-cases the text first (else it tries the text's case, then
            upper case, then lower case for each character).
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        word_delimiter: str = "|",
        blank: str = "<pad>",
        unk: str | None = "<unk>",
        do_lower_case: bool = False,
    ) -> None:
        self.vocab = dict(vocab)
        self.tokens = {i: t for t, i in self.vocab.items()}
        if blank not in self.vocab:
            raise CheckpointError(f"the vocabulary has no blank/pad token {blank!r}")
        self.blank_id = self.vocab[blank]
        self.word_delimiter = word_delimiter
        self.word_delimiter_id = self.vocab.get(word_delimiter)
        self.unk_id = self.vocab.get(unk) if unk else None
        self.do_lower_case = do_lower_case

    @classmethod
    def from_folder(cls, folder: str | Path) -> CTCTokenizer:
        """Read `vocab.json` (+ `tokenizer_config.json` if present) from a model folder."""
        folder = Path(folder)
        path = folder / "vocab.json"
        try:
            vocab = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(
                f"cannot read the CTC vocabulary {path}: {e}. A CTC model folder needs the "
                "vocab.json it was trained with."
            ) from e
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise CheckpointError(
                f"{path} is not a flat token -> id mapping (multi-language vocabularies with a "
                "target language are not supported)"
            )
        config_path = folder / "tokenizer_config.json"
        config = (
            json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        )

        def token(key: str, default: str | None) -> str | None:
            value = config.get(key, default)
            return value.get("content") if isinstance(value, dict) else value

        return cls(
            vocab,
            word_delimiter=token("word_delimiter_token", "|") or "|",
            blank=token("pad_token", "<pad>") or "<pad>",
            unk=token("unk_token", "<unk>"),
            do_lower_case=bool(config.get("do_lower_case", False)),
        )

    def __len__(self) -> int:
        return len(self.vocab)

    def token_strings(self) -> list[str]:
        """Each id's text as it appears in a transcript (the delimiter as " ", blank as "")."""
        out = []
        for i in range(max(self.tokens) + 1):
            t = self.tokens.get(i, "")
            out.append(" " if i == self.word_delimiter_id else "" if i == self.blank_id else t)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Collapsed token ids (no repeats-to-merge, blanks allowed) -> text, words separated by
        single spaces."""
        pieces = [self.tokens.get(int(i), "") for i in ids if int(i) != self.blank_id]
        text = "".join(" " if p == self.word_delimiter else p for p in pieces)
        return " ".join(text.split())

    def encode(self, text: str) -> list[int]:
        """Text -> ids, one per character; spaces become the word delimiter.

        Raises:
            ValueError: a character is not in the vocabulary and there is no unknown token.
        """
        if self.do_lower_case:
            text = text.lower()
        ids = []
        for word_index, word in enumerate(text.split()):
            if word_index and self.word_delimiter_id is not None:
                ids.append(self.word_delimiter_id)
            for ch in word:
                for candidate in (ch, ch.upper(), ch.lower()):
                    if candidate in self.vocab:
                        ids.append(self.vocab[candidate])
                        break
                else:
                    if self.unk_id is None:
                        raise ValueError(f"character {ch!r} is not in the CTC vocabulary")
                    ids.append(self.unk_id)
        return ids
