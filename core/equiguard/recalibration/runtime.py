"""`equiguard serve-calibrated`: the model runtime serving a recalibrated revision.

    equiguard serve-calibrated --calibration FILE --revision TAG
        [--bento-home DIR] [--work-dir DIR] [--host HOST] [--port PORT]

A recalibrated revision reaches the model pods as its calibration document
(the immutable ConfigMap `<model>-calibration-<digest>` the Job publishes,
mounted as a file), not as a bento: the runtime applies it to the base bento
its image already holds. It checks that the document is the one the tag names
(the tag's digest is the document's), writes in --work-dir (the pod's TMPDIR
by default) the same source a calibrated bento would hold
(equiguard.recalibration.bento.write_context) and replaces itself with
`bentoml serve` of that source, with the base bento's build arguments. The
base's models are read from the bento store, which stays read-only.

Exit codes: 2 bad usage, or a document that is not the tag's; 1 the base bento
is not in the store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from equiguard.recalibration.bento import (
    ENTRY_SERVICE,
    PublishError,
    candidate_tag,
    read_base,
    write_context,
)
from equiguard.recalibration.maps import Calibration


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    home = args.bento_home or os.environ.get("BENTOML_HOME")
    if not home:
        print("equiguard serve-calibrated: give --bento-home or set BENTOML_HOME", file=sys.stderr)
        return 2
    try:
        calibration = Calibration.from_dict(
            json.loads(Path(args.calibration).read_text(encoding="utf-8"))
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"equiguard serve-calibrated: cannot read {args.calibration}: {error}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        base = read_base(Path(home), calibration.base_bento)
    except PublishError as error:
        print(f"equiguard serve-calibrated: {error}", file=sys.stderr)
        return 1
    expected = candidate_tag(base, calibration)
    if expected != args.revision:
        print(
            f"equiguard serve-calibrated: {args.calibration} is the calibration of {expected}, "
            f"not of {args.revision}",
            file=sys.stderr,
        )
        return 2
    work = Path(args.work_dir or tempfile.gettempdir())
    context = work / f"equiguard-{expected.replace(':', '-')}"
    shutil.rmtree(context, ignore_errors=True)
    write_context(context, base, calibration)
    arguments = [f"--arg={key}={value}" for key, value in sorted(base.args.items())]
    os.chdir(context)
    command = [sys.executable, "-m", "bentoml", "serve", ENTRY_SERVICE,
               "--host", args.host, "--port", str(args.port), *arguments]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 1  # not reached


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiguard serve-calibrated",
        description="Serve a recalibrated revision: its calibration document applied to the "
        "base bento of the BentoML store.",
    )
    parser.add_argument("--calibration", required=True, help="the calibration document (JSON)")
    parser.add_argument("--revision", required=True, help="the recalibrated revision's tag")
    parser.add_argument("--bento-home", help="the BentoML store (default BENTOML_HOME)")
    parser.add_argument("--work-dir", help="where to write the served source (default TMPDIR)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=3000)
    return parser
