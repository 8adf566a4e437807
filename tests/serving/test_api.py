"""The served app over real HTTP: generations, the official openai client, auth, validation,
overload, batching, a killed ingress replica, timeouts and cancels."""

from __future__ import annotations

import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.serving.conftest import API_KEY, MAX_QUEUE, TIMEOUT_S, decode

# The SDK marks its videos resource deprecated (OpenAI's own Sora service ends); the API shape stays.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
SMALL = {"size": "64x48", "num_frames": 5, "num_inference_steps": 3}


def test_generation_completes_with_requested_size_frames_and_seed(served):
    body = {"prompt": "A red fox runs through fresh snow, camera pans left", **SMALL, "seed": 7}
    first = served.post(body)
    assert first.status_code == 200, first.text
    job = first.json()
    assert job["object"] == "video" and job["status"] == "queued" and job["model"] == served.model_id
    assert job["size"] == "64x48" and first.headers["openai-poll-after-ms"] == "200"
    done = served.wait(job["id"])
    assert done["status"] == "completed" and done["progress"] == 100, done
    assert done["completed_at"] >= done["created_at"] and done["expires_at"] > done["completed_at"]
    extras = done["extras"]
    # The keyword rewriter (Normal mode) appends the camera movement it found.
    assert extras["rewritten_prompt"].startswith("A red fox runs") and "pan left" in extras["rewritten_prompt"].lower()
    assert set(extras["timings_s"]) == {"PromptRewriter", "TextEncoder", "DiT", "VAEDecoder"}
    assert extras["params"]["seed"] == 7 and extras["params"]["num_frames"] == 5

    video = served.get(f"/v1/videos/{job['id']}/content")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    frames = decode(video.content)
    assert frames.shape == (5, 48, 64, 3)
    thumb = served.get(f"/v1/videos/{job['id']}/content", params={"variant": "thumbnail"})
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"

    again = served.wait(served.post(body).json()["id"])
    assert (decode(served.get(f"/v1/videos/{again['id']}/content").content) == frames).all()
    other = served.wait(served.post({**body, "seed": 8}).json()["id"])
    assert (decode(served.get(f"/v1/videos/{other['id']}/content").content) != frames).any()

    # /v1/videos/sync answers with the mp4 itself.
    sync = served.post({**body, "rewrite": "none"}, path="/v1/videos/sync")
    assert sync.status_code == 200 and decode(sync.content).shape == (5, 48, 64, 3)
    assert served.get(f"/v1/videos/{sync.headers['x-video-id']}").json()["extras"]["rewritten_prompt"] == body["prompt"]


