"""The offline video descriptor (`backend: descriptor`): a deterministic visual fingerprint
of a clip that needs no model weights.

It plays the role of the report's VideoCLIP embedding for near-duplicate removal and a
coarse one for concept clustering. Every clip is reduced to `NUM_FRAMES` evenly spaced
frames (repeating frames of very short clips), each frame to three cheap features of a
centre crop shrunk to a few dozen pixels, which is what makes them survive re-encoding,
rescaling and crops of a few per cent:

* gradient-orientation histograms (HOG-like, 4x4 cells x 6 orientations, square-rooted)
  of a 64x64 grey image: the layout of edges, which differs between two framings of the
  same photograph even when their colours agree;
* low-frequency DCT coefficients (5x5 minus DC) of a 32x32 grey image, as in perceptual
  hashing: the coarse luminance layout;
* CIELAB colour histograms (4x4 a/b bins + 16 L bins, Hellinger-mapped), averaged over
  the frames: what the clip looks like regardless of where things are.

Edge and DCT features stay in time order (a pan and a zoom over the same photo differ
frame by frame); each block is centred and normalised so its cosine term is a
correlation, then the blocks are weighted and the whole vector is L2-normalised.
Measured on the sample corpus (docs/dedup_and_concepts.md): re-encoded/resized/cropped
copies score >= 0.97 with their originals, different shots of the same photograph <= 0.82.
"""

from __future__ import annotations

import cv2
import numpy as np

DESCRIPTOR_BACKEND = "descriptor-v1"
NUM_FRAMES = 4
_MARGIN = 0.05  # share of each side dropped before shrinking: borders move under crops
_GRID, _ORIENT = 4, 6
_DCT_SIDE = 5
_AB_BINS, _L_BINS = 4, 16
_EDGE_DIM = NUM_FRAMES * _GRID * _GRID * _ORIENT  # 384
_DCT_DIM = NUM_FRAMES * (_DCT_SIDE * _DCT_SIDE - 1)  # 96
_COLOUR_DIM = _AB_BINS * _AB_BINS + _L_BINS  # 32
DESCRIPTOR_DIM = _EDGE_DIM + _DCT_DIM + _COLOUR_DIM  # 512
# Squared weights of the blocks' cosine terms: edges separate framings best on the corpus.
_WEIGHTS = {"edges": 3.0, "dct": 1.0, "colour": 0.5}

# Pixel -> 4x4 cell index of a 64x64 image, computed once.
_CELL = (np.arange(64) // 16)
_CELL_ROWS, _CELL_COLS = np.meshgrid(_CELL, _CELL, indexing="ij")


def _centred_unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    v = v - v.mean()
    norm = np.linalg.norm(v)
    return v / norm if norm > 1e-12 else v


def _centre_crop(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    dy, dx = int(h * _MARGIN), int(w * _MARGIN)
    return rgb[dy:h - dy, dx:w - dx]


def _frame_features(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge histogram, low-frequency DCT and colour histogram of one RGB uint8 frame."""
    crop = np.ascontiguousarray(_centre_crop(rgb))
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)

    g64 = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(g64, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g64, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    orient = (np.floor((np.arctan2(gy, gx) % (2 * np.pi)) / (2 * np.pi) * _ORIENT).astype(np.int64)) % _ORIENT
    edges = np.zeros((_GRID, _GRID, _ORIENT), np.float64)
    np.add.at(edges, (_CELL_ROWS, _CELL_COLS, orient), magnitude)
    edges = np.sqrt(edges)  # strong edges must not drown the rest

    g32 = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
    dct = cv2.dct(g32)[:_DCT_SIDE, :_DCT_SIDE].ravel()[1:]  # DC is overall brightness

    lab = cv2.cvtColor(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
    ab = cv2.calcHist([lab], [1, 2], None, [_AB_BINS, _AB_BINS], [0, 256, 0, 256]).ravel()
    lum = cv2.calcHist([lab], [0], None, [_L_BINS], [0, 256]).ravel()
    colour = np.sqrt(np.concatenate([ab / max(ab.sum(), 1.0), lum / max(lum.sum(), 1.0)]))
    return _centred_unit(edges), _centred_unit(dct), colour


def _pick(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Exactly NUM_FRAMES frames, evenly spread, repeating when the clip has fewer."""
    idx = np.linspace(0, len(frames) - 1, NUM_FRAMES).round().astype(int)
    return [frames[i] for i in idx]


def describe_clip(frames: list[np.ndarray]) -> np.ndarray:
    """The L2-normalised `DESCRIPTOR_DIM` float32 descriptor of a clip's RGB uint8 frames."""
    if not frames:
        raise ValueError("a clip needs at least one frame to be described")
    feats = [_frame_features(_as_rgb(f)) for f in _pick(frames)]
    blocks = {
        "edges": _centred_unit(np.concatenate([f[0] for f in feats])),
        "dct": _centred_unit(np.concatenate([f[1] for f in feats])),
        "colour": _centred_unit(np.mean([f[2] for f in feats], axis=0)),
    }
    vec = np.concatenate([np.sqrt(_WEIGHTS[k]) * blocks[k] for k in ("edges", "dct", "colour")])
    norm = np.linalg.norm(vec)
    return (vec / norm if norm > 0 else vec).astype(np.float32)


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got {frame.dtype}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be HxWx3 RGB, got shape {frame.shape}")
    return frame


class DescriptorEmbedder:
    """Embedder of the offline default: `describe_clip` for each clip."""

    backend = DESCRIPTOR_BACKEND
    dim = DESCRIPTOR_DIM

    def embed_clips(self, clips: list[list[np.ndarray]]) -> np.ndarray:
        """One row per clip, float32, L2-normalised."""
        if not clips:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([describe_clip(frames) for frames in clips])
