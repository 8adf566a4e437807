"""One registration per stage drives the config, the manifest columns, the weights check and the
dependency check; a pipeline that leaves out a needed stage fails at start naming it."""

from __future__ import annotations

import pytest

from vidloom.pipelines.curation.config import CurationConfig, load_curation_config
from vidloom.pipelines.curation.manifest import CLIP_COLUMNS
from vidloom.pipelines.curation.pipeline import check_weights
from vidloom.pipelines.curation.registry import STAGE_CLASSES, STAGE_ORDER
from vidloom.platform.config import ConfigError
from vidloom.platform.weights import MissingWeightsError


def test_config_and_columns_come_from_the_registrations():
    config = CurationConfig()
    assert config.pipeline == list(STAGE_ORDER)
    at = 0
    for cls in STAGE_CLASSES:
        for section, model in cls.config_sections.items():
            assert isinstance(getattr(config, section), model), (cls.name, section)
        assert getattr(config.stages, cls.name) == cls.default_resources
        for column in cls.columns:  # in pipeline order in the manifest
            assert CLIP_COLUMNS.index(column) >= at, column
            at = CLIP_COLUMNS.index(column)
    assert CLIP_COLUMNS[-2:] == ["dup_of", "cluster_id"]


def test_proxy_quality_without_text_detection_fails_at_start_naming_the_stage():
    with pytest.raises(ConfigError, match=r"stage 'quality' needs stage\(s\) \['text_detection'\]"):
        load_curation_config(overrides=["pipeline=[video_analysis,quality,watermark]"])
    # With DOVER the quality stage looks at pixels only, so it may run without text detection.
    config = load_curation_config(overrides=["pipeline=[video_analysis,quality]", "quality.backend=dover"])
    assert config.pipeline == ["video_analysis", "quality"]


def test_unknown_stage_and_wrong_order_fail_at_start():
    with pytest.raises(ConfigError, match="pipeline"):
        load_curation_config(overrides=["pipeline=[video_analysis,sharpen]"])
    with pytest.raises(ConfigError, match="stage order"):
        load_curation_config(overrides=["pipeline=[video_analysis,watermark,text_detection]"])


def test_weights_check_asks_each_stage_in_the_pipeline(tmp_path):
    missing = str(tmp_path / "nope.pth")
    config = load_curation_config(overrides=["quality.backend=dover", f"quality.dover_checkpoint={missing}"])
    with pytest.raises(MissingWeightsError, match="curation.quality.dover_checkpoint"):
        check_weights(config)
    # A stage left out of the pipeline is not asked.
    check_weights(load_curation_config(overrides=[
        "pipeline=[video_analysis,text_detection]", "quality.backend=dover", f"quality.dover_checkpoint={missing}"]))
