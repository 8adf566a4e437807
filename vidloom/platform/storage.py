"""Finding input videos and opening them, on local disks and object stores alike.

Inputs may be files, folders (searched recursively), glob patterns, list files (``.txt`` /
``.lst``, one input per line, ``#`` comments) or URIs understood by fsspec
(``s3://``, ``gs://``, ``memory://``...). A path that does not exist is kept: the pipeline
reports it as an error row rather than silently dropping it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import IO, Iterable

VIDEO_EXTENSIONS = (
    ".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp",
)
LIST_EXTENSIONS = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")


def is_uri(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _strip_file_scheme(text: str) -> str:
    return text[len("file://"):] if text.startswith("file://") else text


def _is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def _expand_uri(uri: str) -> list[str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    protocol = uri.split("://", 1)[0]

    def as_uri(p: str) -> str:
        return p if "://" in p else f"{protocol}://{p.lstrip('/') if protocol != 'memory' else p}"

    if any(c in path for c in _GLOB_CHARS):
        return sorted(as_uri(p) for p in fs.glob(path) if _is_video_name(p))
    if fs.isdir(path):
        return sorted(as_uri(p) for p in fs.find(path) if _is_video_name(p))
    if path.lower().endswith(LIST_EXTENSIONS) and fs.exists(path):
        with fs.open(path, "rt") as fh:
            return expand_inputs(_list_lines(fh.read()))
    return [uri]


def _list_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _expand_local(text: str) -> list[str]:
    text = os.path.expanduser(_strip_file_scheme(text))
    if any(c in text for c in _GLOB_CHARS):
        return sorted(str(Path(p).resolve()) for p in glob.glob(text, recursive=True) if _is_video_name(p))
    path = Path(text)
    if path.is_dir():
        return sorted(str(p.resolve()) for p in path.rglob("*") if p.is_file() and _is_video_name(p.name))
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        base = path.parent
        items = []
        for line in _list_lines(path.read_text()):
            items.append(line if is_uri(line) or os.path.isabs(line) else str(base / line))
        return expand_inputs(items)
    return [str(path.resolve()) if path.exists() else str(path)]


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Every video source named by `inputs`, in a stable order, each once."""
    seen: dict[str, None] = {}
    for item in inputs:
        for source in (_expand_uri(item) if is_uri(item) else _expand_local(str(item))):
            seen.setdefault(source, None)
    return list(seen)


def open_input(source: str) -> str | IO[bytes]:
    """Something PyAV can open: the path itself for local files, a file object for URIs."""
    if is_uri(source):
        import fsspec

        return fsspec.open(source, "rb").open()
    return _strip_file_scheme(source)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
