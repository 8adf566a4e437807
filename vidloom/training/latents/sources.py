"""What a precompute run encodes: one record per sample, listed from its inputs without decoding.

An input is one of:

* a curation output folder (``DATA/tiers/<tier>/manifest.parquet`` and its clips and stills,
  written by `vidloom export`), or one tier folder of it;
* a bring-your-own dataset (the layout finetrainers and Open-Sora users keep): a CSV or JSONL
  file of (path, caption), or a folder holding ``captions.csv`` / ``captions.jsonl`` /
  ``metadata.csv`` / ``metadata.jsonl``, or a plain folder of videos and images whose captions
  sit beside them in ``<name>.txt``. Paths are relative to the table's folder. Column names:
  ``path`` / ``video`` / ``image`` / ``file`` / ``file_name`` and ``caption`` / ``text`` /
  ``prompt``.

A row that cannot be read as a sample (no path, a malformed JSON line, a repeated path) becomes
a record with ``error`` set, reported per row like a file that fails to decode; a missing
caption is not an error: the sample is encoded with the empty prompt and flagged. `caption`
is the text the encoder gets (curation's structured captions flattened by `caption_to_prompt`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from vidloom.platform.caption_schema import caption_to_prompt, extract_json_object, normalize_caption
from vidloom.platform.config import ConfigError
from vidloom.platform.ids import video_id
from vidloom.platform.storage import VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
CAPTION_TABLES = ("captions.csv", "captions.jsonl", "metadata.csv", "metadata.jsonl")
PATH_COLUMNS = ("path", "video", "image", "file", "file_name", "filename", "video_path", "image_path", "media")
CAPTION_COLUMNS = ("caption", "text", "prompt", "description")
BYOD_TIER = "byod"


@dataclass
class SampleRecord:
    """One sample to encode (or a row that failed before decoding, with `error` set)."""

    sample_id: str
    clip_id: str
    tier: str
    kind: str  # "video" | "image"
    caption: str
    caption_missing: bool
    source_path: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def media_kind(path: str) -> str:
    return "image" if path.lower().endswith(IMAGE_EXTENSIONS) else "video"


def _caption(value: Any) -> tuple[str, bool]:
    """(prompt, missing): a structured caption (curation's JSON object) is flattened with
    `caption_to_prompt`, as inference flattens a rewritten prompt; plain text is kept; null,
    NaN and blank captions become the empty prompt."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", True
    text = str(value).strip()
    if text.startswith("{") and (obj := extract_json_object(text)) is not None:
        text = caption_to_prompt(normalize_caption(obj)).strip()
    return text, not text


# -- curated tiers -----------------------------------------------------------------------------

def _tier_folders(data: Path) -> dict[str, Path] | None:
    """Tier name -> folder of a curation output (or of one tier folder); None if `data` is neither."""
    if (data / "manifest.parquet").is_file() and data.parent.name == "tiers":
        return {data.name: data}
    root = data / "tiers"
    if not root.is_dir():
        return None
    found = {p.parent.name: p.parent for p in root.glob("*/manifest.parquet")}
    if not found:
        return None
    order: list[str] = []
    defined = root / "tiers.yaml"  # the export's resolved config keeps the chain order
    if defined.is_file():
        spec = yaml.safe_load(defined.read_text()) or {}
        order = [*(spec.get("tiers") or {}), *(spec.get("image_sets") or {})]
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _tier_records(tier: str, folder: Path) -> list[SampleRecord]:
    table = pq.read_table(folder / "manifest.parquet", columns=["clip_id", "path", "caption"])
    records = []
    for row in table.to_pylist():
        caption, missing = _caption(row["caption"])
        path = folder / row["path"]
        records.append(SampleRecord(
            sample_id=f"{tier}/{row['clip_id']}", clip_id=row["clip_id"], tier=tier, kind=media_kind(row["path"]),
            caption=caption, caption_missing=missing, source_path=str(path),
        ))
    return records


# -- bring your own data -----------------------------------------------------------------------

def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[w] for w in wanted if w in lower), None)


