"""The latent cache on disk (format ``vidloom-latents/1``) and how to read it without Ray.

::

    LATENTS/
      meta.json                 which VAE (weights digest) and text encoder (encoder_id) made it
      null_text.safetensors     the empty prompt's embedding (text dropout needs it)
      errors.jsonl              the last run's per-row problems (unreadable files, missing captions)
      shards/part-*.parquet     one row per sample, row groups of `ROW_GROUP_ROWS` rows

Tensors are raw little-endian bytes plus a shape: the latent is float16 C×T×H×W, already
multiplied by the VAE's scaling factor; the text states are float16 n×D trimmed to the n valid
tokens; the pooled vector is float32. A shard is complete or absent: each one is written under
a temporary name and renamed, and the shards themselves are the record of finished samples.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

FORMAT = "vidloom-latents/1"
META_FILE = "meta.json"
NULL_TEXT_FILE = "null_text.safetensors"
ERRORS_FILE = "errors.jsonl"
SHARDS_DIR = "shards"
ROW_GROUP_ROWS = 32  # small row groups: a training reader fetches a few rows without the whole file

SHARD_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("clip_id", pa.string()), ("tier", pa.string()), ("kind", pa.string()),
    ("caption", pa.string()), ("caption_missing", pa.bool_()),
    ("latent", pa.binary()), ("latent_shape", pa.list_(pa.int32())),
    ("latent_frames", pa.int32()), ("latent_height", pa.int32()), ("latent_width", pa.int32()),
    ("num_frames", pa.int32()), ("height", pa.int32()), ("width", pa.int32()),
    ("text_states", pa.binary()), ("text_len", pa.int32()), ("pooled", pa.binary()),
    ("source_path", pa.string()),
])
INDEX_COLUMNS = ["sample_id", "tier", "kind", "latent_frames", "latent_height", "latent_width"]


class NotALatentCacheError(FileNotFoundError):
    """The folder is not a latent cache written by `vidloom precompute`."""


# -- tensors <-> bytes -------------------------------------------------------------------------

def tensor_bytes(tensor: torch.Tensor, dtype: torch.dtype) -> bytes:
    """`tensor` as raw little-endian bytes of `dtype` (float16 latents and states, float32 pooled)."""
    array = tensor.detach().to("cpu", dtype).contiguous().numpy()
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def bytes_tensor(data: bytes, dtype: np.dtype, shape: Iterable[int]) -> torch.Tensor:
    """Raw bytes back into a float32 tensor of `shape`."""
    array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(tuple(int(s) for s in shape))
    return torch.from_numpy(array.astype(np.float32))


def decode_sample(row: dict[str, Any]) -> dict[str, Any]:
    """One shard row as tensors: ``latent`` float32 C×T×H×W (already × scaling factor),
    ``text_states`` float32 n×D, ``pooled`` float32 P, plus ids and the caption."""
    n = int(row["text_len"])
    states = np.frombuffer(row["text_states"], dtype=np.dtype("<f2"))
    dim = states.size // n if n else 0
    return {
        "sample_id": row["sample_id"],
        "tier": row["tier"],
        "kind": row["kind"],
        "caption": row["caption"],
        "latent": bytes_tensor(row["latent"], np.float16, row["latent_shape"]),
        "text_states": torch.from_numpy(states.reshape(n, dim).astype(np.float32)),
        "pooled": bytes_tensor(row["pooled"], np.float32, (-1,)),
    }


def read_rows(file: str | os.PathLike, rows: list[int]) -> list[dict[str, Any]]:
    """Rows `rows` (row numbers in `file`, any order) decoded with `decode_sample`, in the
    order asked; only the row groups holding them are read."""
    parquet = pq.ParquetFile(str(file))
    starts, total = [], 0
    for i in range(parquet.num_row_groups):
        starts.append(total)
        total += parquet.metadata.row_group(i).num_rows
    wanted: dict[int, list[int]] = {}
    for r in rows:
        if not 0 <= r < total:
            raise IndexError(f"row {r} out of range: {file} has {total} rows")
        group = int(np.searchsorted(starts, r, side="right")) - 1
        wanted.setdefault(group, []).append(r)
    found: dict[int, dict[str, Any]] = {}
    for group, members in wanted.items():
        table = parquet.read_row_group(group)
        for r in members:
            found[r] = table.slice(r - starts[group], 1).to_pylist()[0]
    return [decode_sample(found[r]) for r in rows]


# -- the folder ------------------------------------------------------------------------------------

def shard_files(root: str | os.PathLike) -> list[str]:
    """Finished shards of the cache at `root` (temporary files excluded), sorted."""
    folder = Path(root) / SHARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.glob("part-*.parquet"))


def finished_ids(root: str | os.PathLike) -> set[str]:
    """Sample ids already in the cache, read from the shards themselves (no side record to drift)."""
    done: set[str] = set()
    for path in shard_files(root):
        done.update(pq.read_table(path, columns=["sample_id"]).column("sample_id").to_pylist())
    return done


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / META_FILE
    if not path.is_file():
        raise NotALatentCacheError(f"{root} is not a latent cache: no {META_FILE} (make one with `vidloom precompute`)")
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise NotALatentCacheError(f"{path} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT:
        raise NotALatentCacheError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
    for key in ("vae", "text_encoder"):
        if not isinstance(meta.get(key), dict):
            raise NotALatentCacheError(f"{path}: the {key!r} block is missing")
    return meta


def meta_mismatches(meta: dict[str, Any], vae_digest: str | None, encoder_id: str | None) -> list[str]:
    """What differs between a cache's meta and the VAE digest / text encoder id asked for."""
    problems = []
    have_vae, have_text = meta["vae"].get("digest"), meta["text_encoder"].get("encoder_id")
    if vae_digest is not None and vae_digest != have_vae:
        problems.append(f"VAE digest {have_vae!r} (from {meta['vae'].get('source')!r}), not {vae_digest!r}")
    if encoder_id is not None and encoder_id != have_text:
        problems.append(f"text encoder {have_text!r}, not {encoder_id!r}")
    return problems


