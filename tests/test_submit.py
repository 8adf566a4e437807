"""`vidloom submit`: the job request it builds, its `ray job submit` equivalent, and the
errors a user meets before any cluster is involved. The same commands against a real cluster
(submit, resubmit, --replace, status, stop, auth mismatch) are in tests/test_autoscaling.py,
which starts the one local cluster these tests share."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vidloom.jobs import submit as sub
from vidloom.platform import jobs_client
from vidloom.platform.jobs_client import JobsError

REPO = Path(__file__).resolve().parents[1]


def test_request_for_a_curation_run():
    req = sub.build_request("curate", "first", ["/data/videos", "--out", "/shared/runs/first", "--set", "split.min_clip_s=3"],
                            pip=["rapidocr==1.4.4"], env={"HF_HOME": "/cache"}, num_cpus=1, memory_gb=2)
    assert req.submission_id == "vidloom-curate-first"
    assert shlex.split(req.entrypoint) == ["python", "-m", "vidloom.jobs.curate", "/data/videos", "--out",
                                           "/shared/runs/first", "--set", "split.min_clip_s=3"]
    env = req.runtime_env
    assert env["working_dir"] == str(REPO) and ".git" in env["excludes"]
    assert env["pip"] == ["rapidocr==1.4.4"] and env["env_vars"]["HF_HOME"] == "/cache"
    kwargs = req.kwargs()
    assert kwargs["entrypoint_num_cpus"] == 1 and kwargs["entrypoint_memory"] == 2 * 2**30
    assert "entrypoint_num_gpus" not in kwargs  # unset resources are not sent
    assert kwargs["metadata"] == {"vidloom_kind": "curate", "vidloom_run": "first"}


def test_image_runs_without_uploading_the_checkout():
    req = sub.build_request("train", "dit-13b", ["--config", "train.yaml"], working_dir=None,
                            image="vidloom/vidloom:latest", num_gpus=0)
    assert req.submission_id == "vidloom-train-dit-13b"
    assert "working_dir" not in req.runtime_env and req.runtime_env["image_uri"] == "vidloom/vidloom:latest"
    assert req.entrypoint.startswith("python -m vidloom.jobs.train ")


def test_ray_cli_equivalent_is_the_same_request(capsys):
    argv = ["curate", "first", "--num-cpus", "0", "--dry-run", "--", "/data/v", "--out", "/runs/first"]
    assert sub.main(argv) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[:3] == ["ray", "job", "submit"]
    assert words[words.index("--submission-id") + 1] == "vidloom-curate-first"
    env = json.loads(words[words.index("--runtime-env-json") + 1])
    assert env["working_dir"] == str(REPO)
    assert words[words.index("--") + 1:] == ["python", "-m", "vidloom.jobs.curate", "/data/v", "--out", "/runs/first"]


def test_working_dir_is_uploaded_unless_the_address_is_a_running_local_cluster(tmp_path, monkeypatch):
    from vidloom.jobs import cluster as cl

    monkeypatch.setattr(cl, "REGISTRY", tmp_path)
    assert sub.default_working_dir("http://10.0.0.5:8265") == str(REPO)
    assert sub.default_working_dir("http://127.0.0.1:48265") == str(REPO)  # no local cluster there
    # A cluster killed without `down` leaves its file; it names no running process, so it is ignored.
    (tmp_path / "48265.json").write_text(json.dumps({"base": 48264, "temp_dir": str(tmp_path / "gone")}))
    assert cl.local_cluster_at("http://127.0.0.1:48265") is None
    assert sub.default_working_dir("http://127.0.0.1:48265") == str(REPO)
    req = sub.build_request("curate", "x", [], working_dir=f"local://{REPO}")
    assert req.runtime_env["working_dir"] == f"local://{REPO}" and "excludes" not in req.runtime_env
    # The running case (a registered cluster -> local://) is checked on a real one in test_autoscaling.py.


@pytest.mark.parametrize("run", ["", "../x", "a b", "-x", "a/b"])
def test_bad_run_names_are_refused(run):
    with pytest.raises(JobsError, match="run name"):
        sub.submission_id("curate", run)


def test_cli_reports_a_bad_run_name(capsys):
    assert sub.main(["curate", "a b", "--dry-run", "--", "x", "--out", "y"]) == 1
    assert "vidloom submit: run name 'a b'" in capsys.readouterr().err


def test_address_and_auth_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert jobs_client.resolve_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265/")
    assert jobs_client.resolve_address(None) == "http://head:8265"
    with pytest.raises(JobsError, match="dashboard's http address"):
        jobs_client.resolve_address("10.0.0.1:6379")  # a GCS address is not the Jobs API

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert jobs_client.auth_mode(None) == "disabled"
    monkeypatch.setenv("RAY_AUTH_MODE", "Token")
    assert jobs_client.auth_mode(None) == "token"
    with pytest.raises(JobsError, match="one of token, disabled"):
        jobs_client.auth_mode("kerberos")

    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(JobsError, match="no token.*RAY_AUTH_TOKEN"):
        jobs_client.read_token()
    (tmp_path / "tok").write_text("abc\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert jobs_client.read_token() == ("abc", str(tmp_path / "tok"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")
    assert jobs_client.read_token() == ("xyz", "RAY_AUTH_TOKEN")


def test_no_cluster_at_the_address_is_a_clear_error(capsys):
    # Port 9 (discard) has no dashboard on it.
    assert sub.main(["status", "first", "--address", "http://127.0.0.1:9", "--auth", "disabled"]) == 1
    assert "no Ray dashboard answers at http://127.0.0.1:9" in capsys.readouterr().err
