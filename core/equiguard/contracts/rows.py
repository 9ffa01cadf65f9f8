"""The stored-row encoding of a prediction's subgroup values.

The sidecar's stores (SQLite and PostgreSQL) keep a prediction's groups as one
JSON object with sorted keys; the recalibration Job reads the same rows. Both
use these two functions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from types import MappingProxyType


def encode_groups(groups: Mapping[str, str]) -> str:
    return _encode(tuple(sorted(groups.items())))


@functools.lru_cache(maxsize=65536)
def _encode(items: tuple[tuple[str, str], ...]) -> str:
    # Few combinations of groups recur: encode each once.
    return json.dumps(dict(items), separators=(",", ":"))


@functools.lru_cache(maxsize=65536)
def decode_groups(text: str) -> Mapping[str, str]:
    # Many rows share one combination of groups: decode each combination once
    # (read-only, since the one mapping is shared by all those rows).
    groups: dict[str, str] = json.loads(text)
    return MappingProxyType(groups)
