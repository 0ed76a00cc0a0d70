"""Kubernetes manifests for a model repository: ``radon triton build ... --k8s DIR`` (docs/triton.md).

Four objects, one YAML file each, made from Python dicts (no templates):

- ``deployment.yaml``: tritonserver on the repository, mounted read-only at ``/models`` from a
  PersistentVolumeClaim; HTTP, gRPC and metrics ports; a readiness probe on ``/v2/health/ready`` (every
  model loaded: Triton's strict readiness) and a liveness probe on ``/v2/health/live``; a memory-backed
  ``/dev/shm`` for the python backend's stubs; a GPU request when a model of the repository runs on one;
- ``service.yaml``: a ClusterIP Service with the three ports, named as Triton names them;
- ``hpa.yaml``: an ``autoscaling/v2`` HorizontalPodAutoscaler on a Pods metric, the average queue time
  per request in microseconds, which the ``prometheus-adapter`` rule of
  ``prometheus-adapter-rules.yaml`` derives from Triton's ``nv_inference_queue_duration_us`` counter
  (the queue time summed since start) and ``nv_inference_request_success``: NVIDIA's own Kubernetes
  example scales on the same quotient;
- ``prometheus-adapter-rules.yaml``: that rule, as a ConfigMap for the adapter to load.

Nothing here has run on a cluster; tests validate the objects against the Kubernetes API's models
offline (``tests/model_repository/test_k8s.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon.errors import RadonError
from radon.integrity import read_json

MARKER = "radon_repository.json"  # radon.model_repository.build.MARKER
MOUNT = "/models"
QUEUE_METRIC = "nv_inference_queue_duration_us"
HPA_METRIC = "avg_nv_inference_queue_duration_us"  # per request, from the adapter rule below
ADAPTER_RULE = f"""rules:
- seriesQuery: '{QUEUE_METRIC}{{namespace!="",pod!=""}}'
  resources:
    overrides:
      namespace: {{resource: namespace}}
      pod: {{resource: pod}}
  name:
    matches: "^{QUEUE_METRIC}$"
    as: "{HPA_METRIC}"
  metricsQuery: >-
    sum(rate({QUEUE_METRIC}{{<<.LabelMatchers>>}}[1m])) by (<<.GroupBy>>)
    / clamp_min(sum(rate(nv_inference_request_success{{<<.LabelMatchers>>}}[1m])) by (<<.GroupBy>>), 1e-9)
"""


@dataclass(frozen=True)
class K8sSettings:
    name: str = "radon-triton"
    image: str = "radon-triton:latest"  # the NGC tritonserver image with RADON[runtime] and numpy<2 installed
    claim: str = "radon-model-repository"  # a PVC holding the repository at its root
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    replicas: int = 1
    max_replicas: int = 4
    queue_target_us: int = 50_000  # scale out when requests wait 50 ms on average in Triton's queue


def _repository(repo: Path) -> dict[str, Any]:
    marker = repo / MARKER
    if not marker.is_file():
        raise RadonError(f"{repo}: not a RADON model repository (no {MARKER}); run radon triton build first")
    record = read_json(marker, "the repository record")
    if not isinstance(record, dict) or not isinstance(record.get("models"), list):
        raise RadonError(f"{marker}: not a RADON repository record")
    return record


def _uses_gpu(repo: Path, models: list[str]) -> bool:
    return any(
        "KIND_GPU" in (repo / m / "config.pbtxt").read_text(encoding="utf-8")
        for m in models
        if (repo / m / "config.pbtxt").is_file()
    )


def manifests(repo: Path, settings: K8sSettings | None = None) -> dict[str, dict[str, Any]]:
    """The four objects for the repository at ``repo``, by file name."""
    s = settings or K8sSettings()
    record = _repository(repo)
    models: list[str] = record["models"]
    labels = {"app.kubernetes.io/name": s.name, "app.kubernetes.io/part-of": "radon"}
    http, grpc, metrics = "http", "grpc", "metrics"  # Triton's own port names (its Helm chart's)
    probe = {"httpGet": {"port": http}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    resources: dict[str, Any] = {"requests": {"cpu": "2", "memory": "4Gi"}}
    if _uses_gpu(repo, models):
        resources["limits"] = {"nvidia.com/gpu": "1"}  # a quantity: a string in the API's schema
    container = {
        "name": "tritonserver",
        "image": s.image,
        "command": ["tritonserver"],
        "args": [
            f"--model-repository={MOUNT}",
            f"--http-port={s.http_port}",
            f"--grpc-port={s.grpc_port}",
            f"--metrics-port={s.metrics_port}",
            "--strict-readiness=true",
        ],
        "ports": [
            {"name": http, "containerPort": s.http_port, "protocol": "TCP"},
            {"name": grpc, "containerPort": s.grpc_port, "protocol": "TCP"},
            {"name": metrics, "containerPort": s.metrics_port, "protocol": "TCP"},
        ],
        "readinessProbe": {
            **probe,
            "httpGet": {"path": "/v2/health/ready", "port": http},
            "initialDelaySeconds": 10,
        },
        "livenessProbe": {
            **probe,
            "httpGet": {"path": "/v2/health/live", "port": http},
            "initialDelaySeconds": 30,
        },
        # the models load before the server is live; up to 10 minutes for a large decoder
        "startupProbe": {
            **probe,
            "httpGet": {"path": "/v2/health/live", "port": http},
            "failureThreshold": 60,
        },
        "resources": resources,
        "volumeMounts": [
            {"name": "model-repository", "mountPath": MOUNT, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(s.metrics_port),
                        "prometheus.io/path": "/metrics",
                    },  # fmt: skip
                },
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "model-repository",
                            "persistentVolumeClaim": {"claimName": s.claim, "readOnly": True},
                        },
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                    ],  # fmt: skip
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                for name, port in ((http, s.http_port), (grpc, s.grpc_port), (metrics, s.metrics_port))
            ],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": s.name},
            "minReplicas": s.replicas,
            "maxReplicas": s.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": HPA_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(s.queue_target_us)},
                    },
                }
            ],
        },
    }
    adapter = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{s.name}-adapter-rules", "labels": labels},
        "data": {"config.yaml": ADAPTER_RULE},
    }
    return {
        "deployment.yaml": deployment,
        "service.yaml": service,
        "hpa.yaml": hpa,
        "prometheus-adapter-rules.yaml": adapter,
    }


def write_manifests(repo: Path, out: Path, settings: K8sSettings | None = None) -> list[Path]:
    """Write the manifests of ``repo`` into the folder ``out`` (created; its files are replaced)."""
    try:
        import yaml
    except ImportError:
        raise RadonError(
            "--k8s: needs 'pyyaml', which is not installed: pip install 'radon[triton]'"
        ) from None
    objects = manifests(repo, settings)
    if out.exists() and not out.is_dir():
        raise RadonError(f"--k8s: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in objects.items():
        path = out / name
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