def test_openai_client_against_the_server(served):
    import openai

    client = openai.OpenAI(base_url=served.url + "/v1", api_key=API_KEY, max_retries=0)
    extension = {"num_frames": 5, "num_inference_steps": 3, "seed": 3, "rewrite": "master"}
    created = client.videos.create(prompt="a paper boat on a pond", size="64x64", extra_body=extension)
    assert created.status == "queued" and created.size == "64x64"
    done = client.videos.create_and_poll(prompt="a paper boat on a pond", size="64x64", extra_body=extension)
    assert done.status == "completed" and done.progress == 100 and done.error is None
    assert client.videos.retrieve(created.id).id == created.id
    content = client.videos.download_content(done.id)
    assert decode(content.read()).shape == (5, 64, 64, 3)
    # seconds × fps gives the frame count when num_frames is absent: 0.5 s at 8 fps -> 5 frames (4k+1).
    short = client.videos.create_and_poll(prompt="a kite", size="64x64", seconds="0.5",
                                          extra_body={"fps": 8, "num_inference_steps": 2})
    assert short.status == "completed" and short.model_extra["extras"]["params"]["num_frames"] == 5

    listed = [v.id for v in client.videos.list(limit=2, order="desc")]  # auto-paging over cursors
    assert {created.id, done.id, short.id} <= set(listed)
    page = client.videos.list(limit=1, order="asc")
    assert len(page.data) == 1 and page.has_more and page.last_id == page.data[0].id
    assert client.videos.delete(done.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(done.id)
    with pytest.raises(openai.BadRequestError) as bad:
        client.videos.create(prompt="x", size="100x64")
    assert bad.value.body["param"] == "size" and "multiple of 16" in bad.value.body["message"]

    # A generation past the server's timeout comes back failed, with its reason, not as an exception.
    slow = client.videos.create_and_poll(prompt="a storm", size="256x256",
                                         extra_body={"num_frames": 33, "num_inference_steps": 200})
    assert slow.status == "failed" and slow.error.code == "timeout" and f"{TIMEOUT_S} s" in slow.error.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.videos.download_content(slow.id)
    # ...and the DiT stopped that generation instead of running its remaining steps.
    deadline = time.monotonic() + 30
    while served.get("/healthz").json()["stopped_early"] < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served.get("/healthz").json()["stopped_early"] >= 1


def test_api_key_is_required_on_v1_routes(served):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        r = requests.get(served.url + "/v1/models", headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = requests.post(served.url + "/v1/videos", json={"prompt": "x"}, headers=headers, timeout=30)
        assert r.status_code == 401
    assert requests.get(served.url + "/healthz", timeout=30).status_code == 200  # probes need no key
    models = served.get("/v1/models").json()
    entry = models["data"][0]
    assert models["object"] == "list" and entry["id"] == served.model_id and entry["random_init"] is False
    assert entry["num_parameters"] > 0 and entry["text_encoder"]["spec"] == "tiny"
    assert entry["limits"] == {"max_height": 256, "max_width": 256, "max_frames": 33}
    assert requests.get(served.url + "/docs", timeout=30).status_code == 200


@pytest.mark.parametrize("field,value,words", [
    ("height", 100, "multiple of 16"),
    ("width", 512, "[16, 256]"),
    ("size", "64by64", "WIDTHxHEIGHT"),
    ("num_frames", 6, "4k+1"),
    ("num_frames", 37, "[1, 33]"),
    ("seconds", 9, "num_frames must be 4k+1"),
    ("num_inference_steps", 0, "[1, 200]"),
    ("guidance_scale", 99, "[0.0, 30.0]"),
    ("flow_shift", -1, "(0, 100]"),
    ("solver", "heun", "euler, dpm++2m"),
    ("fps", 0, "[1, 60]"),
    ("seed", -5, "seed"),
    ("rewrite", "poetic", "none, normal, master"),
    ("prompt", "x" * 3000, "1 to 2000 characters"),
    ("model", "sora-2", "not served here"),
    ("input_reference", "frame.png", "not supported"),
    ("colour", "red", "unknown field"),
    ("num_frames", "five", "valid integer"),
])
def test_invalid_fields_are_400_naming_the_field(served, field, value, words):
    body = {"prompt": "a cat", **SMALL, field: value}
    if field in ("height", "width"):
        body.pop("size")
    if field == "seconds":
        body.pop("num_frames")  # num_frames takes precedence over seconds
    r = served.post(body)
    assert r.status_code == 400 and r.headers["x-should-retry"] == "false"
    error = r.json()["error"]
    assert error["param"] == field and words in error["message"], error
    assert error["type"] == "invalid_request_error"
    # The same check on a multipart form (what the openai client sends; every value a string).
    form = requests.post(served.url + "/v1/videos", files={k: (None, str(v)) for k, v in body.items()},
                         headers=served.headers, timeout=30)
    assert form.status_code == 400 and form.json()["error"]["param"] == field


def test_full_queue_is_429_and_cancelled_jobs_stop(served):
    stopped_before = served.get("/healthz").json()["stopped_early"]
    long = {"prompt": "a long river", **SMALL, "num_inference_steps": 200}
    ids = []
    for _ in range(MAX_QUEUE):
        r = served.post(long)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    refused = served.post(long)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "queue_full"
    # Wait until the DiT works on them, then cancel them all.
    deadline = time.monotonic() + 60
    while not any(served.get(f"/v1/videos/{i}").json()["status"] == "in_progress" for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for video_id in ids:
        assert served.delete(video_id).json() == {"id": video_id, "object": "video.deleted", "deleted": True}
        assert served.get(f"/v1/videos/{video_id}").status_code == 404
        assert not (served.storage / "jobs" / f"{video_id}.json").exists()
    assert served.delete(ids[0]).status_code == 404
    deadline = time.monotonic() + 60
    while served.get("/healthz").json()["stopped_early"] <= stopped_before:
        assert time.monotonic() < deadline, "the cancelled generations kept running"
        time.sleep(0.2)
    # Healthy afterwards: a new job is accepted and completes.
    assert served.wait(served.post({"prompt": "after the storm", **SMALL}).json()["id"])["status"] == "completed"


def test_concurrent_requests_of_one_shape_are_batched(served, ray_session):
    bodies = [{"prompt": f"a lighthouse at night, number {n}", **SMALL, "seed": n} for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(served.post, bodies))
    assert all(r.status_code == 200 for r in created)
    done = [served.wait(r.json()["id"]) for r in created]
    assert all(d["status"] == "completed" for d in done)
    sizes = [d["extras"]["batch_size"] for d in done]
    assert max(sizes) > 1, sizes
    # The batch sizes are on Ray's metrics endpoint, where the serving dashboard reads them.
    node = ray_session.nodes()[0]
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    deadline = time.monotonic() + 60
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        buckets = {float(le): float(v) for le, v in re.findall(
            r'^ray_vidloom_serve_batch_size_bucket\{[^}]*deployment="DiT"[^}]*le="([0-9.e+]+)"[^}]*\} ([0-9.e+]+)$',
            text, re.M)}
        count = sum(float(v) for v in re.findall(r'^ray_vidloom_serve_batch_size_count\{[^}]*\} ([0-9.e+]+)$', text, re.M))
        if count and buckets.get(1.0, 0) < count or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert count > 0 and buckets.get(1.0, 0) < count, "no DiT batch larger than one on the metrics endpoint"


def test_a_request_joins_the_batch_that_is_running(served):
    """Continuous batching: a request that arrives while a same-shape batch denoises starts at
    the DiT's next step, beside it, instead of after it."""
    long = {"prompt": "a long river", **SMALL, "num_inference_steps": 150, "seed": 1}
    first = served.post(long).json()["id"]
    deadline = time.monotonic() + 60
    while (status := served.get(f"/v1/videos/{first}").json())["status"] != "in_progress":
        assert time.monotonic() < deadline and status["status"] == "queued", status
        time.sleep(0.05)
    second = served.post({**long, "prompt": "a short river", "num_inference_steps": 20, "seed": 2}).json()["id"]
    late, early = served.wait(second), served.wait(first)
    assert late["status"] == early["status"] == "completed"
    # It was denoised beside the running request, and was done before it.
    assert late["extras"]["batch_size"] == early["extras"]["batch_size"] == 2, (late["extras"], early["extras"])
    assert late["completed_at"] <= early["completed_at"]


def test_job_survives_the_ingress_replica_that_accepted_it(served, ray_session):
    job = served.post({"prompt": "a slow sunrise", **SMALL, "num_inference_steps": 60}).json()
    replica = job["extras"]["accepted_by"]
    ray_session.kill(ray_session.get_actor(replica, namespace="serve"), no_restart=True)
    # The other ingress replica answers; the job runs on in the job store.
    deadline = time.monotonic() + 15
    while (status := served.get(f"/v1/videos/{job['id']}")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.status_code == 200 and status.json()["id"] == job["id"]
    done = served.wait(job["id"])
    assert done["status"] == "completed", done
    assert decode(served.get(f"/v1/videos/{job['id']}/content").content).shape == (5, 48, 64, 3)
