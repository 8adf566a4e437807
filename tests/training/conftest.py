"""Session fixtures for the training tests: the sample corpus's curated clips exported to a
small set of tiers (`demo_tiers`), and those tiers precomputed into a latent cache with the
untrained `tiny` VAE and MiniLM (`latent_cache`)."""

from __future__ import annotations

from pathlib import Path

import pytest

# The tiers a training test needs: one video tier and one image set, the 256 px ones.
DEMO_TIERS = ("256p", "images_256")
# Latents of 64 px short side: a 448x256 clip of 33 frames gives 9x8x14 latents.
DEMO_RESIZE = 64


@pytest.fixture(scope="session")
def demo_tiers(curated, sample_corpus, tmp_path_factory) -> Path:
    """A curated folder holding the sample corpus's clips, exported (fast encoder settings, no
    concept resampling) to the 256p tier and the images_256 set: ``DIR/tiers/<tier>/``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vidloom.pipelines.export import ExportConfig, load_export_config, run_export

    out = tmp_path_factory.mktemp("demo_tiers")
    clips = pq.read_table(curated["out"] / "manifest" / "clips.parquet")
    ours = [Path(s).parent == Path(sample_corpus) for s in clips.column("source").to_pylist()]
    (out / "manifest").mkdir()
    pq.write_table(clips.filter(pa.array(ours)), out / "manifest" / "clips.parquet")
    base = load_export_config(None, ["encode.preset=ultrafast", "encode.crf=23", "tiers.256p.concepts.max_share=null"])
    config = ExportConfig(
        buckets=base.buckets, encode=base.encode, run=base.run,
        tiers={"256p": base.tiers["256p"]}, image_sets={"images_256": base.image_sets["images_256"]},
    )
    summary = run_export(out, config)
    assert summary.errors == 0 and summary.kept["256p"] > 0 and summary.kept["images_256"] > 0, summary.to_text()
    return out


@pytest.fixture(scope="session")
def latent_cache(ray_session, demo_tiers, tmp_path_factory):
    """`demo_tiers` precomputed into a `LatentCache` (``tiny`` VAE, seed 0, posterior mode,
    MiniLM, short side 64 px, shards of 16 samples); its run summary is ``summary.json``."""
    from vidloom.training.latents import LatentCache, run_precompute

    out = tmp_path_factory.mktemp("latents")
    summary = run_precompute([str(demo_tiers)], str(out), "tiny", "minilm", resize=DEMO_RESIZE, batch_size=8, shard_rows=16)
    assert summary.errors == 0, summary.to_text()
    return LatentCache.open(out)
