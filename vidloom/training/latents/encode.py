"""The two steps of a precompute run, as Ray Data batch functions, and the models they hold.

* `decode_batch` (plain tasks, CPU): each record's video or image -> RGB frames (T×H×W×3
  uint8) at the run's size: short side `resize` (rounded to a multiple of 16, aspect kept,
  both sides multiples of 16, scaled in the decoder's scaler), or, without `resize`, the
  source size centre-cropped to multiples of 16; the first `frames` frames of a video when
  set. A video must give 4k+1 frames, an image 1.
* `LatentEncoder` (an actor pool): holds the VAE (tiled) and the text encoder, encodes
  same-shaped clips together and the captions of a batch in one call, and returns shard rows.

A record that fails either step comes back with `error` set; the others go on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from vidloom.pipelines.export.tiers import four_k_plus_one_error
from vidloom.training.latents.config import PrecomputeConfig, round16
from vidloom.training.latents.format import SHARD_SCHEMA, tensor_bytes

MAX_FRAMES = 2048  # without --frames, a longer video is refused instead of filling memory
PIXEL_FIELDS = [("pixels", pa.binary()), ("pixel_shape", pa.list_(pa.int32())), ("error", pa.string())]
OUTPUT_SCHEMA = pa.schema(list(SHARD_SCHEMA) + [("error", pa.string())])


class SampleError(RuntimeError):
    """This sample cannot be encoded; the message is for the run's error report."""


# -- decoding ------------------------------------------------------------------------------------

def target_size(width: int, height: int, resize: int | None) -> tuple[int, int]:
    """(width, height) the encoder gets: short side `resize` (aspect kept) or the source size,
    both rounded to multiples of 16 (down, by cropping, when not resizing)."""
    if resize:
        scale = resize / float(min(width, height))
        return round16(width * scale), round16(height * scale)
    w, h = width // 16 * 16, height // 16 * 16
    if not w or not h:
        raise SampleError(f"picture {width}x{height} is smaller than 16 px; pass --resize")
    return w, h


