"""Dockerfile and docker-compose.yml agree with the CLI (no Docker engine here, so they are parsed).

Checked: the image installs the runtime and server extras without torch, copies every folder the
package is built from, exposes the port its command serves on, and its command parses with
``radon serve``'s own parser; each compose service's command parses too, its published port maps to
the port it serves on, its volume is the artifact its command serves, and the GPU service reserves
an NVIDIA device and asks for the CUDA provider from a build of the same Dockerfile.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from radon.cli._app import build_parser
from radon.cli.serve import serve

ROOT = Path(__file__).resolve().parents[2]
yaml = pytest.importorskip("yaml")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def serve_args(argv: list[str]):
    assert argv[0] == "serve", f"the command must be `radon serve ...`, got {argv}"
    return build_parser(serve, "radon serve").parse_args(argv[1:])


def test_dockerfile_is_a_torch_free_runtime_image():
    inst = dockerfile()
    assert "not built here" in (ROOT / "Dockerfile").read_text().lower()
    runs = " ".join(a for i, a in inst if i == "RUN")
    installs = re.findall(r"pip install ([^&;]+)", runs)
    assert any('".[runtime,serve]"' in i for i in installs)
    for extra in ("torch", "[all]", "[export", "[dev", "[train"):
        assert not any(extra in i for i in installs), f"the runtime image installs {extra}"
    copied = {a.split()[0] for i, a in inst if i == "COPY"}
    pyproject = (ROOT / "pyproject.toml").read_text()
    for folder in re.findall(r'^"radon[.\w]*" = "(\w+)"', pyproject, re.M):
        assert folder in copied, f"{folder}/ is a package folder (pyproject) but is not copied"
    entry = json.loads(dict(inst)["ENTRYPOINT"])
    cmd = json.loads(dict(inst)["CMD"])
    assert entry == ["radon"]
    args = serve_args(cmd)
    assert str(args.port) in dict(inst)["EXPOSE"].split()
    assert str(args.artifact) == dict(inst)["VOLUME"]
    assert args.host == "0.0.0.0", "a container must listen beyond its loopback"
    assert "ONNXRUNTIME" in dict(inst)["ARG"]


def test_compose_services_match_the_cli():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"radon-cpu", "radon-gpu"}
    for name, svc in services.items():
        args = serve_args(svc["command"])
        host_port, container_port = svc["ports"][0].split(":")
        assert int(container_port) == args.port, name
        source, target, mode = svc["volumes"][0].rsplit(":", 2)
        assert target == str(args.artifact) and mode == "ro", name
        assert svc["build"]["context"] == "."
    assert len({s["ports"][0].split(":")[0] for s in services.values()}) == 2, "host ports must differ"
    gpu = services["radon-gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "cuda" in serve_args(gpu["command"]).providers.split(",")
    assert "onnxruntime-gpu" in gpu["build"]["args"]["ONNXRUNTIME"]
    assert "providers" not in " ".join(services["radon-cpu"]["command"])


def test_serve_is_a_registered_verb():
    from radon.cli import VERBS

    assert VERBS["serve"][0] == "radon.cli.serve:serve"


def test_readme_style_commands_parse():
    """The commands docs/runtime.md shows for the server parse with the real parser (and it shows some)."""
    text = (ROOT / "docs" / "runtime.md").read_text()
    commands = re.findall(r"^radon serve (.+)$", text, re.M)
    assert commands, "docs/runtime.md shows no `radon serve` command line"
    for line in commands:
        serve_args(["serve", *shlex.split(line.split("#")[0])])
