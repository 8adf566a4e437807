"""Probing and decoding edge cases with real files: rotation metadata, non-square pixels,
variable frame rate, a non-zero start time, odd sizes, Matroska, object-store inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import fsspec
import numpy as np
import pytest

from vidloom.platform.media import DecodeError, VideoReader
from vidloom.platform.storage import expand_inputs


def _write(path: Path, frames: list[np.ndarray], pts: list[int] | None = None, rate: int = 25,
           codec: str = "libx264", pix_fmt: str = "yuv420p", rotation: int = 0,
           sar: Fraction | None = None, time_base: Fraction | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _marked(h: int, w: int, n: int = 5) -> list[np.ndarray]:
    """Frames with a bright square in the top-left corner (to check orientation)."""
    frames = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        img[: h // 4, : w // 4] = 250
        img[-2:, :] = 10 * i  # frames differ a little
        frames.append(img)
    return frames


def test_rotation_metadata_gives_a_portrait_video(tmp_path):
    # Stored landscape 96×48 with a 90° (counter-clockwise) display rotation: shown 48×96.
    path = _write(tmp_path / "phone.mp4", _marked(48, 96), rotation=90)
    with VideoReader(str(path)) as reader:
        assert reader.info.rotation == 90
        assert (reader.info.width, reader.info.height) == (48, 96)
        assert (reader.info.coded_width, reader.info.coded_height) == (96, 48)
        frames = list(reader.frames())
    img = frames[0].image
    assert img.shape == (96, 48, 3)
    # Rotating counter-clockwise moves the stored top-left corner to the bottom-left.
    assert img[-10:, :10].mean() > 200 and img[:10, :10].mean() < 100


def test_non_square_pixels_report_display_size(tmp_path):
    path = _write(tmp_path / "anamorphic.mp4", _marked(64, 64), sar=Fraction(2, 1))
    with VideoReader(str(path)) as reader:
        assert reader.info.sample_aspect_ratio == pytest.approx(2.0)
        assert (reader.info.width, reader.info.height) == (128, 64)
        frames = list(reader.frames())
    assert frames[0].image.shape == (64, 128, 3)


def test_variable_frame_rate_times_come_from_timestamps(tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 200, 240, 500, 540]  # gaps: the frame rate varies
    path = _write(tmp_path / "vfr.mkv", _marked(32, 32, len(pts)), pts=pts, time_base=tb)
    with VideoReader(str(path)) as reader:
        assert "matroska" in reader.info.container
        times = [f.time_s for f in reader.frames()]
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_odd_size_and_downscale_keep_aspect(tmp_path):
    path = _write(tmp_path / "odd.mp4", _marked(241, 321), pix_fmt="yuv444p")
    with VideoReader(str(path)) as reader:
        assert (reader.info.width, reader.info.height) == (321, 241)
        first = next(iter(reader.frames(short_side=120)))
    h, w = first.image.shape[:2]
    assert h == 120 and abs(w / h - 321 / 241) < 0.02


def test_non_zero_start_time_and_high_resolution(pyscenedetect_dir):
    with VideoReader(str(pyscenedetect_dir / "delayed_start.mp4")) as reader:
        assert reader.info.start_time_s == pytest.approx(1.075, abs=1e-3)
        frames = list(reader.frames())
    assert frames[0].time_s == 0.0 and frames[-1].time_s == pytest.approx(23 / 25, abs=1e-3)
    with VideoReader(str(pyscenedetect_dir / "counter.mp4")) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps) == (1920, 1080, 10.0)
        images = [f.image for f in reader.frames(short_side=256)]
    assert len(images) == 30 and images[0].shape == (256, 456, 3)
    assert all(np.abs(a.astype(int) - b).mean() > 0.1 for a, b in zip(images, images[1:]))


def test_broken_inputs_raise_decode_errors_with_reasons(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all\n" * 100)
    for path, words in [(empty, "empty file"), (text, "cannot open"), (tmp_path / "missing.mp4", "cannot open")]:
        with pytest.raises(DecodeError, match=words):
            VideoReader(str(path))


def test_inputs_from_folders_globs_lists_and_object_stores(tmp_path):
    (tmp_path / "a").mkdir()
    clip = _write(tmp_path / "a" / "one.mp4", _marked(32, 32))
    (tmp_path / "a" / "notes.txt").write_text("not listed as video")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my videos\n{clip}\na/one.mp4\nmissing.mp4\n")
    assert expand_inputs([str(tmp_path / "a")]) == [str(clip)]
    assert expand_inputs([str(tmp_path / "**" / "*.mp4")]) == [str(clip)]
    listed = expand_inputs([str(listing)])
    assert listed[0] == str(clip) and listed[-1].endswith("missing.mp4")  # kept, reported later

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/raw/one.mp4", clip.read_bytes())
    fs.pipe("/bucket/raw/readme.md", b"x")
    sources = expand_inputs(["memory://bucket/raw/"])
    assert sources == ["memory:///bucket/raw/one.mp4"]
    with VideoReader(sources[0]) as reader:
        assert reader.info.width == 32 and len(list(reader.frames())) == 5
