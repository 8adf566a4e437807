"""The web page in headless Chromium: type a prompt, submit, watch the progress bar, and the
video element plays a file of the requested size and frame count."""

from __future__ import annotations

import json

from tests.serving.conftest import API_KEY
from vidloom.pipelines.report.browser import find_chromium, open_in_chromium

# What a user does: give the key, type a prompt, pick a small size, 5 frames, 40 steps, Generate.
# Meanwhile the page's progress bar and, at the end, the played video are recorded. (40 steps
# keep the denoising over several of the page's 200 ms polls on a fast machine: CI ran 12 steps
# in 0.67 s and the bar once jumped from 0 to 100 between polls.)
USER = """(async () => {
  const $ = (id) => document.getElementById(id);
  window.seen = {progress: [], statuses: []};
  setInterval(() => {
    const p = $("progress").value, s = $("status").textContent;
    if (window.seen.progress.at(-1) !== p) window.seen.progress.push(p);
    if (s && window.seen.statuses.at(-1) !== s) window.seen.statuses.push(s);
  }, 20);
  $("key").value = %(key)s;
  $("key").dispatchEvent(new Event("change"));
  while (!$("size").options.length) await new Promise((r) => setTimeout(r, 50));
  window.seen.sizes = Array.from($("size").options).map((o) => o.value);
  $("prompt").value = "A paper boat drifts across a pond, camera pans right";
  $("size").value = "64x32";
  $("frames").value = "5";
  $("steps").value = "40";
  $("rewrite").value = "master";
  const video = $("video");
  video.loop = false;
  video.addEventListener("ended", () => {
    window.seen.played = {width: video.videoWidth, height: video.videoHeight, duration: video.duration,
                          frames: video.getVideoPlaybackQuality().totalVideoFrames};
  });
  $("submit").click();
})()"""
DONE = "window.seen && window.seen.played && document.querySelectorAll('#recent li').length " \
       "? JSON.stringify(Object.assign({}, window.seen, {rewritten: document.getElementById('rewritten').textContent})) : null"


def test_page_generates_and_plays_a_video(served, tmp_path):
    assert find_chromium() is not None, "Chromium not found: install Debian's `chromium` (see .ci/run)"
    result = open_in_chromium(served.url + "/", tmp_path / "page.png", width=1100, height=900, timeout=120,
                              script=USER % {"key": json.dumps(API_KEY)}, until=DONE)
    seen = json.loads(result.value)
    assert result.problems() == [], result.problems()
    # The size presets are the report's aspect buckets scaled to the model's 256x256 limit.
    assert {"256x144", "144x256", "256x192", "192x256", "256x256", "64x32"} <= set(seen["sizes"])
    assert seen["played"]["width"] == 64 and seen["played"]["height"] == 32
    assert seen["played"]["frames"] == 5 and abs(seen["played"]["duration"] - 5 / 24) < 0.05
    # The progress bar moved with the denoising steps before the video arrived.
    assert seen["progress"][-1] == 100 and any(0 < p < 100 for p in seen["progress"]), seen["progress"]
    assert seen["statuses"][-1] == "completed"
    assert "camera pans right" in seen["rewritten"]
    assert result.screenshot.stat().st_size > 0
