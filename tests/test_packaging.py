"""The three dependency lists (pyproject, constraints.txt, environment.yml) must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"].values()
    reqs = meta["dependencies"] + [r for extra in extras for r in extra]
    return {_name(r) for r in reqs}


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pins[name.lower()] = version.strip()
    return pins


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and "=" in dep:
            name, version = dep.split("=", 1)
            pins[name.lower()] = version
    return pins


def test_every_direct_dependency_is_pinned_in_constraints():
    pins = _constraints()
    missing = _pyproject_names() - pins.keys()
    assert not missing, f"constraints.txt lacks pins for {sorted(missing)}: run `make constraints`"


def test_environment_yml_has_the_same_dependencies_and_pins():
    pins, conda = _constraints(), _conda()
    names = _pyproject_names()
    assert set(conda) - {"python"} == names
    assert {n: conda[n] for n in names} == {n: pins[n] for n in names}


def test_environment_python_satisfies_requires_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.12"
    assert _conda()["python"].startswith("3.1") and int(_conda()["python"].split(".")[1]) >= 12
