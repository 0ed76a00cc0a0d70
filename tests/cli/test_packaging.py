"""Packaging and docs: what a fresh clone needs to install and what the README promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_is_listed_for_non_editable_installs() -> None:
    """pip install . copies only listed packages; an unlisted subpackage works editable and breaks installed."""
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    dirs = {pkg: ROOT / d for pkg, d in tool["package-dir"].items()}
    found = set()
    for pkg, folder in dirs.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            if "__pycache__" not in rel:
                found.add(".".join((pkg, *rel)))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_generic_top_level_names_do_not_leak() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    assert all(p == "radon" or p.startswith("radon.") for p in tool["packages"])


def test_core_install_has_no_torch() -> None:
    deps = _pyproject()["project"]["dependencies"]
    assert not any(re.match(r"torch\b", d) for d in deps)


def test_readme_holds_the_two_commands_and_ci_runs_them() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "radon demo" in block and "pytest" in block
    assert "constraints.txt" in block, "an unpinned torch would pull a CUDA build"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "2. install, then run the tests" in ci and "1. install, then run the demo" in ci
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def test_ci_lints_and_type_checks_in_the_test_venv() -> None:
    """The test command's install brings ruff and mypy (the dev extra); CI runs them after the tests."""
    dev = _pyproject()["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"ruff\b", d) for d in dev) and any(re.match(r"mypy\b", d) for d in dev)
    mypy = _pyproject()["tool"]["mypy"]
    assert "radon/config.py" in mypy["files"] and "runtime" in mypy["files"]
    assert "ignore_errors" not in mypy
    ci = (ROOT / ".ci" / "run").read_text()
    for command in (".venv/bin/ruff check", ".venv/bin/ruff format --check", ".venv/bin/mypy"):
        assert command in ci, f".ci/run does not run {command}"


def test_docs_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+?\.md)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_python_m_radon() -> None:
    r = subprocess.run([sys.executable, "-m", "radon", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "verbs:" in r.stdout
