"""WebDataset shards: plain tar files ``shard-000000.tar`` ... holding ``<key>.mp4`` (or
``.jpg``) and ``<key>.json`` for each sample, consecutive members sharing a key, so that
`webdataset`, `torchdata` or plain `tarfile` can stream them.

A shard holds samples in manifest order until the next one would push it past
`max_bytes` (counted as tar bytes: 512-byte headers, contents padded to 512 bytes, the
end-of-archive blocks and the final 10 KiB record padding); a sample larger than the limit
gets a shard of its own. Shards are rewritten only when their planned content changed
(``index.json`` records each shard's keys, file sizes and JSON digests), each one under a
temporary name, then renamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from vidloom.platform.storage import atomic_write_bytes

_BLOCK = 512
_RECORD = 10240


def _padded(size: int) -> int:
    return _BLOCK + (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _tar_size(payload: int) -> int:
    total = payload + 2 * _BLOCK
    return (total + _RECORD - 1) // _RECORD * _RECORD


def plan_shards(samples: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Split samples (each with ``key``, ``file``, ``ext``, ``meta``) into shards."""
    shards: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for sample in samples:
        size = _padded(Path(sample["file"]).stat().st_size) + _padded(len(_meta_bytes(sample["meta"])))
        if current and _tar_size(used + size) > max_bytes:
            shards.append(current)
            current, used = [], 0
        current.append(sample)
        used += size
    if current:
        shards.append(current)
    return shards


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _signature(shard: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [s["key"], s["ext"], Path(s["file"]).stat().st_size, hashlib.sha1(_meta_bytes(s["meta"])).hexdigest()]
        for s in shard
    ]


def write_shards(out_dir: str | Path, samples: list[dict[str, Any]], max_bytes: int) -> list[str]:
    """Write the shards of `samples` into `out_dir`; returns their file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    old = json.loads(index_path.read_text()) if index_path.is_file() else {}
    plan = plan_shards(samples, max_bytes)
    names, index = [], {}
    for i, shard in enumerate(plan):
        name = f"shard-{i:06d}.tar"
        sig = _signature(shard)
        names.append(name)
        index[name] = sig
        if old.get(name) == sig and (out_dir / name).is_file():
            continue  # same samples, same bytes: keep the shard
        tmp = out_dir / f".{name}.tmp-{os.getpid()}"
        with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for s in shard:
                _add(tar, f"{s['key']}.{s['ext']}", Path(s["file"]).read_bytes())
                _add(tar, f"{s['key']}.json", _meta_bytes(s["meta"]))
        os.replace(tmp, out_dir / name)
    for stale in out_dir.glob("shard-*.tar"):
        if stale.name not in index:
            stale.unlink()
    atomic_write_bytes(index_path, json.dumps(index, indent=1).encode())
    return names
