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
