"""What is served: the DiT checkpoint, the text encoder and VAE it was trained with, its
sampling defaults and size limits, resolved once from the export's config (no weights read).

A training export (``DIR/final/``) records its provenance under ``_vidloom_meta`` (see
`vidloom.models.weights_io.read_export_meta`); every key may be missing in a hand-made export,
so each has a default here. Without a model a freshly initialised ``tiny`` DiT is served (with
the offline MiniLM text encoder and the ``tiny`` VAE) so the API can be tried at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidloom.models.dit.config import CONFIGS, DiTConfig
from vidloom.models.sampling import SOLVERS, default_shift
from vidloom.models.text.registry import DEFAULT_TEXT_ENCODER
from vidloom.models.weights_io import EXPORT_CONFIG, is_vidloom_export, read_export_meta

#: The served model id when no checkpoint is given.
RANDOM_MODEL_ID = "vidloom-tiny-random"
DEFAULT_VAE = "tiny"
DEFAULT_FPS = 24


class ModelSpecError(ValueError):
    """The model to serve is missing, inconsistent with its text encoder, or not loadable."""


@dataclass(frozen=True)
class Limits:
    """Largest video the server accepts (pixels and frames); the report's 720p x 129 frames for
    the full model, far less for the CPU tiers."""

    max_height: int = 256
    max_width: int = 256
    max_frames: int = 33


@dataclass(frozen=True)
class SamplingDefaults:
    """``guidance="embedded"``: a guidance-distilled DiT takes the scale as an input (one call
    per step); ``"cfg"``: true classifier-free guidance with the negative prompt (two calls).
    ``solver``: the ODE solver (`vidloom.models.sampling.SOLVERS`) measured best for the model."""

    guidance: Literal["embedded", "cfg"] = "cfg"
    num_inference_steps: int = 50
    flow_shift: float | None = None  # the shift measured for num_inference_steps; None: the report's
    guidance_scale: float = 6.0
    solver: str = "euler"

    def shift_for(self, steps: int) -> float:
        """The model's own shift at its default step count; the report's shift for any other count
        (17 up to 20 steps, 7 above), since a shift is chosen together with its step count."""
        if self.flow_shift is not None and steps == self.num_inference_steps:
            return float(self.flow_shift)
        return default_shift(steps)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a deployment needs to load its part, and what `/v1/models` reports."""

    model_id: str
    origin: str  # "vidloom export <dir>", "random init (no --model)", ...
    dit_source: str  # a folder/file, or a tier name for random init
    dit_overrides: dict[str, Any]
    dit_config: dict[str, Any]
    num_parameters: int
    text_encoder: Any  # a name or mapping for build_text_encoder
    text_encoder_id: str | None
    vae_source: str
    vae_digest: str | None
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    limits: Limits = field(default_factory=Limits)
    fps: int = DEFAULT_FPS
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def random_init(self) -> bool:
        return self.dit_source in CONFIGS

    def dit(self) -> DiTConfig:
        return DiTConfig.from_dict(self.dit_config)

    def describe(self) -> dict[str, Any]:
        """The `/v1/models` entry (OpenAI's model object plus what a user needs to know)."""
        return {
            "id": self.model_id, "object": "model", "owned_by": "vidloom", "created": 0,
            "origin": self.origin, "random_init": self.random_init, "num_parameters": self.num_parameters,
            "text_encoder": {"spec": self.text_encoder, "encoder_id": self.text_encoder_id},
            "vae": {"source": self.vae_source, "digest": self.vae_digest},
            "sampling": asdict(self.sampling), "limits": asdict(self.limits), "fps": self.fps,
            "dit_config": self.dit_config,
        }


def _count_parameters(config: DiTConfig) -> int:
    import torch

    from vidloom.models.dit.model import HunyuanVideoDiT

    with torch.device("meta"):  # shapes only: no memory, no init
        return HunyuanVideoDiT(config).num_parameters()


def _limits_for(config: DiTConfig, given: dict[str, Any]) -> Limits:
    base = Limits(720, 1280, 129) if config.hidden_size >= CONFIGS["13B"].hidden_size else Limits()
    try:
        return Limits(**{**asdict(base), **{k: int(v) for k, v in given.items()}})
    except TypeError as exc:
        raise ModelSpecError(f"_vidloom_meta.limits: {exc}") from None


