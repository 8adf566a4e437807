"""Where model weights come from: a local path or the Hugging Face cache, never a download.

Every model-backed component names a setting (e.g. ``curation.ocr.model_dir``) that holds a
weights location. `resolve_weights` turns that value into a local path or raises
`MissingWeightsError` naming the setting, so a user knows exactly what to configure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """Configured weights are not on this machine."""

    def __init__(self, setting: str, value: str | os.PathLike | None, detail: str = ""):
        self.setting = setting
        self.value = value
        where = f"{value!s}" if value else "(not set)"
        msg = (
            f"weights for `{setting}` not found: {where}. Set `{setting}` to a local file or "
            "folder, or to a Hugging Face repo id already in the local cache "
            "(HF_HOME / HF_HUB_CACHE); vidloom never downloads weights at run time."
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


def hf_cache_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """Return the local snapshot folder of `repo_id` in the Hugging Face cache, if present."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # huggingface_hub comes with diffusers/transformers/open_clip
        return None
    try:
        path = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    return Path(path)


def resolve_weights(value: str | os.PathLike | None, setting: str) -> Path:
    """Resolve a configured weights location to an existing local path.

    Accepts an existing file or folder, ``~``-paths, or ``hf://org/name[@revision]`` /
    ``org/name`` looked up in the local Hugging Face cache.
    """
    if value is None or str(value).strip() == "":
        raise MissingWeightsError(setting, value)
    text = str(value)
    path = Path(os.path.expanduser(text))
    if path.exists():
        return path
    repo = text[len("hf://"):] if text.startswith("hf://") else text
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    if repo.count("/") == 1 and not text.startswith(("/", ".", "~")):
        snap = hf_cache_snapshot(repo, revision)
        if snap is not None:
            return snap
        raise MissingWeightsError(setting, value, "not a local path and not in the Hugging Face cache")
    raise MissingWeightsError(setting, value)


def cache_dir(name: str) -> Path:
    """Folder `name` of vidloom's cache of files it derives on this machine (quantized models,
    tool settings): `$VIDLOOM_CACHE_DIR/name`, default `~/.cache/vidloom/name`, made if needed.
    Where that cannot be written (a read-only home in a container) a folder under the temp dir
    stands in: the work still runs, only without a lasting cache."""
    root = os.environ.get("VIDLOOM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vidloom")
    folder = Path(root) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"vidloom-{os.getuid()}" / name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """First `length` hex digits of a file's SHA-256: names the exact weights a result came
    from (e.g. ``dover:<digest>``, ``yolo:<digest>``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]
