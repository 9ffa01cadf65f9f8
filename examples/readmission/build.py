"""Train the readmission model revisions and build the bentos ``readmission:<revision>``.

    python examples/readmission/build.py [--home DIR] [v1 v2]

Everything goes to the BentoML home DIR (default ``$EQUIGUARD_CACHE/bentoml``,
else ``~/.cache/equiguard/bentoml``), never to the repository; bentos and
models of the same tags are replaced. Works offline. Serve a revision with

    BENTOML_HOME=DIR BENTOML_DO_NOT_TRACK=True bentoml serve readmission:v1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REVISIONS = ("v1", "v2")


def default_home() -> Path:
    cache = os.environ.get("EQUIGUARD_CACHE") or str(Path.home() / ".cache" / "equiguard")
    return Path(cache) / "bentoml"


def bentoml_env(home: Path) -> dict[str, str]:
    """The environment every BentoML command of this project runs with."""
    return os.environ | {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}


def build(home: Path, revisions: tuple[str, ...] = REVISIONS) -> None:
    """Train and save the models, then build one bento per revision."""
    env = bentoml_env(home)
    home.mkdir(parents=True, exist_ok=True)
    run = [sys.executable]
    subprocess.run([*run, str(HERE / "train.py"), *revisions], env=env, check=True)
    for revision in revisions:
        subprocess.run(
            [*run, "-m", "bentoml", "delete", "--yes", f"readmission:{revision}"],
            env=env,
            check=False,  # nothing to delete on a first build
            capture_output=True,
        )
        # One process per bento: the service module reads its `model`
        # argument when imported, once per process.
        subprocess.run(
            [
                *run, "-m", "bentoml", "build", "--output", "tag",
                "--version", revision,
                "--arg", f"model=readmission_risk:{revision}",
                str(HERE),
            ],
            env=env,
            check=True,
        )  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=default_home(), help="BENTOML_HOME to use")
    parser.add_argument(
        "revisions", nargs="*", help=f"some of {', '.join(REVISIONS)} (default: all)"
    )
    args = parser.parse_args(argv)
    if unknown := set(args.revisions) - set(REVISIONS):
        parser.error(f"unknown revisions {sorted(unknown)}; known: {list(REVISIONS)}")
    build(args.home.resolve(), tuple(args.revisions or REVISIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
