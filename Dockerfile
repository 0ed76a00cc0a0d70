# RADON, CPU image: the reference model, export and the edge runtime.
# Build: docker build -t radon .      Run: docker run --rm radon demo --quick
# Not built in this workplace (no Docker engine); tests parse it instead.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/radon
COPY pyproject.toml README.md constraints.txt ./
COPY radon ./radon
COPY export ./export
COPY runtime ./runtime
COPY model_repository ./model_repository
COPY configs ./configs
# torch is pinned to a CPU build by constraints.txt
RUN pip install -c constraints.txt ".[all]"

ENTRYPOINT ["radon"]
CMD ["--help"]
