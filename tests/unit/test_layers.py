"""The layers the architecture promises, checked from the source.

import-linter covers the engine (pyproject.toml); the operator's folder has no
__init__.py on purpose, which import-linter cannot follow, so its layering is
checked here by reading the imports of each module.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IO_FRAMEWORKS = {"kopf", "kubernetes", "aiohttp", "prometheus_client", "urllib3", "psycopg"}
# Modules of the operator that decide or build, and so must not do I/O.
OPERATOR_PURE_MODULES = [
    "decide", "manifests", "alerts", "conditions", "state", "names", "records", "evaluate", "model",
]


def imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_one_operator_module_talks_to_the_api_server() -> None:
    talking = sorted(
        path.name
        for path in (REPO / "operator").glob("*.py")
        if "kubernetes" in imported_top_level_names(path)
    )
    assert talking == ["kube.py"]


@pytest.mark.parametrize("module", OPERATOR_PURE_MODULES)
def test_operator_decisions_and_builders_do_no_io(module: str) -> None:
    imported = imported_top_level_names(REPO / "operator" / f"{module}.py")
    assert imported.isdisjoint(IO_FRAMEWORKS), imported & IO_FRAMEWORKS


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """Package discovery cannot follow package-dir, so the list is kept by hand."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: REPO / path for name, path in setuptools["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        found.add(name)
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder)
            if relative.parts:
                found.add(".".join((name, *relative.parts)))
    assert found == set(setuptools["packages"])


def test_no_top_level_folder_shadows_the_standard_library_operator_module() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
