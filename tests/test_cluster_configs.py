"""The cluster definitions are valid for the tools that read them: the launcher YAMLs for Ray's
autoscaler (its own schema and default filling), the KubeRay manifests for KubeRay's v1 CRD
schemas (reduced copies in cluster/kuberay/schema/), the Serve config for Ray Serve's schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"



@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_cloud_launcher_configs_pass_ray_validation(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTER / name).read_text())
    config = prepare_config(raw)  # fills the provider's defaults, as `ray up` does
    validate_config(config)
    types = config["available_node_types"]
    assert config["head_node_type"] == "head" and types["head"]["resources"] == {"CPU": 0}
    assert types["cpu_worker"]["resources"].get("GPU", 0) == 0 and types["cpu_worker"]["min_workers"] == 0
    assert types["gpu_worker"]["resources"]["GPU"] == 8 and types["gpu_worker"]["max_workers"] >= 1
    assert 0 < config["idle_timeout_minutes"] <= 30
    # vidloom is installed on every node the way the README does, from the synced checkout.
    assert config["file_mounts"] == {"~/vidloom": "."}
    assert 'cd ~/vidloom && python3 -m pip install -e ".[dev]"' in config["setup_commands"]


def test_local_autoscaling_config_and_rendering():
    from ray.autoscaler._private.util import validate_config

    from vidloom.jobs.cluster import LocalCluster, render_local_config, start_command

    raw = yaml.safe_load((CLUSTER / "local" / "autoscaling.yaml").read_text())
    validate_config(raw)  # the fake provider ships no defaults file, so the schema check only
    assert raw["provider"]["type"] == "fake_multinode"
    types = raw["available_node_types"]
    assert types["gpu_worker"]["resources"]["GPU"] == 1 and "GPU" not in types["cpu_worker"]["resources"]
    assert all(t.get("min_workers", 0) == 0 for t in types.values())

    cluster = LocalCluster(base=47000)
    config = render_local_config(cluster, idle_timeout_minutes=0.2, cpu_workers=3, gpu_workers=1)
    validate_config(config)
    assert config["provider"]["gcs_address"] == "127.0.0.1:47000" and config["max_workers"] == 4
    cmd = " ".join(start_command(cluster, Path("/x/autoscaling.yaml")))
    # No Ray default port, so clusters of other users on this machine are untouched.
    for flag in ("--port=47000", "--dashboard-port=47001", "--ray-client-server-port=47002",
                 "--dashboard-agent-listen-port=47003", "--metrics-export-port=47004",
                 "--min-worker-port=47100", "--max-worker-port=47299", "--num-cpus=0"):
        assert flag in cmd


def test_cluster_cli_dry_run(capsys):
    from vidloom.jobs.cluster import main

    assert main(["up", "aws", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("ray up -y " + str(CLUSTER / "aws.yaml"))
    assert main(["up", "--local", "--port", "47000", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=")
    assert main(["up"]) == 2


def test_local_cluster_up_refuses_a_port_in_use_and_names_what_holds_it(tmp_path, capsys):
    """A port already taken is named with its holder before anything starts (a dashboard agent that
    cannot listen leaves a cluster whose Jobs API never accepts a job)."""
    import os
    import socket

    from vidloom.jobs.cluster import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        agent_port = s.getsockname()[1]
        state = tmp_path / "cluster"
        assert main(["up", "--local", "--port", str(agent_port - 3), "--temp-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert f"{agent_port} (dashboard agent (job submission)) is in use by pid {os.getpid()}" in err
    assert "pick another --port" in err and not state.exists()


def _unknown_fields(doc, schema, path="") -> list[str]:
    """Keys the schema does not declare: Kubernetes would silently drop them (pruning)."""
    out = []
    if isinstance(doc, dict) and "properties" in schema and not schema.get("additionalProperties"):
        for key, value in doc.items():
            if key not in schema["properties"]:
                out.append(f"{path}.{key}")
            else:
                out += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            out += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return out


MANIFESTS = [("raycluster.yaml", "raycluster"), ("rayjob-curate.yaml", "rayjob"),
             ("rayjob-train.yaml", "rayjob"), ("rayservice.yaml", "rayservice")]


@pytest.mark.parametrize("name,kind", MANIFESTS)
def test_kuberay_manifests_match_the_crd_schemas(name, kind):
    doc = yaml.safe_load((CLUSTER / "kuberay" / name).read_text())
    schema = json.loads((CLUSTER / "kuberay" / "schema" / f"{kind}.v1.json").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == schema["x-kind"]
    jsonschema.validate(doc, schema)
    assert _unknown_fields(doc, schema) == []
    spec = doc["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "8" and "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    if kind == "rayjob":
        assert spec["entrypoint"].startswith("python -m vidloom.jobs.") and spec["shutdownAfterJobFinishes"] is True


def test_schema_rejects_what_kuberay_rejects():
    """The reduced schemas still carry KubeRay's required fields and types."""
    schema = json.loads((CLUSTER / "kuberay" / "schema" / "raycluster.v1.json").read_text())
    doc = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    del doc["spec"]["workerGroupSpecs"][0]["groupName"]
    with pytest.raises(jsonschema.ValidationError, match="groupName"):
        jsonschema.validate(doc, schema)
    doc = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    doc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # must be a string
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    service = json.loads((CLUSTER / "kuberay" / "schema" / "rayservice.v1.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="rayClusterConfig"):
        jsonschema.validate({"apiVersion": "ray.io/v1", "kind": "RayService", "spec": {"serveConfigV2": ""}}, service)


def test_serve_config_is_valid_and_is_the_rayservice_config():
    from ray.serve.schema import ServeDeploySchema

    text = (CLUSTER / "serve" / "serve_config.yaml").read_text()
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    app = config.applications[0]
    from vidloom.serving.app import DEPLOYMENTS, ServeAppConfig

    assert app.import_path == "vidloom.jobs.serve:app" and {d.name for d in app.deployments} == set(DEPLOYMENTS)
    ServeAppConfig.model_validate(app.args)  # the builder's arguments, typed
    service = yaml.safe_load((CLUSTER / "kuberay" / "rayservice.yaml").read_text())
    assert service["spec"]["serveConfigV2"] == text


def test_generated_files_are_current(load_script):
    assert load_script(CLUSTER / "kuberay" / "render.py").main(["--check"]) == 0
    assert load_script(CLUSTER / "monitoring" / "render.py").main(["--check"]) == 0
