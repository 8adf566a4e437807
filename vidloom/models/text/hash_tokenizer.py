"""A vocabulary-free, deterministic tokenizer: words hashed into a fixed id range.

Used by the `tiny` encoder so tests and toy trainings need no tokenizer files. blake2b (not
Python's salted ``hash``) makes ids identical across processes and machines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import torch

PAD_ID = 0
BOS_ID = 1  # always present, so even an empty prompt has one attendable token
_FIRST_WORD_ID = 2
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class HashTokenizer:
    """Lower-cases, splits into words/punctuation, maps each to ``2 + blake2b(w) mod (V-2)``."""

    def __init__(self, vocab_size: int = 4096, max_length: int = 32):
        if vocab_size <= _FIRST_WORD_ID:
            raise ValueError(f"vocab_size must be > {_FIRST_WORD_ID}")
        if max_length < 1:
            raise ValueError("max_length must be >= 1")
        self.vocab_size = vocab_size
        self.max_length = max_length

    def token_id(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        return _FIRST_WORD_ID + int.from_bytes(digest, "little") % (self.vocab_size - _FIRST_WORD_ID)

    def tokenize(self, text: str) -> list[int]:
        """Ids for one text: BOS then word ids, truncated to `max_length` (no padding)."""
        ids = [BOS_ID] + [self.token_id(w) for w in _WORD.findall(text.lower())]
        return ids[: self.max_length]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(input_ids, attention_mask)``, both B×max_length int64."""
        ids = torch.full((len(texts), self.max_length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(texts), self.max_length), dtype=torch.long)
        for row, text in enumerate(texts):
            toks = self.tokenize(text)
            ids[row, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            mask[row, : len(toks)] = 1
        return ids, mask
