"""RADON's Triton Inference Server model repository: generated from an artifact's manifest (contract 9).

- ``build_repository(artifact, out, ...)``: Triton's layout, one ``config.pbtxt`` per model generated
  from the manifest (``configs``, ``pbtxt``), thin ``model.py`` adapters (``adapters/``);
- ``find_server`` / ``TritonServer``: a real tritonserver, from PATH or from ``nvidia-pytriton``
  (``server``);
- ``generate``: a client for the generate model over HTTP or gRPC (``client``).

docs/triton.md describes the models, their inputs and outputs, and how to deploy them.
"""

from __future__ import annotations

from radon.model_repository.build import BuildResult, build_repository
from radon.model_repository.server import ServerInstall, TritonServer, find_server

__all__ = ["BuildResult", "ServerInstall", "TritonServer", "build_repository", "find_server"]
