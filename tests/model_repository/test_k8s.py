"""``radon triton build --k8s DIR``: the manifests validate against the Kubernetes API's models (the
official ``kubernetes`` client, strictly: no unknown key, every type, every required field), and their
ports, probes and volume match the repository that the same command wrote."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from radon.cli import main
from radon.model_repository.server import TritonServer

yaml = pytest.importorskip("yaml")
k8s = pytest.importorskip("kubernetes.client")

KINDS = {"Deployment": "V1Deployment", "Service": "V1Service", "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
         "ConfigMap": "V1ConfigMap"}  # fmt: skip
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def strict(data: Any, type_name: str, where: str = "") -> None:
    """Check ``data`` against the client's model ``type_name`` key by key (its deserializer alone drops
    unknown keys silently)."""
    if type_name.startswith(("List[", "list[")):
        assert isinstance(data, list), where
        for i, item in enumerate(data):
            strict(item, type_name[5:-1], f"{where}[{i}]")
    elif type_name.startswith(("Dict[", "dict(")):  # the client's newer and older spellings
        assert isinstance(data, dict), where
        value_type = type_name[5:-1].split(", ", 1)[1]
        for key, item in data.items():
            strict(item, value_type, f"{where}.{key}")
    elif type_name in PRIMITIVES:
        assert isinstance(data, PRIMITIVES[type_name]) and not (
            type_name == "int" and isinstance(data, bool)
        ), where
    else:
        model = getattr(k8s, type_name)
        assert isinstance(data, dict), where
        by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
        unknown = set(data) - set(by_json)
        assert not unknown, f"{where}: {sorted(unknown)} not in {type_name}"
        for key, item in data.items():
            strict(item, model.openapi_types[by_json[key]], f"{where}.{key}")


def validate(doc: dict) -> Any:
    """Strict key and type check, then the client's own deserialization (required fields, enums)."""
    type_name = KINDS[doc["kind"]]
    strict(doc, type_name, doc["kind"])
    api = k8s.ApiClient()
    return api._ApiClient__deserialize(doc, type_name)  # the path a real API response takes


@pytest.fixture(scope="module")
def built(text_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("k8s")
    argv = ["triton", "build", str(text_artifact), "--out", str(root / "repo"), "--decoder", "python",
            "--k8s", str(root / "k8s")]  # fmt: skip
    assert main(argv) == 0
    docs = {p.name: yaml.safe_load(p.read_text()) for p in sorted((root / "k8s").glob("*.yaml"))}
    return root / "repo", docs


def test_manifests_validate_against_the_api_models(built: tuple[Path, dict[str, dict]]) -> None:
    _, docs = built
    assert set(docs) == {"deployment.yaml", "service.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml"}
    objects = {d["kind"]: validate(d) for d in docs.values()}
    assert isinstance(objects["HorizontalPodAutoscaler"], k8s.V2HorizontalPodAutoscaler)


def test_strict_check_catches_a_misspelt_key() -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(AssertionError, match="prots"):
        validate(doc)


def test_ports_probes_and_volume_match_the_repository(built: tuple[Path, dict[str, dict]]) -> None:
    repo, docs = built
    deployment, service, hpa = docs["deployment.yaml"], docs["service.yaml"], docs["hpa.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # the ports radon triton serve gives tritonserver, and Triton's own defaults
    defaults = inspect.signature(TritonServer.__init__).parameters
    assert ports == {"http": defaults["http_port"].default, "grpc": defaults["grpc_port"].default,
                     "metrics": defaults["metrics_port"].default}  # fmt: skip
    args = dict(a.lstrip("-").split("=", 1) for a in container["args"])
    assert {int(args["http-port"]), int(args["grpc-port"]), int(args["metrics-port"])} == set(ports.values())
    # probes: Triton's health endpoints on the HTTP port
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # the repository: a read-only volume at --model-repository, holding what radon triton build wrote
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == args["model-repository"])
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["readOnly"] is True
    for model in yaml.safe_load((repo / "radon_repository.json").read_text())["models"]:
        assert (repo / model / "config.pbtxt").is_file() and (repo / model / "1").is_dir()
    assert "limits" not in container["resources"], "a CPU repository asks for no GPU"
    # the Service forwards each named port; the HPA scales this Deployment on queue time
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports
    assert all(p["targetPort"] == p["name"] for p in service["spec"]["ports"])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    rule = docs["prometheus-adapter-rules.yaml"]["data"]["config.yaml"]
    assert "nv_inference_queue_duration_us" in rule and metric["pods"]["metric"]["name"] in rule
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]


def test_a_gpu_repository_asks_for_a_gpu(text_artifact: Path, tmp_path: Path) -> None:
    argv = ["triton", "build", str(text_artifact), "--out", str(tmp_path / "repo"), "--decoder", "onnxruntime",
            "--device", "gpu", "--k8s", str(tmp_path / "k8s")]  # fmt: skip
    assert main(argv) == 0
    doc = yaml.safe_load((tmp_path / "k8s" / "deployment.yaml").read_text())
    validate(doc)
    assert doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}


def test_bad_k8s_folder_refused_by_name(
    text_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "file").write_text("x")
    argv = [
        "triton",
        "build",
        str(text_artifact),
        "--out",
        str(tmp_path / "repo"),
        "--k8s",
        str(tmp_path / "file"),
    ]
    assert main(argv) == 2
    assert "--k8s" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists(), "refused before the repository is written"
