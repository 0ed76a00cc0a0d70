# RADON edge runtime, CPU image: `radon serve` on an ONNX artifact, with onnxruntime, numpy and the
# tokenizer libraries only (no torch: the runtime never imports it).
# NOT BUILT HERE: this workplace has no Docker engine. tests/runtime/test_runtime_docker.py parses this
# file and docker-compose.yml and checks their commands, paths and ports against the CLI.
#
#   docker build -t radon-runtime .
#   docker run --rm -p 8000:8000 -v "$PWD/radon-demo/onnx:/models/radon:ro" radon-runtime
#   curl -s localhost:8000/health
#
# The server listens on 0.0.0.0 inside the container, so anyone who can reach the published port can use
# the model. No API key is set by default (`radon serve` warns about it at start); set one with
#   docker run ... -e RADON_API_KEY="$(openssl rand -hex 32)" radon-runtime
# and clients send `Authorization: Bearer <key>` on every route but /health (the HEALTHCHECK below).
#
# The GPU service of docker-compose.yml builds the same file with ONNXRUNTIME="onnxruntime-gpu[cuda,cudnn]".
FROM python:3.11-slim

ARG ONNXRUNTIME=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 RADON_LOG=INFO
WORKDIR /opt/radon
COPY pyproject.toml README.md constraints.txt ./
COPY radon ./radon
COPY export ./export
COPY runtime ./runtime
COPY model_repository ./model_repository
COPY configs ./configs
# the runtime and the server; a GPU build swaps onnxruntime for the wheel named by ONNXRUNTIME
RUN pip install -c constraints.txt ".[runtime,serve]" \
 && if [ "$ONNXRUNTIME" != "onnxruntime" ]; then pip uninstall -y onnxruntime && pip install "$ONNXRUNTIME"; fi \
 && python -c "import radon.runtime, radon.runtime.server, radon.tokenizer" \
 && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the runtime image"; exit 1; fi

RUN useradd --create-home radon
USER radon
# the artifact folder (radon export onnx ... --out DIR) is mounted here
VOLUME /models/radon
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
ENTRYPOINT ["radon"]
CMD ["serve", "/models/radon", "--host", "0.0.0.0", "--port", "8000"]
