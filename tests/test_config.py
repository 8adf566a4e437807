"""Configuration: defaults, YAML and command-line overrides; wrong values rejected at start
with the key name and the allowed range."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vidloom.pipelines.curation.config import load_curation_config
from vidloom.platform.config import ConfigError


def test_defaults_load_and_overrides_apply(tmp_path):
    cfg = load_curation_config()
    assert cfg.split.detector == "content" and cfg.ocr.backend == "rapidocr"
    user = tmp_path / "my.yaml"
    user.write_text("split:\n  min_clip_s: 3\nocr:\n  frames_per_clip: 4\n")
    cfg = load_curation_config(user, ["split.min_clip_s=2.5", "stages.video_analysis.max_workers=8"])
    assert cfg.split.min_clip_s == 2.5  # the command line wins over the file
    assert cfg.ocr.frames_per_clip == 4
    assert cfg.stages.video_analysis.max_workers == 8


@pytest.mark.parametrize(
    "override, expected",
    [
        ("split.min_clip_s=-1", "split.min_clip_s: must be >= 0.1 (got -1)"),
        ("decode.analysis_short_side=10", "decode.analysis_short_side: must be >= 64"),
        ("split.detector=histogram", "split.detector: must be one of 'content' or 'adaptive'"),
        ("ocr.backend=tesseract", "ocr.backend: must be one of"),
        ("split.min_clip_s=abc", "split.min_clip_s"),
        ("split.treshold=20", "split.treshold: unknown key"),
        ("split.max_clip_s=3", "split.max_clip_s (3.0) must be at least twice split.min_clip_s"),
        ("ocr.precision=fp16", "ocr.precision: must be one of"),
    ],
)
def test_wrong_values_name_the_key_and_the_range(override, expected):
    with pytest.raises(ConfigError) as info:
        load_curation_config(None, [override])
    assert expected in str(info.value)


def test_ocr_precision_resolves_per_backend_and_int8_needs_rapidocr():
    assert load_curation_config().ocr.resolved_precision == "int8"
    assert load_curation_config(None, ["ocr.precision=fp32"]).ocr.resolved_precision == "fp32"
    paddle = load_curation_config(None, ["ocr.backend=paddleocr", "ocr.model_dir=/models/det"])
    assert paddle.ocr.resolved_precision == "fp32"
    with pytest.raises(ConfigError) as info:
        load_curation_config(None, ["ocr.backend=paddleocr", "ocr.precision=int8"])
    assert "ocr.precision 'int8'" in str(info.value) and "ocr.backend 'paddleocr'" in str(info.value)


def test_cli_rejects_a_bad_value_before_any_work(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vidloom.jobs.curate", str(tmp_path), "--out", str(tmp_path / "out"),
         "--set", "signals.motion_samples_per_s=0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "signals.motion_samples_per_s: must be > 0" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_yaml_file_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("split: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_curation_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_curation_config(tmp_path / "missing.yaml")


def test_defaults_file_holds_every_typed_default():
    """defaults.yaml is the documented copy of the typed defaults: the same keys and values,
    so neither can drift from the other."""
    import yaml

    from vidloom.pipelines.curation.config import DEFAULTS_PATH, CurationConfig

    def flat(node, prefix=""):
        out = {}
        for key, value in node.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    documented = flat(yaml.safe_load(DEFAULTS_PATH.read_text()))
    typed = flat(CurationConfig().model_dump(mode="json"))
    assert documented.keys() == typed.keys()
    for key, value in typed.items():
        assert documented[key] == value, key
