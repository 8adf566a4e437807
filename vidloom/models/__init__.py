"""Generator models: the causal 3D VAE, the DiT, text encoders, the flow-matching sampler.

`load_dit(source)` and `load_vae(source)` accept a config name (random init), a vidloom
safetensors export, a diffusers `save_pretrained` folder, or an official checkpoint file.
"""


def load_dit(source, **kwargs):
    from vidloom.models.dit.loading import load_dit as _load_dit

    return _load_dit(source, **kwargs)


def load_vae(source, **kwargs):
    from vidloom.models.vae.loading import load_vae as _load_vae

    return _load_vae(source, **kwargs)


__all__ = ["load_dit", "load_vae"]
