"""The `equiguard` command: one entry point, one module per subcommand.

Each subcommand module exposes ``main(argv: list[str]) -> int`` with its own
argument parser. They are imported only when called, so `equiguard audit`
does not pay for importing kopf or BentoML.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("equiguard.audit_command", "assess a model's equity on historical scored records"),
    "sidecar": ("equiguard.sidecar.main", "run the recording proxy beside a BentoML server"),
    "operator": ("equiguard.operator.main", "run the ClinicalModel operator"),
    "recalibrate": ("equiguard.recalibration.main", "fit a recalibration within the envelope"),
    "serve-calibrated": (
        "equiguard.recalibration.runtime",
        "serve a recalibrated revision from its calibration",
    ),
    "approve": ("equiguard.operator.approve", "record a human approval of a revision"),
    "status": ("equiguard.operator.status", "show ClinicalModels, their SLOs and verdicts"),
    "decisions": ("equiguard.operator.decisions", "list a model's decision records"),
    "report": ("equiguard.report.main", "write a model's equity report (HTML and JSON)"),
    "modelcard": (
        "equiguard.governance.card_main",
        "write a model's CHAI Applied Model Card (XML)",
    ),
    "pccp": ("equiguard.governance.main", "write a recalibration's change record (PCCP-shaped)"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: equiguard COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `equiguard COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(importlib.metadata.version("equiguard"))
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"equiguard: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(command[0])
    result: int = module.main(args[1:])
    return result
