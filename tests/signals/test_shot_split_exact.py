"""Our shot split gives exactly PySceneDetect's own ContentDetector cuts (its defaults) on every
video in ../shared/data/pyscenedetect: PySceneDetect computes its result here, in the test."""

from __future__ import annotations

from scenedetect import ContentDetector, detect

from vidloom.pipelines.curation.config import SplitConfig
from vidloom.pipelines.curation.shot_split import ShotDetector
from vidloom.platform.media import VideoReader


def _our_cuts(path: str) -> list[int]:
    with VideoReader(path) as reader:
        detector = ShotDetector(SplitConfig(), reader.info.fps)
        # The frames VideoAnalysisStage decodes: full display size, BGR.
        for frame in reader.frames(size=(reader.info.width, reader.info.height), fmt="bgr24"):
            detector.push(frame.index, frame.image)
    return detector.finish()


def test_cuts_equal_pyscenedetect_content_detector_on_every_video(pyscenedetect_dir):
    videos = sorted(pyscenedetect_dir.glob("*.mp4"))
    assert len(videos) >= 4
    ours = {}
    for video in videos:
        theirs = [scene[0].frame_num for scene in detect(str(video), ContentDetector())][1:]
        ours[video.name] = _our_cuts(str(video))
        assert ours[video.name] == theirs, video.name
    # testvideo.mp4's frame 691 scores just under the threshold in PySceneDetect's pixels.
    assert ours["testvideo.mp4"] == [30, 180, 394]


def test_detector_frame_follows_pyscenedetect_downscale():
    import numpy as np

    det = ShotDetector(SplitConfig(), 25.0)
    assert det.detector_frame(np.zeros((720, 1280, 3), np.uint8)).shape == (144, 256, 3)
    portrait = ShotDetector(SplitConfig(), 25.0)  # the longer side sets the factor
    assert portrait.detector_frame(np.zeros((1280, 720, 3), np.uint8)).shape == (256, 144, 3)
    small = ShotDetector(SplitConfig(), 25.0)  # never enlarged
    assert small.detector_frame(np.zeros((120, 200, 3), np.uint8)).shape == (120, 200, 3)


def test_every_frame_score_equals_pyscenedetect_own_detectors(pyscenedetect_dir):
    """Our detectors compute the content score in one OpenCV difference instead of PySceneDetect's
    three NumPy passes: every frame's score must be the same number (not merely close), for the
    content and the adaptive detector, and the cuts the same."""
    from scenedetect import AdaptiveDetector, FrameTimecode

    for kind in ("content", "adaptive"):
        config = SplitConfig(detector=kind)
        for video in sorted(pyscenedetect_dir.glob("*.mp4")):
            with VideoReader(str(video)) as reader:
                ours = ShotDetector(config, reader.info.fps)
                theirs = (ContentDetector(threshold=config.threshold, min_scene_len=config.min_scene_frames)
                          if kind == "content" else
                          AdaptiveDetector(adaptive_threshold=config.adaptive_threshold,
                                           min_scene_len=config.min_scene_frames,
                                           min_content_val=config.min_content_val))
                assert type(ours._detector) is not type(theirs) and isinstance(ours._detector, type(theirs))
                their_cuts, frames = [], 0
                for frame in reader.frames(size=(reader.info.width, reader.info.height), fmt="bgr24"):
                    small = ours.push(frame.index, frame.image)
                    their_cuts += [c.frame_num for c in theirs.process_frame(FrameTimecode(frame.index, fps=ours.fps), small)]
                    assert ours._detector._frame_score == theirs._frame_score, (kind, video.name, frame.index)
                    frames += 1
                their_cuts += [c.frame_num for c in theirs.post_process(FrameTimecode(frames - 1, fps=ours.fps))]
                assert ours.finish() == sorted({c for c in their_cuts if 0 < c < frames}), (kind, video.name)
