"""pyproject.toml lists every package of the source tree, so a regular (non-editable) install
ships all of them: setuptools installs only the packages named there, and an editable install
would hide a missing one."""
from __future__ import annotations

from pathlib import Path

import pytest

# tomllib joined the standard library in Python 3.11; fusegrad still supports 3.10
tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11 on")

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _packages_on_disk(dirs: dict[str, str]) -> set[str]:
    found = set()
    for package, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    return found


def test_every_package_is_listed():
    config = _config()
    on_disk = _packages_on_disk(config["package-dir"])
    listed = set(config["packages"])
    assert on_disk - listed == set(), "packages missing from pyproject.toml [tool.setuptools] packages"
    assert listed - on_disk == set(), "pyproject.toml lists packages that do not exist"