def _table_rows(table: Path) -> tuple[list[tuple[int, dict[str, Any] | None, str | None]], list[str]]:
    """(line number, row or None, why unreadable) for each row, and the column names seen."""
    rows: list[tuple[int, dict[str, Any] | None, str | None]] = []
    columns: list[str] = []
    if table.suffix.lower() == ".csv":
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            for row in reader:
                rows.append((reader.line_num, row, None))
        return rows, columns
    for n, line in enumerate(table.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            rows.append((n, None, f"line {n} is not valid JSON: {exc}"))
            continue
        if not isinstance(row, dict):
            rows.append((n, None, f"line {n} is not a JSON object"))
            continue
        rows.append((n, row, None))
        columns.extend(k for k in row if k not in columns)
    return rows, columns


def _byod_record(path: Path, caption_value: Any) -> SampleRecord:
    source = str(path.resolve())
    caption, missing = _caption(caption_value)
    cid = video_id(source)
    return SampleRecord(
        sample_id=f"{BYOD_TIER}/{cid}", clip_id=cid, tier=BYOD_TIER, kind=media_kind(source),
        caption=caption, caption_missing=missing, source_path=source,
    )


def _table_records(table: Path) -> list[SampleRecord]:
    rows, columns = _table_rows(table)
    path_col, caption_col = _pick(columns, PATH_COLUMNS), _pick(columns, CAPTION_COLUMNS)
    if rows and path_col is None:
        raise ConfigError(
            f"{table}: no path column among {columns}; name it one of {list(PATH_COLUMNS)}"
        )
    records, seen = [], {}
    for line, row, problem in rows:
        where = f"{table.name}:{line}"
        raw = (row or {}).get(path_col) if path_col else None
        if problem is None and (raw is None or not str(raw).strip()):
            problem = f"line {line} has no {path_col!r}"
        if problem is not None:
            records.append(SampleRecord(
                sample_id=f"{BYOD_TIER}/{where}", clip_id="", tier=BYOD_TIER, kind="", caption="",
                caption_missing=True, source_path=str(table), error=problem,
            ))
            continue
        path = Path(str(raw).strip()).expanduser()
        record = _byod_record(path if path.is_absolute() else table.parent / path, row.get(caption_col) if caption_col else None)
        if record.sample_id in seen:
            record.error = f"line {line} repeats the path of line {seen[record.sample_id]}; encoded once"
            record.sample_id = f"{BYOD_TIER}/{where}"
        else:
            seen[record.sample_id] = line
        records.append(record)
    return records


def _folder_records(folder: Path) -> list[SampleRecord]:
    """Every video and image under `folder`, captioned by a ``<name>.txt`` beside it if any."""
    records = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not path.name.lower().endswith(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS):
            continue
        sidecar = path.with_suffix(".txt")
        records.append(_byod_record(path, sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None))
    return records


# -- all inputs --------------------------------------------------------------------------------

def list_samples(data: list[str], tiers: list[str] | None = None) -> list[SampleRecord]:
    """The records of every input, each sample once (first input wins). `tiers` picks tiers
    and image sets of curated inputs; a name that no curated input has is a ConfigError."""
    records: list[SampleRecord] = []
    available: list[str] = []
    wanted = set(tiers) if tiers else None
    curated_inputs = 0
    for item in data:
        path = Path(item).expanduser()
        if path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
            records.extend(_table_records(path))
            continue
        if not path.is_dir():
            raise ConfigError(f"input {item}: not a folder, nor a .csv / .jsonl caption table")
        folders = _tier_folders(path)
        if folders is not None:
            curated_inputs += 1
            available.extend(n for n in folders if n not in available)
            for name, folder in folders.items():
                if wanted is None or name in wanted:
                    records.extend(_tier_records(name, folder))
            continue
        table = next((path / n for n in CAPTION_TABLES if (path / n).is_file()), None)
        records.extend(_table_records(table) if table is not None else _folder_records(path))
    if wanted is not None and curated_inputs:
        unknown = sorted(wanted - set(available))
        if unknown:
            raise ConfigError(f"tiers: {unknown} not found in the inputs; they have {available}")
    unique: dict[str, SampleRecord] = {}
    for record in records:
        unique.setdefault(record.sample_id, record)
    return list(unique.values())
