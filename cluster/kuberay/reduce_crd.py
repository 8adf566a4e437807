"""Reduce KubeRay's published CRDs to the JSON schemas vendored in cluster/kuberay/schema/.

The CRDs (ray-project/kuberay, ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs,
rayservices}.yaml) embed the whole Kubernetes PodTemplateSpec several times (~1 MB each).
This keeps every KubeRay field with its type and required list, and cuts pod templates down
to what our manifests set (containers' name, image, command, args, env, ports, resources,
volumeMounts; volumes, nodeSelector, tolerations), dropping descriptions.

    python cluster/kuberay/reduce_crd.py CRD_DIR COMMIT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

KINDS = {"rayclusters": "RayCluster", "rayjobs": "RayJob", "rayservices": "RayService"}
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "ports", "resources", "volumeMounts"}
POD_FIELDS = {"containers", "volumes", "nodeSelector", "tolerations", "serviceAccountName", "restartPolicy"}


def _is_pod_template(schema: dict) -> bool:
    spec = schema.get("properties", {}).get("spec", {})
    return "containers" in spec.get("properties", {})


def _strip(schema):
    """Drop descriptions everywhere."""
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def _reduce_pod_template(schema: dict) -> dict:
    spec = schema["properties"]["spec"]
    container = spec["properties"]["containers"]["items"]
    container = {**container, "properties": {k: v for k, v in container["properties"].items() if k in CONTAINER_FIELDS}}
    volumes = spec["properties"]["volumes"]["items"]
    # A volume's source kinds are many deep objects: keep their names, typed as objects.
    volumes = {**volumes, "properties": {k: ({"type": "object"} if v.get("type") == "object" else v)
                                         for k, v in volumes["properties"].items()}}
    pod = {k: v for k, v in spec["properties"].items() if k in POD_FIELDS}
    pod["containers"] = {**spec["properties"]["containers"], "items": container}
    pod["volumes"] = {**spec["properties"]["volumes"], "items": volumes}
    return {"type": "object", "properties": {"metadata": {"type": "object"},
                                             "spec": {**spec, "properties": pod}}}


def reduce(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "object" and _is_pod_template(schema):
            return _reduce_pod_template(schema)
        return {k: reduce(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [reduce(v) for v in schema]
    return schema


def main(crd_dir: str, commit: str) -> None:
    out_dir = Path(__file__).parent / "schema"
    out_dir.mkdir(exist_ok=True)
    for name, kind in KINDS.items():
        crd = yaml.safe_load((Path(crd_dir) / f"{name}.yaml").read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = reduce(_strip(version["schema"]["openAPIV3Schema"]))
        schema["$comment"] = (f"Reduced from ray-project/kuberay@{commit} ray-operator/config/crd/bases/"
                              f"ray.io_{name}.yaml (v1) by cluster/kuberay/reduce_crd.py")
        schema["x-kind"] = kind
        (out_dir / f"{kind.lower()}.v1.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