class LatentCache:
    """A finished or growing latent cache: its meta, its shards and a light index of them."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta
        self.files = shard_files(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "LatentCache":
        """Open the cache at `path`; `NotALatentCacheError` if meta.json is missing or wrong."""
        path = Path(path)
        return cls(path, read_meta(path))

    def index(self) -> pa.Table:
        """One row per sample: ``sample_id, tier, kind, latent_frames, latent_height,
        latent_width, file, row`` (only those columns are read from the shards)."""
        parts = []
        for file in self.files:
            table = pq.read_table(file, columns=INDEX_COLUMNS)
            n = table.num_rows
            table = table.append_column("file", pa.array([file] * n, type=pa.string()))
            parts.append(table.append_column("row", pa.array(np.arange(n, dtype=np.int64))))
        if not parts:
            schema = pa.schema([SHARD_SCHEMA.field(c) for c in INDEX_COLUMNS] + [("file", pa.string()), ("row", pa.int64())])
            return schema.empty_table()
        return pa.concat_tables(parts)

    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty prompt's (states n×D, pooled P), float32."""
        from safetensors.torch import load_file

        tensors = load_file(str(self.path / NULL_TEXT_FILE))
        return tensors["states"].float(), tensors["pooled"].float()

    def check(self, vae_digest: str | None, encoder_id: str | None) -> None:
        """Raise ValueError when the cache was made with another VAE or text encoder than asked."""
        problems = meta_mismatches(self.meta, vae_digest, encoder_id)
        if problems:
            raise ValueError(
                f"latent cache {self.path} was made with " + "; ".join(problems)
                + ": precompute it again with this VAE and text encoder, or configure the ones it was made with"
            )

    def __len__(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def __repr__(self) -> str:
        return f"LatentCache({str(self.path)!r}, {len(self.files)} shards)"


def write_shard(root: str | os.PathLike, name: str, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as ``shards/<name>``: under a temporary name first, then renamed, so a
    reader (or a resumed run) sees the whole shard or nothing."""
    folder = Path(root) / SHARDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{k: r.get(k) for k in SHARD_SCHEMA.names} for r in rows], schema=SHARD_SCHEMA)
    final = folder / name
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def clear_temporaries(root: str | os.PathLike) -> None:
    """Drop the half-written shards a killed run left behind."""
    folder = Path(root) / SHARDS_DIR
    if folder.is_dir():
        for tmp in folder.glob(".part-*.tmp-*"):
            tmp.unlink(missing_ok=True)
