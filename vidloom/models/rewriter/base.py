"""The prompt-rewriter interface shared by every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class RewriterError(RuntimeError):
    """A backend could not produce a rewrite (server error after retries, bad reply...)."""


@dataclass
class RewriteResult:
    """One rewrite: ``text`` is the prompt to encode; ``fields`` the caption JSON when known."""

    text: str
    mode: str
    backend: str
    original: str
    fields: dict[str, str] | None = None
    raw: Any = field(default=None, repr=False)  # backend reply, for debugging


class PromptRewriter(ABC):
    """Rewrites user prompts; `backend` names the implementation."""

    backend: str

    @abstractmethod
    def rewrite(self, prompt: str, mode: str = "normal") -> RewriteResult:
        """Rewrite one prompt in ``"normal"`` or ``"master"`` mode."""

    def rewrite_batch(self, prompts: list[str], mode: str = "normal") -> list[RewriteResult]:
        """Rewrite several prompts (sequentially unless a backend batches)."""
        return [self.rewrite(p, mode) for p in prompts]
