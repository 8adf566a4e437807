"""Sample corpus: real photos through a virtual camera, with planted defects and exact truth."""

from vidloom.pipelines.samples.render import render_sample_corpus

__all__ = ["render_sample_corpus"]
