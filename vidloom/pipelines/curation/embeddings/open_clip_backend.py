"""The open_clip backend (`backend: open_clip`): CLIP's image tower over a few frames per
clip, pooled into one clip vector.

Each frame is resized (short side to the model's input size, bicubic) and centre-cropped
as CLIP was trained, embedded and L2-normalised; the clip vector is the mean of its
frames' unit vectors, normalised again. Weights come only from
`curation.embedding.checkpoint` (a local file or folder, or a Hugging Face repo id already
in the local cache); the architecture from `curation.embedding.model_name`, unless the
checkpoint folder carries its own ``open_clip_config.json`` (the Hugging Face layout of
open_clip models).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidloom.platform.weights import MissingWeightsError, file_digest, resolve_weights

CHECKPOINT_SETTING = "curation.embedding.checkpoint"
MODEL_NAME_SETTING = "curation.embedding.model_name"
# Weight file names open_clip and the Hugging Face hub use, most preferred first.
_WEIGHT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def _weights_in_folder(folder: Path) -> Path:
    for name in _WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if not found:
        raise MissingWeightsError(CHECKPOINT_SETTING, str(folder), "the folder holds no .safetensors/.bin/.pth/.pt file")
    return found[0]


def _folder_label(folder: Path) -> str:
    # A Hugging Face cache snapshot lives in models--org--name/snapshots/<revision>.
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name[len("models--"):].replace("--", "/")
    return folder.name


class OpenClipEmbedder:
    """Clip embeddings from an open_clip image tower loaded from local weights only."""

    def __init__(
        self,
        model_name: str,
        checkpoint: str | None,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 32,
        threads: int = 1,
    ):
        import open_clip
        import torch

        path = resolve_weights(checkpoint, CHECKPOINT_SETTING)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(threads)
            precision = "fp32"  # half precision on CPU is slow and not what CLIP was run at
        if path.is_dir() and (path / "open_clip_config.json").is_file():
            weights = _weights_in_folder(path)
            label = _folder_label(path)
            model = open_clip.create_model(f"local-dir:{path}", precision=precision, device=device)
        else:
            weights = _weights_in_folder(path) if path.is_dir() else path
            if open_clip.get_model_config(model_name.replace("/", "-")) is None:
                raise ValueError(
                    f"`{MODEL_NAME_SETTING}` = {model_name!r} is not an open_clip architecture "
                    f"(known: {', '.join(open_clip.list_models()[:8])}, ...)"
                )
            label = model_name
            model = open_clip.create_model(model_name, pretrained=str(weights), precision=precision, device=device)
        model.eval()
        self.model = model
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.batch_size = batch_size
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = np.asarray(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), np.float32)
        self.std = np.asarray(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), np.float32)
        self.backend = f"open_clip:{label}:{file_digest(weights)}"
        self.dim = int(model.visual.output_dim)

    def _preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Short side to the input size, centre crop, CLIP normalisation; CHW float32."""
        th, tw = self.size
        h, w = rgb.shape[:2]
        scale = max(th / h, tw / w)
        nh, nw = max(th, int(round(h * scale))), max(tw, int(round(w * scale)))
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        y0, x0 = (nh - th) // 2, (nw - tw) // 2
        crop = resized[y0:y0 + th, x0:x0 + tw].astype(np.float32) / 255.0
        return ((crop - self.mean) / self.std).transpose(2, 0, 1)

    def embed_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings of RGB uint8 frames, (n, dim) float32."""
        import torch

        out = []
        for i in range(0, len(frames), self.batch_size):
            batch = np.stack([self._preprocess(f) for f in frames[i:i + self.batch_size]])
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(self.device, self.dtype)
                feats = self.model.encode_image(x).float()
                feats = torch.nn.functional.normalize(feats, dim=-1)
            out.append(feats.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_clips(self, clips: list[list[np.ndarray]]) -> np.ndarray:
        """One pooled, L2-normalised vector per clip (all frames of all clips in shared batches)."""
        if not clips:
            return np.zeros((0, self.dim), np.float32)
        if any(len(c) == 0 for c in clips):
            raise ValueError("a clip needs at least one frame to be embedded")
        flat = [f for c in clips for f in c]
        per_frame = self.embed_frames(flat)
        bounds = np.cumsum([0] + [len(c) for c in clips])
        pooled = np.stack([per_frame[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