def _sampling(given: dict[str, Any], guidance_embed: bool) -> SamplingDefaults:
    fields = dict(given)
    fields.setdefault("guidance", "embedded" if guidance_embed else "cfg")
    try:
        spec = SamplingDefaults(**fields)
    except TypeError as exc:
        raise ModelSpecError(f"_vidloom_meta.sampling: {exc}") from None
    if spec.guidance not in ("embedded", "cfg"):
        raise ModelSpecError(f"_vidloom_meta.sampling.guidance must be 'embedded' or 'cfg', got {spec.guidance!r}")
    if spec.guidance == "embedded" and not guidance_embed:
        raise ModelSpecError("_vidloom_meta.sampling.guidance is 'embedded' but the DiT has no guidance embedding")
    if spec.solver not in SOLVERS:
        raise ModelSpecError(f"_vidloom_meta.sampling.solver must be one of {', '.join(SOLVERS)}, got {spec.solver!r}")
    return spec


def _read_config(path: Path) -> tuple[DiTConfig, str, dict[str, Any]]:
    """(DiT config, origin, provenance) of a checkpoint without reading its weights (an
    official file stores no config: its tensors are read once here to infer one)."""
    from vidloom.models.dit.key_maps import config_from_diffusers
    from vidloom.models.dit.loading import _is_diffusers_folder, read_dit_checkpoint

    if path.is_dir() and is_vidloom_export(path):
        config = json.loads((path / EXPORT_CONFIG).read_text())
        body = {k: v for k, v in config.items() if not k.startswith("_vidloom")}
        if config.get("_vidloom_model") != "dit":
            raise ModelSpecError(f"{path} holds a {config.get('_vidloom_model')!r} export, not a DiT")
        return DiTConfig.from_dict(body), f"vidloom export {path}", read_export_meta(path)
    for folder in (path, path / "transformer"):
        if folder.is_dir() and _is_diffusers_folder(folder):
            cfg = json.loads((folder / "config.json").read_text())
            return config_from_diffusers(cfg), f"diffusers folder {folder}", {}
    config, _ = read_dit_checkpoint(path)
    return config, f"official checkpoint {path}", {}


def resolve_model(model: str | None = None, vae: str | None = None, text_encoder: Any = None) -> ModelSpec:
    """The spec of the model to serve; `vae`/`text_encoder` override what the export records.

    Raises `ModelSpecError` when the folder is missing, a pickle checkpoint does not load with
    ``weights_only=True``, or the text encoder's widths do not match the DiT's."""
    if model is None:
        config = CONFIGS["tiny"].with_overrides(text_dim=384, pooled_dim=384)  # MiniLM's widths
        meta: dict[str, Any] = {"text_encoder": {"spec": DEFAULT_TEXT_ENCODER, "state_dim": 384, "pooled_dim": 384}}
        origin, source, overrides, model_id = "random init (no --model): outputs are noise", "tiny", \
            {"text_dim": 384, "pooled_dim": 384}, RANDOM_MODEL_ID
    else:
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelSpecError(f"--model {model}: no such file or folder")
        try:
            config, origin, meta = _read_config(path)
        except ModelSpecError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the file and why it cannot be served
            raise ModelSpecError(f"--model {model}: cannot be read as a DiT checkpoint ({exc}); safetensors "
                                 "exports, diffusers folders and weights_only pickles are accepted") from None
        source, overrides = str(path.resolve()), {}
        model_id = path.resolve().parent.name if path.name == "final" else path.name
    te = dict(meta.get("text_encoder") or {})
    for key, want in (("state_dim", config.text_dim), ("pooled_dim", config.pooled_dim)):
        if key in te and text_encoder is None and int(te[key]) != want:
            raise ModelSpecError(f"text encoder {te.get('encoder_id') or te.get('spec')}: {key} {te[key]} does not "
                                 f"match the DiT's {'text_dim' if key == 'state_dim' else key} {want}")
    vae_meta = dict(meta.get("vae") or {})
    return ModelSpec(
        model_id=model_id, origin=origin, dit_source=source, dit_overrides=overrides, dit_config=config.to_dict(),
        num_parameters=_count_parameters(config),
        text_encoder=text_encoder if text_encoder is not None else te.get("spec", DEFAULT_TEXT_ENCODER),
        text_encoder_id=None if text_encoder is not None else te.get("encoder_id"),
        vae_source=str(vae if vae is not None else vae_meta.get("source", DEFAULT_VAE)),
        vae_digest=None if vae is not None else vae_meta.get("digest"),
        sampling=_sampling(dict(meta.get("sampling") or {}), config.guidance_embed),
        limits=_limits_for(config, dict(meta.get("limits") or {})),
        training=dict(meta.get("training") or {}),
    )
