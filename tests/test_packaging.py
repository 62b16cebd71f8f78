"""pyproject.toml and requirements*.txt describe the same dependencies (Spaces installs from
requirements.txt, pip from pyproject.toml), and the `c4c` command points at the CLI."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {re.sub(r"\s+", "", ln) for ln in lines if ln.strip() and not ln.startswith(("#", "-r"))}


def test_pyproject_dependencies_match_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) == _requirements("requirements.txt")
    assert set(project["optional-dependencies"]["ray"]) == _requirements("requirements-ray.txt")
    dev = set(project["optional-dependencies"]["dev"])
    assert _requirements("requirements-dev.txt") <= dev
    assert set(project["optional-dependencies"]["ray"]) <= dev


def test_console_script_is_the_cli_main():
    from c4c.cli import main
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, func = project["scripts"]["c4c"].split(":")
    assert module == "c4c.cli" and func == main.__name__