def _centre_crop(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    h0, w0 = frames.shape[-3:-1]
    y, x = (h0 - height) // 2, (w0 - width) // 2
    return np.ascontiguousarray(frames[..., y:y + height, x:x + width, :])


def read_video(path: str, resize: int | None, frames: int | None) -> np.ndarray:
    """T×H×W×3 uint8 frames of the video at `path` (see the module doc)."""
    from vidloom.platform.media import DecodeError, VideoReader

    if not os.path.exists(path):
        raise SampleError("file not found")
    try:
        with VideoReader(path) as reader:
            size = target_size(reader.info.width, reader.info.height, resize)
            limit = frames or MAX_FRAMES + 1
            images = []
            for frame in reader.frames(size=size if resize else None):
                images.append(frame.image)
                if len(images) >= limit:
                    break
    except DecodeError as exc:
        raise SampleError(f"unreadable video: {exc}") from None
    count = len(images)
    if frames and count < frames:
        raise SampleError(f"video has {count} frames, fewer than the {frames} asked (--frames)")
    if count > MAX_FRAMES:
        raise SampleError(f"video has more than {MAX_FRAMES} frames; pass --frames N to keep the first N")
    if problem := four_k_plus_one_error(count):
        raise SampleError(f"video has {problem.replace(' is not', ' frames, not', 1)}; pass --frames N to keep the first N")
    array = np.stack(images)
    return array if resize else _centre_crop(array, *size)


def read_image(path: str, resize: int | None) -> np.ndarray:
    """1×H×W×3 uint8: a still as a one-frame clip."""
    import cv2

    if not os.path.exists(path):
        raise SampleError("file not found")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError("unreadable image (OpenCV could not decode it)")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    w, h = target_size(width, height, resize)
    if resize:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return _centre_crop(image[None], w, h)


def decode_batch(batch: pa.Table, resize: int | None, frames: int | None) -> pa.Table:
    """Ray Data step: add ``pixels`` (uint8 bytes), ``pixel_shape`` (T, H, W, 3) and
    ``error`` to each record."""
    pixels, shapes, errors = [], [], []
    for row in batch.to_pylist():
        data, shape, error = None, None, row.get("error")
        if error is None:
            try:
                path = row["source_path"]
                array = read_image(path, resize) if row["kind"] == "image" else read_video(path, resize, frames)
                data, shape = array.tobytes(), list(array.shape)
            except SampleError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
                error = f"decoding failed: {type(exc).__name__}: {str(exc)[:300]}"
        pixels.append(data)
        shapes.append(shape)
        errors.append(error)
    if "error" in batch.column_names:
        batch = batch.drop_columns(["error"])
    for (name, kind), values in zip(((n, t) for n, t in PIXEL_FIELDS), (pixels, shapes, errors)):
        batch = batch.append_column(pa.field(name, kind), pa.array(values, type=kind))
    return batch


# -- models --------------------------------------------------------------------------------------

def _weights_file_digest(path: Path) -> str:
    """Digest of the weights in `path`: the file itself, a vidloom export's model.safetensors,
    or a diffusers folder's weights (every shard of a sharded save)."""
    from vidloom.platform.weights import file_digest

    if path.is_file():
        return file_digest(path)
    for folder in (path, path / "vae"):
        for name in ("model.safetensors", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
            if (folder / name).is_file():
                return file_digest(folder / name)
        shards = sorted(folder.glob("diffusion_pytorch_model-*.safetensors"))
        if shards:
            joined = "|".join(file_digest(s) for s in shards)
            return hashlib.sha256(joined.encode()).hexdigest()[:12]
    raise FileNotFoundError(f"{path}: no VAE weights file found (model.safetensors or diffusion_pytorch_model*)")


def vae_digest(source: str, seed: int = 0) -> str:
    """What names the VAE a latent cache was made with: the SHA-256 prefix of its weights
    file, or ``init:<name>:seed<k>`` for a config name's seeded random init."""
    from vidloom.models.vae.config import VAE_CONFIGS
    from vidloom.platform.weights import resolve_weights

    if source in VAE_CONFIGS:
        return f"init:{source}:seed{seed}"
    return _weights_file_digest(resolve_weights(source, "vae"))


def _device(config: PrecomputeConfig) -> str:
    return "cuda" if config.gpus_per_worker > 0 else "cpu"


def build_models(config: PrecomputeConfig):
    """(VAE with tiling on, text encoder), on the worker's device."""
    from vidloom.models import load_vae
    from vidloom.models.text import build_text_encoder

    device = _device(config)
    vae = load_vae(config.vae, seed=config.seed, device=device, dtype=getattr(torch, config.vae_dtype), setting="vae")
    px, fr = config.tile_px, config.tile_frames
    vae.enable_tiling(px, px, fr, max(8, px * 3 // 4 // 8 * 8), max(8, px * 3 // 4 // 8 * 8), max(4, fr * 3 // 4 // 4 * 4))
    spec = config.text_encoder
    if device != "cpu" and isinstance(spec, str):
        try:  # encoders that place their own inputs need to be told the device
            text = build_text_encoder({"name": spec, "device": device})
        except ValueError:
            text = build_text_encoder(spec).to(device)
    else:
        text = build_text_encoder(spec).to(device) if device != "cpu" else build_text_encoder(spec)
    return vae.eval(), text.eval()


def _valid_tokens(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The rows of `states` (L×D) whose mask is 1: padding dropped, token order kept."""
    return states[mask.bool()]


def describe_models(config_data: dict[str, Any]) -> dict[str, Any]:
    """Run once per precompute (as a Ray task, where the workers run): the ``vae`` and
    ``text_encoder`` blocks of meta.json and the empty prompt's embedding."""
    config = PrecomputeConfig(**config_data)
    vae, text = build_models(config)
    with torch.inference_mode():
        null = text.encode([""])
    states = _valid_tokens(null.states[0], null.mask[0]).to("cpu", torch.float16)
    return {
        "vae": {
            "source": config.vae, "digest": vae_digest(config.vae, config.seed), "config": vae.config.to_dict(),
            "scaling_factor": float(vae.scaling_factor), "latent_channels": int(vae.latent_channels),
            "posterior": config.posterior,
        },
        "text_encoder": {"spec": config.text_encoder, **text.describe()},
        "null_states": states.numpy(),
        "null_pooled": null.pooled[0].to("cpu", torch.float32).numpy(),
    }


def _sample_generator(seed: int, sample_id: str, device: str) -> torch.Generator:
    # one generator per sample: its latent does not depend on the batch it was encoded in
    value = int(hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()[:15], 16)
    return torch.Generator(device=device).manual_seed(value)


class LatentEncoder:
    """Ray Data actor: decoded records in, shard rows (or rows with `error`) out."""

    def __init__(self, config: dict[str, Any]):
        self.config = PrecomputeConfig(**config)
        torch.set_num_threads(max(1, int(self.config.cpus_per_worker)))
        self.device = _device(self.config)
        self.vae, self.text = build_models(self.config)
        self.scale = float(self.vae.scaling_factor)

    @torch.inference_mode()
    def _latents(self, rows: list[dict[str, Any]]) -> list[torch.Tensor]:
        """Latents (C×T×H×W, × scaling factor) of same-shaped rows, `batch_size` at a time."""
        out: list[torch.Tensor] = []
        size = self.config.batch_size
        for i in range(0, len(rows), size):
            chunk = rows[i:i + size]
            pixels = np.stack([np.frombuffer(r["pixels"], np.uint8).reshape(r["pixel_shape"]) for r in chunk])
            video = torch.from_numpy(pixels).to(self.device).permute(0, 4, 1, 2, 3)
            video = video.to(self.vae.dtype) / 127.5 - 1.0
            posterior = self.vae.encode(video)
            if self.config.posterior == "mode":
                z = posterior.mode()
            else:
                eps = torch.stack([
                    torch.randn(posterior.mean.shape[1:], generator=_sample_generator(self.config.seed, r["sample_id"], self.device),
                                device=self.device, dtype=posterior.mean.dtype)
                    for r in chunk
                ])
                z = posterior.mean + posterior.std * eps
            out.extend((z * self.scale).float().cpu())
        return out

    @torch.inference_mode()
    def _texts(self, captions: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for i in range(0, len(captions), self.config.batch_size):
            emb = self.text.encode(captions[i:i + self.config.batch_size])
            for states, mask, pooled in zip(emb.states, emb.mask, emb.pooled):
                out.append((_valid_tokens(states, mask).cpu(), pooled.float().cpu()))
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ok = [r for r in rows if r.get("error") is None]
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in ok:
            groups.setdefault(tuple(r["pixel_shape"]), []).append(r)
        latents: dict[str, torch.Tensor] = {}
        for shape, members in groups.items():
            try:
                latents.update(zip((r["sample_id"] for r in members), self._latents(members)))
            except Exception as exc:  # noqa: BLE001 - a failing shape fails its rows, not the run
                for r in members:
                    r["error"] = f"VAE encoding failed for {shape[2]}x{shape[1]}x{shape[0]}: {type(exc).__name__}: {str(exc)[:300]}"
        encoded = [r for r in ok if r.get("error") is None]
        try:
            texts = dict(zip((r["sample_id"] for r in encoded), self._texts([r["caption"] for r in encoded])))
        except Exception as exc:  # noqa: BLE001
            texts = {}
            for r in encoded:
                r["error"] = f"text encoding failed: {type(exc).__name__}: {str(exc)[:300]}"
        out = []
        for r in rows:
            row = {k: r.get(k) for k in ("sample_id", "clip_id", "tier", "kind", "caption", "caption_missing", "source_path", "error")}
            if row["error"] is None:
                z = latents[r["sample_id"]]
                states, pooled = texts[r["sample_id"]]
                t, h, w = (int(v) for v in r["pixel_shape"][:3])
                row.update(
                    latent=tensor_bytes(z, torch.float16), latent_shape=list(z.shape),
                    latent_frames=z.shape[1], latent_height=z.shape[2], latent_width=z.shape[3],
                    num_frames=t, height=h, width=w,
                    text_states=tensor_bytes(states, torch.float16), text_len=states.shape[0],
                    pooled=tensor_bytes(pooled, torch.float32),
                )
            out.append(row)
        return pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)
