"""The Dockerfiles keep their promises: pinned base, non-root, nothing to build with at run time.

No Docker engine is needed: the Dockerfiles are parsed and their invariants
checked against the repository (the commands they run exist, the files they
copy are in the build context).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from equiguard.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "operator": REPO / "operator" / "Dockerfile",
    "sidecar": REPO / "sidecar" / "Dockerfile",
    "model-runtime": REPO / "runtime" / "Dockerfile",
}
PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|pip|gcc|cc|make|build-essential|curl|wget)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (INSTRUCTION, arguments) list."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        else:
            stages[-1].instructions.append((instruction, rest.strip()))
    return args, stages


def final_stage(path: Path) -> Stage:
    return parse(path)[1][-1]


def instructions(stage: Stage, name: str) -> list[str]:
    return [rest for instruction, rest in stage.instructions if instruction == name]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_stage_starts_from_a_base_pinned_by_tag_and_digest(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    for stage in stages:
        assert PINNED.match(stage.base), f"{image}: FROM {stage.base} is not pinned by digest"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_final_stage_runs_as_a_numeric_non_root_user(image: str) -> None:
    users = instructions(final_stage(DOCKERFILES[image]), "USER")
    assert users, f"{image}: the final stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"{image}: USER {users[-1]}"
    assert gid.isdigit() and int(gid) != 0, f"{image}: USER {users[-1]}"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_final_stage_installs_nothing_and_copies_only_from_the_build_stage(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    final = stages[-1]
    assert len(stages) >= 2, f"{image}: not a multi-stage build"
    for command in instructions(final, "RUN"):
        assert not BUILD_TOOLS.search(command), f"{image}: final stage runs {command!r}"
    build_stages = {stage.name for stage in stages[:-1]}
    for source in instructions(final, "COPY") + instructions(final, "ADD"):
        match = re.match(r"--from=(\S+)", source)
        assert match and match.group(1) in build_stages, f"{image}: COPY {source}"


def entrypoint(stage: Stage) -> list[str]:
    (exec_form,) = instructions(stage, "ENTRYPOINT")[-1:]
    command: list[str] = json.loads(exec_form)  # exec form: signals reach the process
    return command


@pytest.mark.parametrize("image", ["operator", "sidecar"])
def test_entrypoint_is_an_equiguard_command_that_exists(image: str) -> None:
    command = entrypoint(final_stage(DOCKERFILES[image]))
    assert command == ["equiguard", image]
    module = COMMANDS[image][0]
    assert importlib.util.find_spec(module) is not None, f"{module} does not exist yet"


def test_model_runtime_entrypoint_is_bentoml_serve() -> None:
    stage = final_stage(DOCKERFILES["model-runtime"])
    assert entrypoint(stage) == ["bentoml", "serve"]
    env = " ".join(instructions(stage, "ENV"))
    # The operator's model container runs `bentoml serve TAG`: the store must be
    # the one baked into the image, and nothing may phone home.
    assert "BENTOML_HOME=/opt/bentoml" in env
    assert "BENTOML_DO_NOT_TRACK=True" in env


def dockerignore_excludes(relative: str) -> bool:
    """Whether .dockerignore keeps `relative` out of the build context (last match wins)."""
    excluded = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(relative).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_file_copied_from_the_build_context_exists_and_is_sent(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    for stage in stages:
        for copy in instructions(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _destination = shlex.split(copy)
            for source in sources:
                assert (REPO / source).exists(), f"{image}: COPY {source}: no such path"
                assert not dockerignore_excludes(source), f"{image}: .dockerignore drops {source}"


def test_the_build_context_sends_the_package_the_example_and_bentos_and_no_local_state() -> None:
    # The build stage copies the whole context and builds from pyproject.toml:
    # whatever folders it names must be sent, and so must what the runtime's
    # build stage reads. Local state and the tests are not sent.
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set(setuptools.get("package-dir", {}).values()) or {"src"}
    for needed in sorted(
        folders | {"pyproject.toml", "README.md", "examples/readmission", "runtime/bentos"}
    ):
        assert not dockerignore_excludes(needed), f".dockerignore drops {needed}"
    for unwanted in (".git", ".venv", "tests", "core/__pycache__", "cluster", "bench"):
        assert dockerignore_excludes(unwanted), f".dockerignore sends {unwanted}"


# Folders mirror import paths below these (see pyproject.toml).
SOURCE_ROOTS = ("core", "operator", "sidecar")


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the images' build stage installs it (`pip install .`), not editable."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, timeout=120)  # fmt: skip
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    return target


def test_the_installed_package_holds_every_module_of_the_source_tree(
    installed_package: Path,
) -> None:
    for root in SOURCE_ROOTS:
        for source in (REPO / root).rglob("*.py"):
            module = installed_package / source.relative_to(REPO / root)
            assert module.is_file(), f"{source.relative_to(REPO)} is missing from the image"
    assert not (installed_package / "equiguard" / "__init__.py").exists()  # still a namespace


@pytest.mark.parametrize("command", ["operator", "sidecar", "recalibrate"])
def test_the_installed_package_runs_the_commands_the_images_and_jobs_start(
    installed_package: Path, command: str
) -> None:
    # `recalibrate` is what the operator's Jobs run in the operator image.
    result = subprocess.run(
        [sys.executable, "-m", "equiguard", command, "--help"],
        env={**os.environ, "PYTHONPATH": str(installed_package)},
        cwd=installed_package,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"equiguard {command}" in result.stdout
