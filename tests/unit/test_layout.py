"""Folders mirror import paths, and nothing shadows the standard library.

The layers themselves are import-linter contracts (pyproject.toml, run by
`make check`); these tests keep the layout those contracts and mypy rely on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PORTIONS = {name: REPO / folder for name, folder in SETUPTOOLS["package-dir"].items()}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """Discovery cannot follow a namespace split over folders, so the list is kept by hand."""
    found = set()
    for name, folder in PORTIONS.items():
        for module in folder.rglob("*.py"):
            relative = module.parent.relative_to(folder)
            found.add(".".join((name, *relative.parts)))
    assert found == set(SETUPTOOLS["packages"])


def test_every_folder_ends_in_its_import_path() -> None:
    for name, folder in PORTIONS.items():
        assert folder.relative_to(REPO).parts[-len(name.split(".")) :] == tuple(name.split("."))
    assert {folder.relative_to(REPO).parts[0] for folder in PORTIONS.values()} == {
        "core", "operator", "sidecar",
    }  # fmt: skip


def test_equiguard_is_a_namespace_package_in_every_portion() -> None:
    assert not [init for init in REPO.glob("*/equiguard/__init__.py")]


def test_no_top_level_folder_shadows_the_standard_library_operator_module() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    found = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__, operator.itemgetter)"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert Path(found.stdout.split()[0]).parent != REPO / "operator"
