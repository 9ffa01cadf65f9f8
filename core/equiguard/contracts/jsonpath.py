"""The small JSON path dialect of `prediction.scorePath`: `$.risk`, `$.scores[0]`, `$['p']`.

A path is compiled once at start-up into a tuple of keys and indexes, so
reading the score of a response is a few dictionary lookups.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class JsonPathError(ValueError):
    """A score path that is not in the supported dialect."""


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[str | int, ...]

    def find(self, document: object) -> object:
        """The value at this path, or None when some step is missing."""
        node = document
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict):
                    return None
                node = node.get(step)
        return node

    def find_score(self, document: object) -> float | None:
        """The finite number at this path, or None (booleans are not scores)."""
        value = self.find(document)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        score = float(value)
        return score if math.isfinite(score) else None


def compile_path(text: str) -> JsonPath:
    if not text.startswith("$"):
        raise JsonPathError(f"score path {text!r} must start with '$' (for example '$.risk')")
    steps: list[str | int] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise JsonPathError(
                f"score path {text!r} is not understood at character {position + 1}; "
                "use '.name', '[index]' or \"['name']\" steps"
            )
        name, index, quoted, double_quoted = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(next(s for s in (name, quoted, double_quoted) if s is not None))
        position = match.end()
    return JsonPath(text, tuple(steps))
