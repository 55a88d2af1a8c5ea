"""A character tokenizer that needs no download.

Ids 0-4 are the special tokens of GLM's blank infilling, then one id per character seen in the
training text, in sorted order:

====  =========  ==============================================================
id    token      meaning
====  =========  ==============================================================
0     ``[PAD]``  padding; never a target
1     ``[UNK]``  a character not seen when the vocabulary was built
2     ``[MASK]`` one blank in Part A (a whole span is replaced by one of these)
3     ``[sop]``  start of a span in Part B (its input)
4     ``[eop]``  end of a span in Part B (its last target)
====  =========  ==============================================================

In :meth:`CharTokenizer.encode` the literal text ``[MASK]`` becomes the mask id, so a user can
write ``"The [MASK] statement"``; the other specials are never produced from text.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[MASK]", "[sop]", "[eop]")
MASK_TEXT = "[MASK]"


class UnknownCharactersWarning(UserWarning):
    """A prompt holds characters the tokenizer never saw: the model reads them as ``[UNK]``."""


class CharTokenizer:
    """Maps characters to ids, with GLM's special tokens first.

    Args:
        chars: the vocabulary's characters, each a string of length one, without duplicates.

    Raises:
        ValueError: if a character is not a single character or appears twice.

    Example:
        >>> tok = CharTokenizer.from_text("hello world")
        >>> ids = tok.encode("hello [MASK]")
        >>> ids[-1] == tok.mask
        True
        >>> tok.decode(tok.encode("hello"))
        'hello'
    """

    pad = 0
    unk = 1
    mask = 2
    sop = 3
    eop = 4

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(
                    f"CharTokenizer vocabulary entries must be single characters, got {c!r}; "
                    "build it with CharTokenizer.from_text(text)"
                )
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"CharTokenizer vocabulary has duplicate characters {dup!r}")
        self.chars: list[str] = chars
        self._id = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Builds the vocabulary from every distinct character of ``text``.

        Args:
            text: the corpus (training and validation text, so both are covered).

        Raises:
            ValueError: if ``text`` is empty.
        """
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer.from_text needs a non-empty string, e.g. load_corpus()")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included (use it as ``GLMConfig.vocab_size``)."""
        return len(SPECIAL_TOKENS) + len(self.chars)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        """Returns the ids of ``text``; the literal ``[MASK]`` becomes :attr:`mask`.

        Characters outside the vocabulary become :attr:`unk`.
        """
        ids: list[int] = []
        for i, piece in enumerate(text.split(MASK_TEXT)):
            if i:
                ids.append(self.mask)
            ids.extend(self._id.get(c, self.unk) for c in piece)
        return ids

    def unknown(self, text: str) -> tuple[float, list[str]]:
        """The share of ``text``'s characters outside the vocabulary (``[MASK]`` aside) and
        the distinct unknown characters, in order of appearance.

        >>> CharTokenizer.from_text("abc").unknown("ab你好")
        (0.5, ['你', '好'])
        """
        chars = "".join(text.split(MASK_TEXT))
        if not chars:
            return 0.0, []
        missing = [c for c in chars if c not in self._id]
        return len(missing) / len(chars), list(dict.fromkeys(missing))

    def warn_unknown(self, text: str, what: str = "prompt") -> float:
        """Warn (:class:`UnknownCharactersWarning`) when ``text`` holds unknown characters.

        Returns:
            The share of characters that become ``[UNK]`` (0.0 when none, and no warning).
        """
        share, missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(c) for c in missing[:8]) + (", ..." if len(missing) > 8 else "")
            warnings.warn(
                f"{share:.0%} of the {what}'s characters are not in this model's vocabulary of "
                f"{len(self.chars)} characters and become [UNK] ({shown}): the model cannot read "
                "them. The built-in GLMs learned only the English text and Python code of the "
                "pydoc corpus; train one on text in your language (openautoglm.glm.train) to "
                "read it.", UnknownCharactersWarning, stacklevel=4)
        return share

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Returns the text of ``ids``.

        Args:
            ids: token ids (ints or a 1-d tensor).
            skip_special: drop special tokens (``[MASK]`` is kept as its text either way).
        """
        out: list[str] = []
        n_special = len(SPECIAL_TOKENS)
        for i in ids:
            i = int(i)
            if i >= n_special:
                out.append(self.chars[i - n_special])
            elif i == self.mask:
                out.append(MASK_TEXT)
            elif not skip_special:
                out.append(SPECIAL_TOKENS[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_dict` restores."""
        return {"type": "CharTokenizer", "special_tokens": list(SPECIAL_TOKENS),
                "chars": self.chars}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CharTokenizer:
        """Restores a tokenizer from :meth:`to_dict`'s output.

        Raises:
            ValueError: if ``data`` is not a CharTokenizer description of this version.
        """
        if data.get("type") != "CharTokenizer" or "chars" not in data:
            raise ValueError("not a CharTokenizer description: expected the dict of to_dict()")
        if list(data.get("special_tokens", SPECIAL_TOKENS)) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"tokenizer special tokens {data['special_tokens']!r} differ from "
                f"{SPECIAL_TOKENS!r}"
            )
        return cls(data["chars"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes :meth:`to_dict` as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CharTokenizer:
        """Reads a tokenizer written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
